"""`kmervae index`: embeddings → FAISS index with its ID map and metadata beside it."""

from __future__ import annotations

from ..index import DEFAULT_RERANK, KINDS, METRICS, IndexParams


def add_arguments(parser) -> None:
    d = IndexParams()
    parser.add_argument("embeddings", metavar="EMB.zarr")
    parser.add_argument("-o", "--output", required=True, metavar="INDEX.faiss")
    parser.add_argument("--metric", choices=METRICS, default=d.metric, help="cosine (default) or l2")
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default=d.kind,
        help="auto: exact flat up to --exact-max, above it IVF-flat, IVF-SQ8 or IVF-PQ, the most "
        "accurate that fits --memory-gb",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=d.memory_gb,
        help=f"memory budget of the loaded index for auto, IDs included (default {d.memory_gb:g})",
    )
    parser.add_argument(
        "--exact-max", type=int, default=d.exact_max, help=f"largest exact index for auto ({d.exact_max})"
    )
    parser.add_argument("--hnsw-m", type=int, default=d.hnsw_m)
    parser.add_argument("--ef-construction", type=int, default=d.ef_construction)
    parser.add_argument("--ef-search", type=int, default=d.ef_search)
    parser.add_argument("--ivf-nlist", type=int, default=None, help="IVF lists (default 4 sqrt(n))")
    parser.add_argument(
        "--ivf-nprobe", type=int, default=None, help="IVF lists searched per query (default nlist/40, >= 16)"
    )
    parser.add_argument(
        "--pq-m", type=int, default=None, help="IVF-PQ bytes per vector (default: the most that fit)"
    )
    parser.add_argument(
        "--rerank",
        type=int,
        default=None,
        help="IVF-SQ8/PQ: re-rank the k x RERANK best candidates exactly from the embeddings store "
        f"(default {DEFAULT_RERANK['ivf-sq8']} for SQ8, {DEFAULT_RERANK['ivf-pq']} for PQ; 0 = none)",
    )
    parser.add_argument(
        "--train-sample", type=int, default=d.train_sample, help="IVF training vectors (at least 39 nlist)"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=None)


def run(args) -> int:
    from ..index import build_index

    params = IndexParams(
        metric=args.metric,
        kind=args.kind,
        exact_max=args.exact_max,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        ivf_nlist=args.ivf_nlist,
        ivf_nprobe=args.ivf_nprobe,
        train_sample=args.train_sample,
        seed=args.seed,
        memory_gb=args.memory_gb,
        pq_m=args.pq_m,
        rerank=args.rerank,
    )
    meta = build_index(args.embeddings, args.output, params, threads=args.threads)
    print(f"{args.output}: {meta['kind']} {meta['metric']} index of {meta['n']} x {meta['latent_dim']}")
    return 0

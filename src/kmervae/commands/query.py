"""`kmervae query`: nearest neighbours of IDs, new contigs (FASTA) or embeddings from an index."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--index", required=True, metavar="INDEX.faiss")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ids", nargs="+", metavar="ID", help="contigs already in the index (each left out of its own list)"
    )
    source.add_argument("--fasta", nargs="+", metavar="Q.fa", help="new contigs: embedded with --model first")
    source.add_argument("--embeddings", metavar="Q.zarr", help="an embeddings store of the same model")
    parser.add_argument("--model", metavar="MODEL_DIR", help="model for --fasta (the index's model)")
    parser.add_argument("--weights", choices=("best", "final"), default="best")
    parser.add_argument("-k", type=int, default=50, help="neighbours per query (default 50)")
    parser.add_argument("--nprobe", type=int, help="IVF lists searched per query (default: the index's)")
    parser.add_argument(
        "--rerank", type=int, help="IVF-SQ8/PQ re-rank factor (default: the index's; 0 = approximate)"
    )
    parser.add_argument(
        "--rerank-from", metavar="EMB.zarr", help="store to re-rank from (default: the one indexed)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="neighbours.tsv")
    parser.add_argument("--threads", type=int, default=None)


def run(args) -> int:
    from ..index import query_index

    rows = query_index(
        args.index,
        args.output,
        k=args.k,
        nprobe=args.nprobe,
        rerank=args.rerank,
        rerank_from=args.rerank_from,
        ids=args.ids,
        fasta=args.fasta,
        model_dir=args.model,
        embeddings=args.embeddings,
        weights=args.weights,
        threads=args.threads,
    )
    print(f"{args.output}: {rows} neighbour rows")
    return 0

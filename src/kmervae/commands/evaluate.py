"""`kmervae evaluate {spearman,count-distance,baselines,retrieval,map}`: the quality reports."""

from __future__ import annotations

SUBCOMMANDS = {
    "spearman": "latent distance vs k-mer MSE of nearest neighbours (Spearman, Pearson, bootstrap CIs)",
    "count-distance": "nearest-neighbour distance histogram, cumulative count fits, pairwise distances",
    "baselines": "the spearman protocol on PCA of the CLR input at several widths",
    "retrieval": "precision@k of same-label neighbours: VAE vs CLR, PCA and 4-mer CLR",
    "map": "openTSNE map with HDBSCAN clusters, coloured by GC, cluster and label",
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats_ranges(text: str) -> list[tuple[float, float]]:
    """'0-0.2,0-0.5' → [(0, 0.2), (0, 0.5)] (the numbers may have exponents: 0-1e-05)."""
    import argparse
    import re

    number = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    out = []
    for part in text.split(","):
        m = re.fullmatch(rf"\s*{number}\s*-\s*{number}\s*", part)
        if not m:
            raise argparse.ArgumentTypeError(f"{part!r} is not a range LOW-HIGH (e.g. 0-0.2,0-0.5)")
        out.append((float(m[1]), float(m[2])))
    return out


def _common(p, store: str | None = "required", split_default: str = "auto") -> None:
    p.add_argument("--embeddings", required=True, metavar="EMB.zarr")
    if store == "required":
        p.add_argument(
            "--store", required=True, metavar="STORE.zarr", help="the k-mer store the embeddings came from"
        )
    elif store == "optional":
        p.add_argument("--store", metavar="STORE.zarr", help="the k-mer store the embeddings came from")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR")
    p.add_argument(
        "--split",
        choices=("auto", "test", "validation", "train", "all"),
        default=split_default,
        help="rows to evaluate (auto: test if present, else validation, else all)",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)


def _protocol(p, metric_default="euclidean") -> None:
    p.add_argument("--pool", type=int, default=50_000, help="pool size P (0 = all); always reported")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--metric", choices=("euclidean", "cosine"), default=metric_default)
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples of queries (0 = none)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="evaluation", metavar="EVALUATION", required=True)
    p = sub.add_parser("spearman", help=SUBCOMMANDS["spearman"], description=SUBCOMMANDS["spearman"])
    _common(p)
    _protocol(p)

    p = sub.add_parser(
        "count-distance", help=SUBCOMMANDS["count-distance"], description=SUBCOMMANDS["count-distance"]
    )
    _common(p, store=None)
    p.add_argument("--sample", type=int, default=100_000, help="contigs sampled (0 = all)")
    p.add_argument(
        "--metric",
        choices=("euclidean", "cosine"),
        default="cosine",
        help="nearest-neighbour distance (default cosine, the scale of the default ranges)",
    )
    p.add_argument(
        "--ranges",
        type=_floats_ranges,
        default=[(0, 0.2), (0, 0.5), (0, 0.7)],
        help="fit ranges on the metric's scale, each holding some nearest-neighbour distances "
        "(default 0-0.2,0-0.5,0-0.7, cosine)",
    )
    p.add_argument("--pairs", type=int, default=100_000, help="random pairs for the pairwise distributions")

    p = sub.add_parser("baselines", help=SUBCOMMANDS["baselines"], description=SUBCOMMANDS["baselines"])
    _common(p)
    _protocol(p)
    p.add_argument(
        "--widths", type=_ints, default=None, help="PCA widths (default 32,128 and the latent width)"
    )
    p.add_argument("--fit-sample", type=int, default=20_000, help="pool contigs the PCA is fitted on")

    p = sub.add_parser("retrieval", help=SUBCOMMANDS["retrieval"], description=SUBCOMMANDS["retrieval"])
    _common(p, store="optional")
    p.add_argument(
        "--labels", required=True, metavar="LABELS.tsv", help="contig_id plus label columns (kmervae chop)"
    )
    p.add_argument("--label-column", default="genome")
    p.add_argument("--ks", type=_ints, default=[1, 10, 50], help="k values, e.g. 1,10,50")
    p.add_argument("--pool", type=int, default=50_000)
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    p.add_argument("--fit-sample", type=int, default=20_000)

    p = sub.add_parser("map", help=SUBCOMMANDS["map"], description=SUBCOMMANDS["map"])
    _common(p, store="optional")
    p.add_argument("--labels", metavar="LABELS.tsv")
    p.add_argument("--label-column", default="genome")
    p.add_argument("--sample", type=int, default=100_000, help="contigs mapped (0 = all)")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    p.add_argument("--n-iter", type=int, default=500)
    p.add_argument(
        "--min-cluster-size", type=int, default=None, help="HDBSCAN (default scaled from 1000 at 4.8 M)"
    )
    p.add_argument("--min-samples", type=int, default=None, help="HDBSCAN (default scaled from 100 at 4.8 M)")
    p.add_argument(
        "--group",
        action="append",
        metavar="NAME=SAMPLE1,SAMPLE2",
        help="a sample group (repeat, two or more): map every contig of the groups' samples and compare "
        "them (density difference, overlay, cluster composition)",
    )


def run(args) -> int:
    common = {"split": args.split, "seed": args.seed, "threads": args.threads}
    if args.evaluation == "spearman":
        from ..evaluate.spearman import format_result, spearman

        r = spearman(
            args.embeddings,
            args.store,
            args.outdir,
            pool=args.pool,
            queries=args.queries,
            k=args.k,
            metric=args.metric,
            bootstrap=args.bootstrap,
            **common,
        )
        print(format_result(r))
    elif args.evaluation == "count-distance":
        from ..evaluate.count_distance import count_distance

        r = count_distance(
            args.embeddings,
            args.outdir,
            sample=args.sample,
            metric=args.metric,
            ranges=args.ranges,
            pairs=args.pairs,
            **common,
        )
        print(
            f"nearest-neighbour {r['metric']} distance over a sample of {r['sample']}: "
            f"median {r['nn_distance']['median']:.4g}, mean {r['nn_distance']['mean']:.4g}"
        )
        for fit in r["fits"]:
            lo, hi = fit["range"]
            print(
                f"  cumulative count fit {lo:g}-{hi:g}: slope {fit['slope']:.4g}, intercept {fit['intercept']:.4g}, "
                f"R² {fit['r2']:.3f}"
            )
        for name in ("euclidean", "cosine"):
            p = r["pairwise"][name]
            print(
                f"  random pairs, {name}: mean {p['mean']:.4g}, sd {p['std']:.4g}, bimodality {p['bimodality']:.3f}"
            )
    elif args.evaluation == "baselines":
        from ..evaluate.baselines import DEFAULT_WIDTHS, baselines, format_table

        r = baselines(
            args.embeddings,
            args.store,
            args.outdir,
            widths=args.widths or DEFAULT_WIDTHS,
            pool=args.pool,
            queries=args.queries,
            k=args.k,
            metric=args.metric,
            bootstrap=args.bootstrap,
            fit_sample=args.fit_sample,
            **common,
        )
        print(format_table(r))
    elif args.evaluation == "retrieval":
        from ..evaluate.retrieval import format_table, retrieval

        r = retrieval(
            args.embeddings,
            args.labels,
            args.outdir,
            store=args.store,
            label_column=args.label_column,
            ks=args.ks,
            pool=args.pool,
            queries=args.queries,
            metric=args.metric,
            fit_sample=args.fit_sample,
            **common,
        )
        print(format_table(r))
    else:
        from ..evaluate.map import map_embeddings
        from ..evaluate.map_groups import parse_group_options

        r = map_embeddings(
            args.embeddings,
            args.outdir,
            store=args.store,
            labels=args.labels,
            label_column=args.label_column,
            sample=args.sample,
            perplexity=args.perplexity,
            metric=args.metric,
            n_iter=args.n_iter,
            min_cluster_size=args.min_cluster_size,
            min_samples=args.min_samples,
            split=args.split,
            seed=args.seed,
            threads=args.threads or 1,
            groups=parse_group_options(args.group) if args.group else None,
        )
        print(
            f"map of {r['n']} contigs: {r['clusters']} clusters, {r['noise_fraction']:.1%} noise "
            f"(min_cluster_size {r['min_cluster_size']}, min_samples {r['min_samples']})"
        )
        for name, group in r.get("groups", {}).items():
            print(f"  group {name}: {group['contigs']} contigs of samples {', '.join(group['samples'])}")
    return 0

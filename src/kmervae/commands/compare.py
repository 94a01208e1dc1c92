"""`kmervae compare`: the cross-comparison matrix and the summary figures over many runs."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN",
                        help="run names DATASET.minTHRESHOLD.MODEL")
    parser.add_argument("--testsets", nargs="+", required=True, metavar="TESTSET",
                        help="test set names DATASET.minTHRESHOLD")
    parser.add_argument("--reports", default="results/reports",
                        help="holds RUN/TESTSET/spearman/spearman.json and .../baselines/baselines.tsv (default %(default)s)")
    parser.add_argument("--models", default="results/models",
                        help="holds RUN/history.tsv (default %(default)s)")
    parser.add_argument("--matrix", default="results/reports/cross_comparison.tsv",
                        help="the matrix TSV; the wide table and heatmap go next to it (default %(default)s)")
    parser.add_argument("--figures", default="results/figures", help="summary figures (default %(default)s)")
    parser.add_argument("--cmap", default="viridis", help="heatmap colour map (default %(default)s)")
    parser.add_argument("--length-sweep", choices=["own", "all"], default="own",
                        help="length sweep over the run's own dataset's test sets or all (default %(default)s)")


def run(args) -> int:
    from kmervae.compare import compare_runs

    written = compare_runs(
        runs=args.runs, testsets=args.testsets, reports_dir=args.reports, models_dir=args.models,
        matrix_path=args.matrix, figures_dir=args.figures,
        cmap=args.cmap, length_sweep_testsets=args.length_sweep,
    )
    for name, path in written.items():
        print(f"{name}\t{path}")
    return 0

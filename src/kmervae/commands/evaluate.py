"""`kmervae evaluate {spearman,count-distance,baselines,retrieval,map}`: the quality reports.

One subcommand per entry of :data:`kmervae.evaluate.reports.REPORTS`: its inputs, then its options.
"""

from __future__ import annotations

INPUT_HELP = {
    "store": ("STORE.zarr", "the k-mer store the embeddings came from"),
    "labels": ("LABELS.tsv", "contig_id plus label columns (kmervae chop)"),
}


def add_arguments(parser) -> None:
    from ..evaluate.reports import REPORTS
    from ..options import add_options

    sub = parser.add_subparsers(dest="evaluation", metavar="EVALUATION", required=True)
    for report in REPORTS.values():
        p = sub.add_parser(report.name, help=report.help, description=report.help)
        p.add_argument("--embeddings", required=True, metavar="EMB.zarr")
        for name in ("store", "labels"):
            need = getattr(report, name)
            if need:
                metavar, help_text = INPUT_HELP[name]
                p.add_argument(f"--{name}", required=need == "required", metavar=metavar, help=help_text)
        p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR")
        add_options(p, report.options)


def run(args) -> int:
    from ..evaluate.reports import REPORTS
    from ..options import values

    report = REPORTS[args.evaluation]
    inputs = {name: getattr(args, name) for name in ("store", "labels") if getattr(report, name)}
    numbers = report.function(
        embeddings=args.embeddings, outdir=args.outdir, **inputs, **values(args, report.options)
    )
    print(report.summary(numbers))
    return 0

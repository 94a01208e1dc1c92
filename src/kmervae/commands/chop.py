"""`kmervae chop`: genomes → contig-like fragments (FASTA) and a labels table of their origin."""

from __future__ import annotations

from ..chop import DEFAULT_MEDIAN, DEFAULT_SIGMA, DISTRIBUTIONS, REPLICON_TYPES
from ..errors import KmervaeError

#: output paths (checked against the inputs by the CLI)
OUTPUTS = ("output", "labels")


def add_arguments(parser) -> None:
    parser.add_argument("fastas", nargs="+", metavar="FASTA")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.fa[.gz]")
    parser.add_argument("--labels", required=True, metavar="LABELS.tsv")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-length", type=int, default=1000)
    parser.add_argument(
        "--max-length",
        type=int,
        default=50_000,
        help="longest fragment (default 50000; the workflow's chop.max_length defaults to 100000)",
    )
    parser.add_argument(
        "--median",
        type=float,
        default=DEFAULT_MEDIAN,
        help=f"log-normal median (default {DEFAULT_MEDIAN}; the workflow's chop.median defaults to 5000, "
        "see docs/datasets.md)",
    )
    parser.add_argument(
        "--sigma", type=float, default=DEFAULT_SIGMA, help=f"log-normal sigma (default {DEFAULT_SIGMA})"
    )
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="lognormal")
    parser.add_argument(
        "--genome-names", nargs="+", metavar="NAME", help="one genome name per FASTA (default: file stem)"
    )
    parser.add_argument(
        "--replicon-type",
        action="append",
        default=[],
        metavar="KEY=TYPE",
        help=f"record ID or genome name = {'/'.join(REPLICON_TYPES)} (default: from the header); repeatable",
    )


def run(args) -> int:
    from ..chop import chop_genomes

    types = {}
    for item in args.replicon_type:
        key, sep, value = item.partition("=")
        if not sep:
            raise KmervaeError(f"--replicon-type {item!r}: expected KEY=TYPE")
        types[key] = value
    fasta, labels = chop_genomes(
        args.fastas,
        args.output,
        args.labels,
        seed=args.seed,
        min_length=args.min_length,
        max_length=args.max_length,
        distribution=args.distribution,
        median=args.median,
        sigma=args.sigma,
        genome_names=args.genome_names,
        replicon_types=types,
    )
    with open(labels, encoding="utf-8") as fh:
        n = sum(1 for _ in fh) - 1
    print(f"{fasta}: {n} fragments; labels in {labels}")
    return 0

"""`kmervae chop`: genomes → contig-like fragments (FASTA) and a labels table of their origin."""

from __future__ import annotations

from ..chop import OPTIONS, REPLICON_TYPES
from ..errors import KmervaeError
from ..options import add_options, values

#: output paths (checked against the inputs by the CLI)
OUTPUTS = ("output", "labels")


def add_arguments(parser) -> None:
    parser.add_argument("fastas", nargs="+", metavar="FASTA")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.fa[.gz]")
    parser.add_argument("--labels", required=True, metavar="LABELS.tsv")
    add_options(parser, OPTIONS)
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
        args.fastas, args.output, args.labels, replicon_types=types, **values(args, OPTIONS)
    )
    with open(labels, encoding="utf-8") as fh:
        n = sum(1 for _ in fh) - 1
    print(f"{fasta}: {n} fragments; labels in {labels}")
    return 0

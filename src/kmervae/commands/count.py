"""`kmervae count`: FASTA (plain or gzip) → k-mer store of canonical k-mer counts."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from ..count import OPTIONS
    from ..options import add_options

    parser.add_argument("fasta", nargs="+", metavar="FASTA", help="FASTA files, plain or gzip")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="the k-mer store to write")
    add_options(parser, OPTIONS)


def run(args) -> int:
    from ..count import OPTIONS, count_fasta
    from ..errors import KmervaeError
    from ..kmers import Layout
    from ..options import values
    from ..io.store import KmerStore

    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise KmervaeError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    settings = values(args, OPTIONS)
    layout = Layout.parse(settings.pop("k"))
    out = count_fasta(args.fasta, args.output, layout=layout, **settings)
    store = KmerStore(out)
    print(
        f"{out}: {store.n} records, {store.attrs['bases']} bases, "
        f"{layout.describe()} ({layout.width} columns)"
    )
    return 0

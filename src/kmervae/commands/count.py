"""`kmervae count`: FASTA (plain or gzip) → k-mer store of canonical k-mer counts."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("fasta", nargs="+", metavar="FASTA", help="FASTA files, plain or gzip")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="the k-mer store to write")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="cores to use (default: 1)")
    parser.add_argument(
        "--k", default="6..1", metavar="KS", help="k-mer groups, e.g. 6..1 (default), 7..1, 5..1, 4 or 6,4"
    )
    parser.add_argument(
        "--sample", default=None, metavar="NAME", help="sample name (default: OUT without .zarr)"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        metavar="N",
        help="records per chunk and store chunk; bounds memory (default: 4096 for 6..1, 1024 for 7..1)",
    )


def run(args) -> int:
    from ..count import count_fasta
    from ..errors import KmervaeError
    from ..kmers import Layout
    from ..store import KmerStore

    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise KmervaeError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    layout = Layout.parse(args.k)
    out = count_fasta(
        args.fasta,
        args.output,
        layout=layout,
        threads=args.threads,
        sample=args.sample,
        chunk_rows=args.chunk_rows,
    )
    store = KmerStore(out)
    print(
        f"{out}: {store.n} records, {store.attrs['bases']} bases, "
        f"{layout.describe()} ({layout.width} columns)"
    )
    return 0

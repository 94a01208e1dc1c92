"""`kmervae select`: a per-threshold store holding the rows at or above a minimum length."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="STORE.zarr")
    parser.add_argument(
        "--min-length", type=int, required=True, metavar="T", help="keep rows with length >= T"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the input's)")


def run(args) -> int:
    from ..select import select_min_length
    from ..store import KmerStore

    out = select_min_length(args.store, args.output, args.min_length, chunk_rows=args.chunk_rows)
    n_in, n_out = KmerStore(args.store).n, KmerStore(out).n
    print(f"{out}: kept {n_out} of {n_in} rows with length >= {args.min_length}")
    return 0

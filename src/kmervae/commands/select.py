"""`kmervae select`: a store of the rows at or above a minimum length (and/or listed by ID)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="STORE.zarr")
    parser.add_argument("--min-length", type=int, default=0, metavar="T", help="keep rows with length >= T")
    parser.add_argument(
        "--ids", default=None, metavar="IDS.txt", help="keep only the IDs listed (one per line)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the input's)")


def run(args) -> int:
    from ..select import select_min_length
    from ..store import KmerStore

    out = select_min_length(args.store, args.output, args.min_length, args.chunk_rows, ids_file=args.ids)
    n_in, n_out = KmerStore(args.store).n, KmerStore(out).n
    listed = f" listed in {args.ids}" if args.ids else ""
    print(f"{out}: kept {n_out} of {n_in} rows{listed} with length >= {args.min_length}")
    return 0

"""`kmervae select`: a store of the rows at or above a minimum length (and/or listed by ID)."""

from __future__ import annotations

from ..options import add_options, values
from ..select import OPTIONS


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="STORE.zarr")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    add_options(parser, OPTIONS)


def run(args) -> int:
    from ..select import select_min_length
    from ..io.store import KmerStore

    out = select_min_length(args.store, args.output, **values(args, OPTIONS))
    n_in, n_out = KmerStore(args.store).n, KmerStore(out).n
    listed = f" listed in {args.ids_file}" if args.ids_file else ""
    print(f"{out}: kept {n_out} of {n_in} rows{listed} with length >= {args.min_length}")
    return 0

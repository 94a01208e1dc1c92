"""`kmervae import-legacy`: a legacy N x 2773 float32 .npy + ids.txt → a freq store."""

from __future__ import annotations

from ..io.store import DEFAULT_CHUNK_ROWS


def add_arguments(parser) -> None:
    parser.add_argument("npy", metavar="NPY")
    parser.add_argument("ids", metavar="IDS.txt")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    parser.add_argument(
        "--groups", default="6..1", help="k-mer groups of the frequency columns (default 6..1)"
    )
    parser.add_argument("--sample", default=None, help="sample name stored with the data (default: none)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)


def run(args) -> int:
    from ..kmers import Layout
    from ..io.legacy import import_legacy
    from ..io.store import KmerStore

    out = import_legacy(
        args.npy, args.ids, args.output, Layout.parse(args.groups), args.chunk_rows, args.sample
    )
    print(f"{out}: {KmerStore(out).n} rows of {Layout.parse(args.groups).describe()} frequencies")
    return 0

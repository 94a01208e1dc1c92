"""`kmervae export-legacy`: a store → a legacy float32 .npy (length + frequencies) + ids.txt."""

from __future__ import annotations

#: output paths (checked against the inputs by the CLI)
OUTPUTS = ("output", "ids")


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="STORE.zarr")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.npy")
    parser.add_argument("--ids", required=True, metavar="OUT_ids.txt")


def run(args) -> int:
    from ..io.legacy import export_legacy

    npy, ids = export_legacy(args.store, args.output, args.ids)
    print(f"{npy}, {ids}: written")
    return 0

"""`kmervae merge`: stores → one globally shuffled dataset with sample and split arrays."""

from __future__ import annotations

from ..merge import OPTIONS
from ..options import add_options, values


def add_arguments(parser) -> None:
    parser.add_argument("stores", nargs="+", metavar="STORE.zarr")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    add_options(parser, OPTIONS)


def run(args) -> int:
    from ..merge import merge_stores
    from ..io.store import KmerStore

    settings = values(args, OPTIONS)
    settings["memory_budget"] = settings.pop("memory_mb") << 20
    out = merge_stores(args.stores, args.output, **settings)
    sizes = KmerStore(out).attrs["provenance"]["split_sizes"]
    print(f"{out}: " + ", ".join(f"{name} {n}" for name, n in sizes.items()))
    return 0

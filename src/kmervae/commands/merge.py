"""`kmervae merge`: stores → one globally shuffled dataset with sample and split arrays."""

from __future__ import annotations

from ..merge import DEFAULT_FRACTIONS, DEFAULT_MEMORY_BUDGET


def add_arguments(parser) -> None:
    parser.add_argument("stores", nargs="+", metavar="STORE.zarr")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.zarr")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=list(DEFAULT_FRACTIONS),
        metavar="F",
        help="train validation [test] fractions (default 0.9 0.1 0)",
    )
    parser.add_argument("--samples", nargs="+", metavar="NAME", help="one sample name per input store")
    parser.add_argument(
        "--test-samples",
        nargs="+",
        default=[],
        metavar="NAME",
        help="held-out samples: all their rows go to test",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per chunk (default: the first input's)"
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=DEFAULT_MEMORY_BUDGET >> 20,
        help=f"row data held in memory at once, MiB (default {DEFAULT_MEMORY_BUDGET >> 20})",
    )


def run(args) -> int:
    from ..merge import merge_stores
    from ..store import KmerStore

    out = merge_stores(
        args.stores,
        args.output,
        seed=args.seed,
        fractions=args.fractions,
        samples=args.samples,
        test_samples=args.test_samples,
        chunk_rows=args.chunk_rows,
        memory_budget=args.memory_mb << 20,
    )
    sizes = KmerStore(out).attrs["provenance"]["split_sizes"]
    print(f"{out}: " + ", ".join(f"{name} {n}" for name, n in sizes.items()))
    return 0

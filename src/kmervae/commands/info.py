"""`kmervae info`: describe a k-mer store (rows, layout, lengths, splits, samples, provenance)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def run(args) -> int:
    import json

    from ..info import describe, render

    info = describe(args.path)
    print(json.dumps(info, indent=2, default=str) if args.json else render(info))
    return 0

"""`kmervae info`: a short summary of any kmervae output (store, embeddings, model, index, reports)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a k-mer store or dataset, embeddings store, model directory (kmervae train), "
        "FAISS index (INDEX.faiss, or its .json sidecar) or report folder (kmervae evaluate, "
        "or a tree of them)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the same facts as JSON (machine-readable; NaN as null)"
    )


def run(args) -> int:
    from ..info import describe, render, to_json

    info = describe(args.path)
    print(to_json(info) if args.json else render(info))
    return 0

"""`kmervae query`: nearest neighbours of IDs, new contigs (FASTA) or embeddings from an index."""

from __future__ import annotations

from ..index import QUERY_OPTIONS, QUERY_SOURCES
from ..options import add_options, values


def add_arguments(parser) -> None:
    parser.add_argument("--index", required=True, metavar="INDEX.faiss")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ids",
        nargs="+",
        metavar="ID",
        help="contigs already in the index, as ID or SAMPLE:ID (each left out of its own list)",
    )
    add_options(source, QUERY_SOURCES)
    source.add_argument("--fasta", nargs="+", metavar="Q.fa", help="new contigs: embedded with --model first")
    source.add_argument("--embeddings", metavar="Q.zarr", help="an embeddings store of the same model")
    parser.add_argument("--model", metavar="MODEL_DIR", help="model for --fasta (the index's model)")
    parser.add_argument("-o", "--output", required=True, metavar="neighbours.tsv")
    add_options(parser, QUERY_OPTIONS)


def run(args) -> int:
    from ..index import query_index

    rows = query_index(
        args.index,
        args.output,
        ids=args.ids,
        fasta=args.fasta,
        model_dir=args.model,
        embeddings=args.embeddings,
        **values(args, QUERY_SOURCES),
        **values(args, QUERY_OPTIONS),
    )
    print(f"{args.output}: {rows} neighbour rows")
    return 0

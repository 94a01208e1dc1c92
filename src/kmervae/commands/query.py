"""`kmervae query`: nearest neighbours of IDs, new contigs (FASTA) or embeddings from an index."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--index", required=True, metavar="INDEX.faiss")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ids", nargs="+", metavar="ID", help="contigs already in the index (each left out of its own list)"
    )
    source.add_argument("--fasta", nargs="+", metavar="Q.fa", help="new contigs: embedded with --model first")
    source.add_argument("--embeddings", metavar="Q.zarr", help="an embeddings store of the same model")
    parser.add_argument("--model", metavar="MODEL_DIR", help="model for --fasta (the index's model)")
    parser.add_argument("--weights", choices=("best", "final"), default="best")
    parser.add_argument("-k", type=int, default=50, help="neighbours per query (default 50)")
    parser.add_argument("-o", "--output", required=True, metavar="neighbours.tsv")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where --fasta queries are embedded (default: CUDA if present)",
    )
    parser.add_argument(
        "--min-length",
        type=int,
        default=None,
        metavar="BP",
        help="skip --fasta queries shorter than BP (default: the model's training floor, the length its "
        "training data was selected at); 0 queries every contig",
    )


def run(args) -> int:
    from ..index import query_index

    rows = query_index(
        args.index,
        args.output,
        k=args.k,
        ids=args.ids,
        fasta=args.fasta,
        model_dir=args.model,
        embeddings=args.embeddings,
        weights=args.weights,
        threads=args.threads,
        device=args.device,
        min_length=args.min_length,
    )
    print(f"{args.output}: {rows} neighbour rows")
    return 0

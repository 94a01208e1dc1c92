"""`kmervae embed`: a store or FASTA → embeddings store of z_mean."""

from __future__ import annotations

from ..embed import DEFAULT_BATCH_SIZE


def add_arguments(parser) -> None:
    parser.add_argument(
        "input", nargs="+", metavar="INPUT", help="a k-mer store (.zarr) or FASTA file(s), plain or gzip"
    )
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="trained model directory")
    parser.add_argument("-o", "--output", required=True, metavar="EMB.zarr", help="embeddings store to write")
    parser.add_argument(
        "--weights", choices=("best", "final"), default="best", help="which checkpoint (default best)"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch / counting threads")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA if present"
    )
    parser.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        default=None,
        help="embed one split of a dataset store",
    )
    parser.add_argument(
        "--min-length",
        type=int,
        default=None,
        metavar="BP",
        help="skip contigs shorter than BP (default: for FASTA the model's training floor, the length its "
        "training data was selected at; for a store 0, every row); 0 embeds every contig",
    )


def run(args) -> int:
    from ..embed import embed_path, open_embeddings

    inputs = args.input if len(args.input) > 1 else args.input[0]
    out = embed_path(
        args.model,
        inputs,
        args.output,
        weights=args.weights,
        batch_size=args.batch_size,
        threads=args.threads,
        split=args.split,
        device=args.device,
        min_length=args.min_length,
    )
    emb = open_embeddings(out)
    print(f"{out}: {emb.n} contigs x {emb.latent_dim} (model {emb.model_config_hash})")
    return 0

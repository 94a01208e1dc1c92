"""`kmervae embed`: a store or FASTA → embeddings store of z_mean."""

from __future__ import annotations

from ..embed import OPTIONS
from ..options import add_options, values


def add_arguments(parser) -> None:
    parser.add_argument(
        "input", nargs="+", metavar="INPUT", help="a k-mer store (.zarr) or FASTA file(s), plain or gzip"
    )
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="trained model directory")
    parser.add_argument("-o", "--output", required=True, metavar="EMB.zarr", help="embeddings store to write")
    add_options(parser, OPTIONS)


def run(args) -> int:
    from ..embed import embed_path, open_embeddings

    inputs = args.input if len(args.input) > 1 else args.input[0]
    out = embed_path(args.model, inputs, args.output, **values(args, OPTIONS))
    emb = open_embeddings(out)
    print(f"{out}: {emb.n} contigs x {emb.latent_dim} (model {emb.model_config_hash})")
    return 0

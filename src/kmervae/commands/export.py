"""`kmervae export`: embeddings (and neighbours) as TSV, Parquet, NumPy or AnnData .h5ad."""

from __future__ import annotations

DESCRIPTION = """\
Write an embeddings store as TSV, Parquet, NumPy (OUT.npy float32 N x d plus OUT.ids.txt)
or AnnData .h5ad (scanpy / scverse), in the embeddings' row order. The format comes from
the output's suffix (.tsv, .parquet, .npy, .h5ad) or --format.

Columns (TSV, Parquet, the obs of .h5ad): id, length, sample, split, gc (from the k-mer
store), label (--labels), tsne_x/tsne_y/map_cluster (--map), then z_0 .. z_{d-1}
(.h5ad: obsm["X_vae"], and obsm["X_tsne"] from --map; X is left out: use_rep="X_vae").

Memory: every format is written chunk by chunk (--chunk-rows), plus the labels and map
tables; .h5ad also holds the set of IDs (to make obs names unique), and --neighbours
the set of IDs and, for .h5ad, the neighbour matrix. Every file is written to a temporary
sibling and renamed into place when complete."""


def add_arguments(parser) -> None:
    import argparse

    from ..export import DEFAULT_CHUNK_ROWS, FORMATS

    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("embeddings", metavar="EMB.zarr", help="embeddings store from `kmervae embed`")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="OUT.tsv, .parquet, .npy or .h5ad"
    )
    parser.add_argument("--format", choices=FORMATS, help="override the format the suffix implies")
    gc = parser.add_mutually_exclusive_group()
    gc.add_argument(
        "--store",
        metavar="STORE.zarr",
        help="k-mer store the embeddings came from, for the gc column "
        "(default: the store recorded in the embeddings, when it is still there)",
    )
    gc.add_argument("--no-gc", action="store_true", help="leave the gc column out")
    parser.add_argument(
        "--labels",
        metavar="LABELS.tsv",
        help="contig_id plus label columns (kmervae chop) for the label column",
    )
    parser.add_argument(
        "--label-column", default="genome", help="column of --labels to export (default: genome)"
    )
    parser.add_argument(
        "--map",
        dest="map_tsv",
        metavar="map.tsv",
        help="map.tsv of `kmervae evaluate map`: t-SNE and clusters",
    )
    parser.add_argument(
        "--neighbours",
        metavar="NEIGHBOURS.tsv",
        help="neighbours TSV of `kmervae query`: .h5ad obsp['vae_distances'], "
        "or OUT.neighbours.parquet beside a Parquet output",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help="rows read and written at once",
    )


def run(args) -> int:
    from ..export import export_embeddings

    result = export_embeddings(
        args.embeddings,
        args.output,
        args.format,
        store=args.store,
        gc=not args.no_gc,
        labels=args.labels,
        label_column=args.label_column,
        map_tsv=args.map_tsv,
        neighbours=args.neighbours,
        chunk_rows=args.chunk_rows,
    )
    columns = f"; columns {', '.join(result['columns'])}" if "columns" in result else ""
    print(
        f"{result['rows']:,} contigs x {result['width']} as {result['format']}: "
        f"{', '.join(result['files'])}{columns}"
    )
    return 0

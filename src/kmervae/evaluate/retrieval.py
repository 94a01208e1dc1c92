"""Does the embedding do its job? Precision@k of same-label neighbours against raw features.

With a labels table (``kmervae chop`` writes contig_id, genome, record, replicon_type,
...), seeded queries from the labelled pool take their k exact nearest neighbours in the
VAE embedding and, in the same run on the same queries, in raw CLR features, PCA of CLR
at the latent width and 4-mer-only CLR (the composition signal binners such as VAMB
use). ``chance`` is the precision a random neighbour would give.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..errors import KmervaeError
from ..options import Option, comma_ints, comma_join, defaults
from ..io.store import KmerStore
from .baselines import DEFAULT_FIT_SAMPLE, fit_pca, pca_fit_rows, project
from .neighbours import (
    METRICS,
    SEED,
    SPLIT,
    THREADS,
    blocks_of,
    check_pool,
    clr_rows,
    eligible_rows,
    exact_knn,
    kmer_groups,
    limit_threads,
    locate_in_store,
    row_samples,
    sample_rows,
    write_json,
    write_tsv,
)

#: the labels column the precision counts; shared with the map's colouring
LABEL_COLUMN = Option(
    "label_column", "genome", help="the labels table's column to use", workflow="evaluation.label_column"
)
#: the settings of :func:`retrieval` and their CLI flags
OPTIONS = (
    SPLIT,
    SEED,
    THREADS,
    LABEL_COLUMN,
    Option(
        "ks",
        (1, 10, 50),
        comma_ints,
        "k values, e.g. 1,10,50",
        workflow="evaluation.retrieval_ks",
        render=comma_join,
    ),
    Option("pool", 50_000, int, "pool size P (0 = all)", workflow="evaluation.pool"),
    Option(
        "queries", 1_000, int, "query contigs drawn from the pool", workflow="evaluation.retrieval_queries"
    ),
    Option("metric", "euclidean", help="embedding distance", choices=METRICS, workflow="evaluation.metric"),
    Option("fit_sample", DEFAULT_FIT_SAMPLE, int, "pool contigs the PCA is fitted on"),
)
DEFAULTS = defaults(OPTIONS)
DEFAULT_KS = DEFAULTS["ks"]


def read_labels(path: str | os.PathLike, column: str) -> dict[str, str]:
    """contig_id → label from a TSV; a missing column or duplicated contig is one clear error."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such labels table")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    for name in ("contig_id", column):
        if name not in table.columns:
            raise KmervaeError(f"{path}: no column {name!r} (columns: {', '.join(table.columns)})")
    dup = table["contig_id"].duplicated()
    if dup.any():
        i = int(np.nonzero(dup.to_numpy())[0][0])
        raise KmervaeError(f"{path}: record {i + 1} ({table['contig_id'].iloc[i]}) repeats a contig_id")
    return dict(zip(table["contig_id"], table[column]))


def precision_at(neighbour_labels: np.ndarray, query_labels: np.ndarray, ks) -> dict[int, float]:
    same = neighbour_labels == query_labels[:, None]
    return {k: float(same[:, :k].mean()) for k in ks}


def retrieval(
    embeddings: str | os.PathLike,
    labels: str | os.PathLike,
    outdir: str | os.PathLike,
    store: str | os.PathLike | None = None,
    label_column: str = DEFAULTS["label_column"],
    ks=DEFAULTS["ks"],
    split: str = DEFAULTS["split"],
    pool: int = DEFAULTS["pool"],
    queries: int = DEFAULTS["queries"],
    metric: str = DEFAULTS["metric"],
    seed: int = DEFAULTS["seed"],
    fit_sample: int = DEFAULTS["fit_sample"],
    threads: int | None = DEFAULTS["threads"],
) -> dict:
    """Write retrieval.tsv/.json and a figure; return {"rows": [{method, width, k, precision}], ...}."""
    outdir = Path(outdir)
    ks = sorted({int(k) for k in ks})
    emb = Embeddings(embeddings)
    label_of = read_labels(labels, label_column)
    used, rows = eligible_rows(emb, split)
    pool_rows = sample_rows(_labelled(emb, rows, label_of), pool, seed)
    check_pool(len(pool_rows), max(ks), f"{embeddings} with labels {labels}")
    pool_ids = emb.take_ids(pool_rows)
    pool_labels = np.array([label_of[i] for i in pool_ids])
    rng = np.random.default_rng(seed)
    query = np.sort(rng.choice(len(pool_rows), size=min(int(queries), len(pool_rows)), replace=False))
    methods = [("vae", emb.latent_dim, lambda p: emb.take(pool_rows[p]))]
    if store is not None:
        methods += _store_methods(
            emb, KmerStore(store), pool_ids, embeddings, fit_sample, seed, threads, pool_rows
        )
    table = []
    with limit_threads(threads):
        for name, width, vectors_at in methods:
            nb, _ = exact_knn(
                vectors_at(query), blocks_of(vectors_at, len(pool_rows)), max(ks), metric, exclude=query
            )
            for k, value in precision_at(pool_labels[nb], pool_labels[query], ks).items():
                table.append({"method": name, "width": int(width), "k": k, "precision": value})
    # a random neighbour's chance of sharing the query's label
    values, counts = np.unique(pool_labels, return_counts=True)
    same = counts[np.searchsorted(values, pool_labels[query])] - 1
    chance = float(np.mean(same / (len(pool_rows) - 1)))
    table += [{"method": "chance", "width": 0, "k": k, "precision": chance} for k in ks]
    common = {"pool": len(pool_rows), "queries": len(query), "metric": metric, "label_column": label_column}
    write_tsv(
        outdir / "retrieval.tsv",
        ["method", "width", "k", "precision", "queries", "pool", "metric", "label_column"],
        (
            [
                r["method"],
                r["width"],
                r["k"],
                r["precision"],
                common["queries"],
                common["pool"],
                metric,
                label_column,
            ]
            for r in table
        ),
    )
    numbers = {
        "rows": table,
        **common,
        "labels": len(values),
        "split": used,
        "seed": int(seed),
        "embeddings": str(embeddings),
        "store": str(store) if store else None,
        "model_config_hash": emb.model_config_hash,
    }
    _plot(table, ks, outdir, common)
    write_json(outdir / "retrieval.json", numbers)
    return numbers


def _labelled(emb: Embeddings, rows: np.ndarray, label_of: dict) -> np.ndarray:
    """The rows among ``rows`` whose contig has a label."""
    known = np.array(list(label_of), dtype=str)
    labelled = []
    for a, b in emb.chunks(1 << 18):
        inside = rows[(rows >= a) & (rows < b)]
        if len(inside):
            labelled.append(inside[np.isin(emb.ids(a, b)[inside - a], known)])
    return np.concatenate(labelled) if labelled else np.empty(0, dtype=np.int64)


def _store_methods(
    emb, kstore: KmerStore, pool_ids, embeddings, fit_sample, seed, threads, pool_rows
) -> list:
    """The k-mer baselines of the pool: (name, width, vectors of pool positions) for CLR, PCA, 4-mer CLR."""
    store_rows = locate_in_store(kstore, pool_ids, embeddings, row_samples(emb, pool_rows))
    groups = kmer_groups(emb, kstore)
    methods = [
        ("clr", len(kstore.layout.columns_for(groups)), lambda p: clr_rows(kstore, store_rows[p], groups))
    ]
    with limit_threads(threads):
        _, fit_rows = pca_fit_rows(kstore, store_rows, fit_sample, seed)
        pca, _, _ = fit_pca(kstore, fit_rows, groups, [emb.latent_dim])
    if pca is not None:
        coords = project(pca, kstore, store_rows, groups)
        methods.append(("pca_clr", emb.latent_dim, lambda p: coords[p]))
    if 4 in kstore.layout.ks:
        methods.append(
            ("clr_4mer", kstore.layout.group(4).width, lambda p: clr_rows(kstore, store_rows[p], (4,)))
        )
    return methods


def format_table(numbers: dict) -> str:
    """The precision@k table as printed by the CLI (methods as rows, k as columns)."""
    ks = sorted({r["k"] for r in numbers["rows"]})
    methods = list(dict.fromkeys(r["method"] for r in numbers["rows"]))
    value = {(r["method"], r["k"]): r for r in numbers["rows"]}
    lines = [
        f"precision@k of same-{numbers['label_column']} neighbours; pool {numbers['pool']}, "
        f"{numbers['queries']} queries, {numbers['labels']} labels, {numbers['metric']}",
        f"{'method':<10}{'width':>7}" + "".join(f"{f'P@{k}':>9}" for k in ks),
    ]
    for m in methods:
        width = value[(m, ks[0])]["width"] or "-"
        lines.append(f"{m:<10}{width:>7}" + "".join(f"{value[(m, k)]['precision']:>9.3f}" for k in ks))
    return "\n".join(lines)


def retrieval_figure(table, ks, common):
    """Precision@k per method; a linear k axis with the k values as ticks while there are few of them."""
    from ..plots import BASELINE_COLOUR, SINGLE_COLUMN, categorical_palette, figure, legend_outside

    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    methods = [m for m in dict.fromkeys(r["method"] for r in table) if m != "chance"]
    for i, (m, colour) in enumerate(zip(methods, categorical_palette(len(methods)))):
        rows = [r for r in table if r["method"] == m]
        # open markers of different shapes stay visible where methods have the same precision
        ax.plot([r["k"] for r in rows], [r["precision"] for r in rows], marker="osD^vP"[i % 6], mfc="none",
                markersize=4 + 1.2 * (len(methods) - 1 - i), color=colour, label=f"{m} ({rows[0]['width']})")
    chance = [r for r in table if r["method"] == "chance"]
    if chance:
        ax.plot([r["k"] for r in chance], [r["precision"] for r in chance], ls="--", color=BASELINE_COLOUR,
                label="chance")
    if len(ks) > 6 and min(ks) > 0 and max(ks) / min(ks) > 20:
        ax.set_xscale("log")
    else:
        ax.set_xticks(ks)
        pad = 0.05 * (max(ks) - min(ks) or 1)
        ax.set_xlim(min(ks) - pad, max(ks) + pad)
    ax.set_xlabel("k (nearest neighbours per query)")
    ax.set_ylabel(f"precision@k: neighbours of the same\n{common['label_column']} (higher is better)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    legend_outside(ax, title="method (width)")
    ax.set_title(f"n = {common['queries']:,} queries, pool {common['pool']:,}")
    return fig


def _plot(table, ks, outdir: Path, common) -> None:
    from ..plots import save_figure

    save_figure(retrieval_figure(table, ks, common), outdir / "retrieval")

"""A 2-D map of the embedding: openTSNE, HDBSCAN clusters on the map, coloured by GC and label.

openTSNE (perplexity 30, cosine by default, seeded) on a seeded sample of the embeddings, its
neighbours from FAISS (:mod:`kmervae.evaluate.map_tsne`), then HDBSCAN on the 2-D coordinates.
With ``place_rest`` the other contigs are placed on the fitted map, so it covers them all.
Every phase reports progress on stderr (:mod:`kmervae.progress`). The paper's analysis used
min_cluster_size 1000 and min_samples 100 on 4.8 million contigs; left unset, both scale with
the number of contigs on the map from those values (at least 10 and 5), so the demo gets
sensible clusters too.

Given sample groups, the map covers every contig of their samples and adds the groups'
density difference, overlay and cluster composition (:mod:`kmervae.evaluate.map_groups`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..errors import KmervaeError
from ..kmers import Layout, gc_fraction
from ..options import Option, defaults
from ..progress import progress
from ..io.store import KmerStore
from . import map_tsne
from .map_groups import check_groups, group_of_samples, parse_group_options, write_group_reports
from .neighbours import (
    METRICS,
    SEED,
    SPLIT,
    eligible_rows,
    locate_in_store,
    row_samples,
    sample_rows,
    write_json,
    write_tsv,
)
from .retrieval import LABEL_COLUMN, read_labels

GROUP_COLUMNS = ("sample", "group", "id", "length", "x", "y", "gc", "cluster")  # map.tsv of a groups map
RASTER_POINTS = 20_000  # larger maps are drawn as an image inside the PDF
PAPER_POINTS, PAPER_MIN_CLUSTER, PAPER_MIN_SAMPLES = 4_800_000, 1000, 100
#: the settings of :func:`map_embeddings` and their CLI flags
OPTIONS = (
    SPLIT,
    SEED,
    Option("threads", 1, int, "threads for neighbours, t-SNE and HDBSCAN"),
    LABEL_COLUMN,
    Option("sample", 100_000, int, "contigs mapped (0 = all)", workflow="evaluation.sample"),
    Option("perplexity", 30.0, float, "t-SNE perplexity (lowered for small samples)"),
    Option(
        "metric",
        "cosine",
        help="t-SNE input distance (default cosine; the workflow's evaluation.metric defaults to euclidean)",
        choices=METRICS,
        workflow="evaluation.metric",
        workflow_default="euclidean",
    ),
    Option("n_iter", 500, int, "t-SNE iterations", workflow="evaluation.map_iterations"),
    Option("min_cluster_size", None, int, "HDBSCAN (default scaled from 1000 at 4.8 M)"),
    Option("min_samples", None, int, "HDBSCAN (default scaled from 100 at 4.8 M)"),
    Option(
        "groups",
        None,
        help="sample groups, two or more: map every contig of their samples and compare them "
        "(density difference, overlay, cluster composition)",
        metavar="NAME=SAMPLE1,SAMPLE2",
        action="append",
        flag="--group",
    ),
    Option(
        "place_rest",
        False,
        help="fit the t-SNE on --sample contigs and place every other one on that map "
        "(openTSNE transform), so the map covers all of them",
        action="store_true",
    ),
)
DEFAULTS = {**defaults(OPTIONS), "early_exaggeration_iter": 250}


def scaled_hdbscan_params(n: int, min_cluster_size: int | None, min_samples: int | None) -> tuple[int, int]:
    scale = n / PAPER_POINTS
    mcs = int(min_cluster_size or max(10, round(PAPER_MIN_CLUSTER * scale)))
    ms = int(min_samples or max(5, round(PAPER_MIN_SAMPLES * scale)))
    return mcs, ms


def tsne_map(
    emb: Embeddings,
    rows: np.ndarray,
    fitted: np.ndarray,
    perplexity: float,
    metric: str,
    n_iter: int,
    early_exaggeration_iter: int,
    seed: int,
    threads: int,
) -> tuple[np.ndarray, float]:
    """(map coordinates of ``rows``, perplexity used): openTSNE fitted on ``rows[fitted]``, the rest placed.

    ``fitted`` are positions in ``rows``; the other rows are placed on the fitted map
    (:func:`kmervae.evaluate.map_tsne.place`) in chunks read from the store.
    """
    if len(fitted) < 4:
        raise KmervaeError(f"a t-SNE map needs at least 4 contigs, got {len(fitted)}")
    perplexity = min(float(perplexity), (len(fitted) - 1) / 3)
    embedding = map_tsne.fit(
        map_tsne.prepared(emb.take(rows[fitted]), metric),
        perplexity,
        n_iter,
        early_exaggeration_iter,
        seed,
        threads,
    )
    xy = np.empty((len(rows), 2), dtype=np.float64)
    rest = np.setdiff1d(np.arange(len(rows)), fitted)
    if len(rest):
        step = map_tsne.PLACE_CHUNK
        chunks = (
            map_tsne.prepared(emb.take(rows[rest[a : a + step]]), metric) for a in range(0, len(rest), step)
        )
        xy[rest] = map_tsne.place(embedding, chunks, len(rest))
    xy[fitted] = np.asarray(embedding, dtype=np.float64)  # after placing: transform centres the map
    return xy, perplexity


def cluster(xy: np.ndarray, min_cluster_size: int, min_samples: int, threads: int | None) -> np.ndarray:
    """HDBSCAN labels of the 2-D map (-1 = noise): the hdbscan package's exact Boruvka KD-tree.

    It finds scikit-learn's clusters (bench/hdbscan.py compares them: adjusted Rand index
    above 0.999 on 100k-300k-point maps, where their order of tied merges differs) several
    times faster. scikit-learn's ``min_samples`` counts the point itself and the hdbscan
    package's does not, so ``min_samples - 1`` there is the same core distance; 1 (no
    core distance) stays with scikit-learn.
    """
    with progress("clustering (HDBSCAN)", total=1, unit="map") as bar:
        if min_samples < 2:
            from sklearn.cluster import HDBSCAN

            labels = HDBSCAN(
                min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True
            ).fit_predict(xy)
        else:
            import hdbscan

            labels = hdbscan.HDBSCAN(
                min_cluster_size=min_cluster_size,
                min_samples=min_samples - 1,
                algorithm="boruvka_kdtree",
                approx_min_span_tree=False,
                core_dist_n_jobs=max(int(threads or 1), 1),
            ).fit_predict(xy)
        bar.update(1)
    return np.asarray(labels, dtype=np.int64)


def map_embeddings(
    embeddings: str | os.PathLike,
    outdir: str | os.PathLike,
    store: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    label_column: str = DEFAULTS["label_column"],
    split: str = DEFAULTS["split"],
    sample: int = DEFAULTS["sample"],
    perplexity: float = DEFAULTS["perplexity"],
    metric: str = DEFAULTS["metric"],
    n_iter: int = DEFAULTS["n_iter"],
    early_exaggeration_iter: int = DEFAULTS["early_exaggeration_iter"],
    min_cluster_size: int | None = DEFAULTS["min_cluster_size"],
    min_samples: int | None = DEFAULTS["min_samples"],
    seed: int = DEFAULTS["seed"],
    threads: int | None = DEFAULTS["threads"],
    groups: dict[str, list[str]] | list[str] | None = DEFAULTS["groups"],
    place_rest: bool = DEFAULTS["place_rest"],
) -> dict:
    """Write map.tsv (id, x, y, cluster, gc[, label]), map.json and the figures; return the numbers.

    ``groups`` ({name: [sample, ...]}, two or more) maps every contig of those samples
    (``split`` ``auto`` means all rows here; ``sample`` still caps the map, 0 = all) and
    adds the group comparison of :mod:`kmervae.evaluate.map_groups`; map.tsv then has the
    columns sample, group, id, length, x, y, gc, cluster[, label]. The coordinates are
    rounded to the 6 significant digits map.tsv holds before clustering, so everything
    computed from the map can be recomputed from map.tsv. ``groups`` may also be the
    ``NAME=SAMPLE1,SAMPLE2`` values of ``--group`` (repeatable).

    ``place_rest`` fits the t-SNE on the ``sample`` and places every other row of the
    split (or of the groups' samples) on that map with openTSNE's transform, so the map
    covers them all; HDBSCAN then clusters all of them.
    """
    if groups and not isinstance(groups, dict):
        groups = parse_group_options(groups)

    outdir = Path(outdir)
    emb = Embeddings(embeddings)
    used, rows, fitted, groups, group_of = map_rows(emb, split, sample, seed, groups, place_rest)
    ids = emb.take_ids(rows)
    xy, used_perplexity = tsne_map(
        emb, rows, fitted, perplexity, metric, n_iter, early_exaggeration_iter, seed, threads
    )
    xy = as_written(xy)
    mcs, ms = scaled_hdbscan_params(len(rows), min_cluster_size, min_samples)
    clusters = cluster(xy, mcs, ms, threads)
    samples = row_samples(emb, rows)
    gc = map_gc(store, ids, embeddings, samples)
    label_values = None
    if labels is not None:
        label_of = read_labels(labels, label_column)
        label_values = np.array([label_of.get(i, "") for i in ids])
    columns = {"id": ids, "x": xy[:, 0], "y": xy[:, 1], "cluster": clusters, "gc": gc}
    group_columns = (emb.lengths()[rows], np.array(list(groups), dtype=object)[group_of]) if groups else None
    columns = _map_columns(columns, samples, group_columns, label_values)
    write_tsv(outdir / "map.tsv", list(columns), zip(*columns.values()))
    n_clusters = int(clusters.max() + 1) if len(clusters) else 0
    numbers = {
        "n": len(rows),
        "fitted": len(fitted),
        "split": used,
        "perplexity": used_perplexity,
        "metric": metric,
        "n_iter": int(n_iter),
        "min_cluster_size": mcs,
        "min_samples": ms,
        "clusters": n_clusters,
        "noise_fraction": float(np.mean(clusters < 0)),
        "seed": int(seed),
        "embeddings": str(embeddings),
        "model_config_hash": emb.model_config_hash,
    }
    _plot(xy, clusters, gc, label_values, label_column, outdir)
    if groups:
        numbers.update(write_group_reports(xy, clusters, group_of, groups, outdir))
    write_json(outdir / "map.json", numbers)
    return numbers


def _map_columns(columns: dict, samples, group_columns, label_values) -> dict:
    """map.tsv's columns in order: the sample first when IDs may repeat across samples, a
    groups map's (length, group) in ``GROUP_COLUMNS`` order, the label last."""
    if samples is not None:  # IDs repeat across samples: the sample comes first, as in a groups map
        columns = {"sample": samples, **columns}
    if group_columns is not None:
        columns["length"], columns["group"] = group_columns
        columns = {name: columns[name] for name in GROUP_COLUMNS}
    if label_values is not None:
        columns["label"] = label_values
    return columns


def map_gc(store, ids: np.ndarray, embeddings, samples: np.ndarray | None = None) -> np.ndarray:
    """GC fraction of each contig from the store's 1-mers (NaN without a store)."""
    if store is None:
        return np.full(len(ids), np.nan)
    kstore = KmerStore(store)
    ones = kstore.take(locate_in_store(kstore, ids, embeddings, samples), ks=(1,))
    return gc_fraction(ones, Layout((1,))).astype(np.float64)


def as_written(xy: np.ndarray) -> np.ndarray:
    """Coordinates rounded to the 6 significant digits of map.tsv."""
    return np.array([float(f"{v:.6g}") for v in xy.ravel()], dtype=np.float64).reshape(xy.shape)


def map_rows(emb: Embeddings, split: str, sample: int, seed: int, groups: dict | None, place_rest=False):
    """(split used, rows, positions of the fitted rows in rows, checked groups or None, group index or None).

    Without groups: a seeded sample of one split. With groups: every row of their samples
    (of one split if ``split`` names one), then the same seeded cap. With ``place_rest``
    the rows are all of them and only the sample is fitted.
    """
    if not groups:
        used, rows = eligible_rows(emb, split)
        rows, fitted = _fitted(rows, sample, seed, place_rest)
        return used, rows, fitted, None, None
    if not emb.has("sample"):
        raise KmervaeError(
            f"{emb.path}: the embeddings have no sample column, so sample groups cannot apply "
            "(embed a dataset store made by `kmervae merge`)"
        )
    samples = emb.array("sample")
    groups = check_groups(groups, np.unique(samples), emb.path)
    used, rows = eligible_rows(emb, "all" if split == "auto" else split)
    member = group_of_samples(samples, groups)
    rows = rows[member[rows] >= 0]
    for g, name in enumerate(groups):
        if not np.any(member[rows] == g):
            raise KmervaeError(f"{emb.path}: group {name!r} has no contigs in split {used!r}")
    rows, fitted = _fitted(rows, sample, seed, place_rest)
    return used, rows, fitted, groups, member[rows]


def _fitted(rows: np.ndarray, sample: int, seed: int, place_rest: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows on the map, positions among them that t-SNE fits): the seeded sample, or all rows with it."""
    chosen = sample_rows(rows, sample, seed)
    if not place_rest:
        return chosen, np.arange(len(chosen))
    rows = np.asarray(rows, dtype=np.int64)
    return rows, np.nonzero(np.isin(rows, chosen))[0]


def format_result(r: dict) -> str:
    """The map's summary lines (what ``kmervae evaluate map`` prints)."""
    lines = [
        f"map of {r['n']} contigs: {r['clusters']} clusters, {r['noise_fraction']:.1%} noise "
        f"(min_cluster_size {r['min_cluster_size']}, min_samples {r['min_samples']})"
    ]
    if r.get("fitted", r["n"]) < r["n"]:
        lines.append(
            f"  t-SNE fitted on {r['fitted']} contigs, the other {r['n'] - r['fitted']} placed on that map"
        )
    for name, group in r.get("groups", {}).items():
        lines.append(f"  group {name}: {group['contigs']} contigs of samples {', '.join(group['samples'])}")
    return "\n".join(lines)


def _scatter_figure(
    xy, colours, title, cmap=None, categorical=False, colour_label="", keep_last=(), by_name=False
):
    """A t-SNE map, axes labelled, n in the title; categories from the house palette, legend outside."""
    from matplotlib.lines import Line2D

    from ..plots import NOISE_COLOUR, OTHER_COLOUR, SINGLE_COLUMN, categories, figure, legend_outside, short

    n = len(xy)
    entries = len(np.unique(colours)) if categorical else 0
    below = entries > 10  # a long legend goes under the map in two columns, so the map stays square
    rows = -(-min(entries, 24) // 2) if below else 0
    fig, ax = figure(width=SINGLE_COLUMN, height=3.7 + 0.12 * rows if below else 2.7)
    size = max(0.3, min(6.0, 8000 / max(n, 1)))
    raster = n > RASTER_POINTS  # a PDF of a million vector dots is huge and slow to open
    if categorical:
        legend, palette, slot = categories(colours, keep_last=keep_last, by_name=by_name)
        point_colours = np.asarray(palette)[slot]
        grey = np.isin(point_colours, [OTHER_COLOUR, NOISE_COLOUR])
        # grey points (noise, other) underneath, the rest in a fixed random order so no label hides another
        order = np.r_[np.nonzero(grey)[0], np.random.default_rng(0).permutation(np.nonzero(~grey)[0])]
        ax.scatter(
            xy[order, 0], xy[order, 1], c=point_colours[order], s=size, linewidths=0, rasterized=raster
        )
        counts = np.bincount(slot, minlength=len(legend))
        handles = [
            Line2D([], [], ls="", marker="o", markersize=3.5, color=c, label=f"{short(lab, 20)} ({count})")
            for lab, c, count in zip(legend, palette, counts)
        ]
        legend_outside(
            ax,
            handles,
            [h.get_label() for h in handles],
            ncols=2 if below else 1,
            below=below,
            title=f"{colour_label} (contigs)",
        )
    else:
        sc = ax.scatter(
            xy[:, 0], xy[:, 1], c=colours, s=size, cmap=cmap or "viridis", linewidths=0, rasterized=raster
        )
        fig.colorbar(sc, ax=ax, shrink=0.8, label=colour_label)
    ax.set_title(f"{title}\nn = {n:,} contigs")
    ax.spines[:].set_visible(True)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    return fig


def _scatter(xy, colours, title, outpath, **kwargs):
    from ..plots import save_figure

    save_figure(_scatter_figure(xy, colours, title, **kwargs), outpath)


def _plot(xy, clusters, gc, label_values, label_column, outdir: Path) -> None:
    with_gc = not np.all(np.isnan(gc))
    with progress("figures", total=1 + with_gc + (label_values is not None), unit="figures") as bar:
        _plot_each(xy, clusters, gc, with_gc, label_values, label_column, outdir, bar)


def _plot_each(xy, clusters, gc, with_gc, label_values, label_column, outdir: Path, bar) -> None:
    if with_gc:
        _scatter(xy, gc, "t-SNE of z_mean by GC", outdir / "map_gc", colour_label="GC fraction")
        bar.update(1)
    names = np.where(clusters < 0, "noise", clusters.astype(str))
    _scatter(
        xy,
        names,
        f"HDBSCAN: {int(clusters.max() + 1)} clusters",
        outdir / "map_cluster",
        categorical=True,
        colour_label="cluster",
        keep_last=("noise",),
        by_name=True,
    )
    bar.update(1)
    if label_values is not None:
        _scatter(
            xy,
            np.where(label_values == "", "unlabelled", label_values),
            f"t-SNE of z_mean by {label_column}",
            outdir / "map_label",
            categorical=True,
            colour_label=label_column,
            keep_last=("unlabelled",),
        )
        bar.update(1)

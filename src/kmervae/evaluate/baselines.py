"""Is the VAE better than linear compression? The spearman protocol on PCA of the CLR input.

PCA is fitted like the VAE was trained: on the store's train split when it has one (its
first ``fit_sample`` rows: ``kmervae merge`` shuffles globally, so they are a random
sample read in a few sequential chunks), else on a seeded sample of the pool. It is fitted
once at the largest width; narrower widths take its leading components. A width the fit
data cannot support (more components than rows or columns) is skipped and listed. The
pool is projected block by block. The VAE row is computed in the same run on the same pool,
queries and random pairs, so the rows of baselines.tsv compare like with like.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..options import Option, comma_ints, comma_join, defaults
from ..io.store import KmerStore
from .neighbours import check_pool, clr_rows, kmer_groups, limit_threads, sample_rows, write_json, write_tsv
from .spearman import OPTIONS as SPEARMAN_OPTIONS
from .spearman import local_distance_protocol, pool_for, public

DEFAULT_WIDTHS = (32, 128, None)  # None = the latent width
#: the settings of :func:`baselines` and their CLI flags: the spearman protocol's, the PCA widths and fit
OPTIONS = (
    *SPEARMAN_OPTIONS,
    Option("widths", None, comma_ints, "PCA widths (default 32,128 and the latent width)", render=comma_join),
    Option("fit_sample", 20_000, int, "pool contigs the PCA is fitted on"),
)
DEFAULTS = defaults(OPTIONS)
DEFAULT_FIT_SAMPLE = DEFAULTS["fit_sample"]
BLOCK = 8192
log = logging.getLogger(__name__)


def pca_fit_rows(
    store: KmerStore, pool_store_rows: np.ndarray, fit_sample: int, seed: int
) -> tuple[str, np.ndarray]:
    """Store rows to fit PCA on: the first ``fit_sample`` train rows, else a seeded pool sample."""
    if store.has("split"):
        train = store.split_index("train")
        if len(train):
            return "train", train[: fit_sample or None]
    return "pool", np.sort(pool_store_rows[sample_rows(np.arange(len(pool_store_rows)), fit_sample, seed)])


def fit_pca(store: KmerStore, fit_rows: np.ndarray, ks, widths) -> tuple[object | None, list[int], list[int]]:
    """sklearn PCA (exact SVD) of the CLR of ``fit_rows`` at the largest feasible width.

    Returns (pca or None, feasible widths, skipped widths).
    """
    from sklearn.decomposition import PCA

    x = clr_rows(store, fit_rows, ks)
    limit = min(x.shape)
    feasible = [w for w in widths if w <= limit]
    skipped = [w for w in widths if w > limit]
    for w in skipped:
        log.warning("PCA width %d skipped: the fit data has %d rows x %d columns", w, *x.shape)
    if not feasible:
        return None, feasible, skipped
    return PCA(n_components=max(feasible), svd_solver="full").fit(x), feasible, skipped


def project(pca, store: KmerStore, store_rows: np.ndarray, ks) -> np.ndarray:
    """PCA coordinates (float32, pool x width) of the pool's CLR, block by block."""
    out = np.empty((len(store_rows), pca.n_components_), dtype=np.float32)
    for a in range(0, len(store_rows), BLOCK):
        out[a : a + BLOCK] = pca.transform(clr_rows(store, store_rows[a : a + BLOCK], ks))
    return out


def baselines(
    embeddings: str | os.PathLike,
    store: str | os.PathLike,
    outdir: str | os.PathLike,
    widths=DEFAULTS["widths"],
    split: str = DEFAULTS["split"],
    pool: int = DEFAULTS["pool"],
    queries: int = DEFAULTS["queries"],
    k: int = DEFAULTS["k"],
    metric: str = DEFAULTS["metric"],
    bootstrap: int = DEFAULTS["bootstrap"],
    seed: int = DEFAULTS["seed"],
    fit_sample: int = DEFAULTS["fit_sample"],
    threads: int | None = DEFAULTS["threads"],
) -> dict:
    """Write baselines.tsv/.json and a bar chart; return {"rows": [...], "pool": P, ...}.

    ``widths``: the PCA widths, None meaning the latent width (default :data:`DEFAULT_WIDTHS`)."""
    outdir = Path(outdir)
    emb, kstore = Embeddings(embeddings), KmerStore(store)
    widths = DEFAULT_WIDTHS if widths is None else widths
    widths = sorted({int(w) if w else emb.latent_dim for w in widths})
    ks = kmer_groups(emb, kstore)
    with limit_threads(threads):
        used, pool_rows, store_rows = pool_for(emb, kstore, split, pool, seed)
        check_pool(len(pool_rows), k, embeddings)
        args = (kstore, store_rows, ks, queries, k, metric, bootstrap, seed)
        vae = local_distance_protocol(lambda p: emb.take(pool_rows[p]), *args)
        rows = [{"method": "vae", "width": emb.latent_dim, **public(vae)}]
        fit_source, fit_rows = pca_fit_rows(kstore, store_rows, fit_sample, seed)
        pca, feasible, skipped = fit_pca(kstore, fit_rows, ks, widths)
        coords = project(pca, kstore, store_rows, ks) if pca is not None else None
        explained = np.cumsum(pca.explained_variance_ratio_) if pca is not None else None
        for w in feasible:
            result = local_distance_protocol(lambda p, w=w: coords[p, :w], *args)
            rows.append(
                {
                    "method": "pca_clr",
                    "width": w,
                    "explained_variance": float(explained[w - 1]),
                    **public(result),
                }
            )
    _write_table(outdir / "baselines.tsv", rows)
    numbers = {
        "rows": rows,
        "pool": len(pool_rows),
        "split": used,
        "pca_fit": {"source": fit_source, "rows": len(fit_rows)},
        "skipped_widths": skipped,
        "kmer_groups": list(ks),
        "embeddings": str(embeddings),
        "store": str(store),
        "model_config_hash": emb.model_config_hash,
    }
    _plot(rows, outdir)
    write_json(outdir / "baselines.json", numbers)
    return numbers


def _write_table(path: Path, rows: list[dict]) -> None:
    """baselines.tsv: one row per method and width."""
    header = [
        "method",
        "width",
        "spearman",
        "spearman_ci_lo",
        "spearman_ci_hi",
        "pearson",
        "pearson_ci_lo",
        "pearson_ci_hi",
        "mse_top1",
        "mse_random",
        "pool",
        "queries",
        "k",
        "metric",
        "explained_variance",
    ]
    table = [
        [
            r["method"],
            r["width"],
            r["spearman"],
            *r["spearman_ci95"],
            r["pearson"],
            *r["pearson_ci95"],
            r["mse_top"]["1"],
            r["mse_random"],
            r["pool"],
            r["queries"],
            r["k"],
            r["metric"],
            r.get("explained_variance", ""),
        ]
        for r in rows
    ]
    write_tsv(path, header, table)


def format_table(numbers: dict) -> str:
    lines = [f"{'method':<10}{'width':>6}{'spearman':>10}{'95% CI':>18}{'pool':>8}"]
    for r in numbers["rows"]:
        lo, hi = r["spearman_ci95"]
        lines.append(
            f"{r['method']:<10}{r['width']:>6}{r['spearman']:>10.3f}{f'{lo:.3f}-{hi:.3f}':>18}{r['pool']:>8}"
        )
    return "\n".join(lines)


def baselines_figure(rows):
    """Spearman of the VAE and each PCA width, 95 % intervals, on the same pool and queries."""
    from ..plots import BASELINE_COLOUR, SINGLE_COLUMN, VAE_COLOUR, figure

    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    names = [f"{r['method']}\n{r['width']}" for r in rows]
    values = [r["spearman"] for r in rows]
    err = np.array(
        [[r["spearman"] - r["spearman_ci95"][0], r["spearman_ci95"][1] - r["spearman"]] for r in rows]
    ).T
    colours = [VAE_COLOUR if r["method"] == "vae" else BASELINE_COLOUR for r in rows]
    ax.bar(names, values, yerr=np.clip(np.nan_to_num(err), 0, None), color=colours, capsize=2)
    ax.set_xlabel("method and width (dimensions)")
    ax.set_ylabel("Spearman ρ, latent distance vs\nk-mer MSE (higher is better)")
    ax.grid(axis="y", alpha=0.3)
    r = rows[0]
    ax.set_title(f"n = {r['queries']} queries × K = {r['k']} neighbours, pool P = {r['pool']:,}")
    return fig


def _plot(rows, outdir: Path) -> None:
    from ..plots import save_figure

    save_figure(baselines_figure(rows), outdir / "baselines")

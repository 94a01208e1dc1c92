"""Is the VAE better than linear compression? The spearman protocol on PCA of the CLR input.

PCA is fitted on a seeded sample of the evaluation pool (``fit_sample`` rows, bounded
memory) once at the largest width; narrower widths take its leading components. The pool
is projected block by block. The VAE row is computed in the same run on the same pool,
queries and random pairs, so the rows of baselines.tsv compare like with like.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..errors import KmervaeError
from ..store import KmerStore
from .neighbours import check_pool, clr_rows, kmer_groups, limit_threads, sample_rows, write_json, write_tsv
from .spearman import DEFAULTS as SPEARMAN_DEFAULTS
from .spearman import local_distance_protocol, pool_for, public

DEFAULT_WIDTHS = (32, 128, None)  # None = the latent width
DEFAULT_FIT_SAMPLE = 20_000
BLOCK = 8192


def fit_pca(store: KmerStore, store_rows: np.ndarray, ks, width: int, fit_sample: int, seed: int):
    """sklearn PCA (exact SVD) of the CLR of a seeded sample of ``store_rows``."""
    from sklearn.decomposition import PCA

    fit_rows = sample_rows(np.arange(len(store_rows)), fit_sample, seed)
    x = clr_rows(store, store_rows[fit_rows], ks)
    if width > min(x.shape):
        raise KmervaeError(
            f"{store.path}: PCA width {width} needs at least {width} contigs and k-mer columns "
            f"(the fit sample has {x.shape[0]} x {x.shape[1]})"
        )
    return PCA(n_components=width, svd_solver="full").fit(x)


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
    widths=DEFAULT_WIDTHS,
    split: str = "auto",
    pool: int = SPEARMAN_DEFAULTS["pool"],
    queries: int = SPEARMAN_DEFAULTS["queries"],
    k: int = SPEARMAN_DEFAULTS["k"],
    metric: str = SPEARMAN_DEFAULTS["metric"],
    bootstrap: int = SPEARMAN_DEFAULTS["bootstrap"],
    seed: int = SPEARMAN_DEFAULTS["seed"],
    fit_sample: int = DEFAULT_FIT_SAMPLE,
    threads: int | None = None,
) -> dict:
    """Write baselines.tsv/.json and a bar chart; return {"rows": [...], "pool": P, ...}."""
    outdir = Path(outdir)
    emb, kstore = Embeddings(embeddings), KmerStore(store)
    widths = sorted({int(w) if w else emb.latent_dim for w in widths})
    ks = kmer_groups(emb, kstore)
    with limit_threads(threads):
        used, pool_rows, store_rows = pool_for(emb, kstore, split, pool, seed)
        check_pool(len(pool_rows), k, embeddings)
        args = (kstore, store_rows, ks, queries, k, metric, bootstrap, seed)
        vae = local_distance_protocol(lambda p: emb.take(pool_rows[p]), *args)
        rows = [{"method": "vae", "width": emb.latent_dim, **public(vae)}]
        pca = fit_pca(kstore, store_rows, ks, max(widths), fit_sample, seed)
        coords = project(pca, kstore, store_rows, ks)
        explained = np.cumsum(pca.explained_variance_ratio_)
        for w in widths:
            result = local_distance_protocol(lambda p, w=w: coords[p, :w], *args)
            rows.append({"method": "pca_clr", "width": w, "explained_variance": float(explained[w - 1]), **public(result)})
    header = ["method", "width", "spearman", "spearman_ci_lo", "spearman_ci_hi", "pearson", "pearson_ci_lo",
              "pearson_ci_hi", "mse_top1", "mse_random", "pool", "queries", "k", "metric", "explained_variance"]
    table = [
        [r["method"], r["width"], r["spearman"], *r["spearman_ci95"], r["pearson"], *r["pearson_ci95"],
         r["mse_top"]["1"], r["mse_random"], r["pool"], r["queries"], r["k"], r["metric"],
         r.get("explained_variance", "")]
        for r in rows
    ]
    write_tsv(outdir / "baselines.tsv", header, table)
    numbers = {
        "rows": rows,
        "pool": int(len(pool_rows)),
        "split": used,
        "pca_fit_sample": int(min(fit_sample or len(pool_rows), len(pool_rows))),
        "kmer_groups": list(ks),
        "embeddings": str(embeddings),
        "store": str(store),
        "model_config_hash": emb.model_config_hash,
    }
    _plot(rows, outdir)
    write_json(outdir / "baselines.json", numbers)
    return numbers


def format_table(numbers: dict) -> str:
    lines = [f"{'method':<10}{'width':>6}{'spearman':>10}{'95% CI':>18}{'pool':>8}"]
    for r in numbers["rows"]:
        lo, hi = r["spearman_ci95"]
        lines.append(f"{r['method']:<10}{r['width']:>6}{r['spearman']:>10.3f}{f'{lo:.3f}-{hi:.3f}':>18}{r['pool']:>8}")
    return "\n".join(lines)


def _plot(rows, outdir: Path) -> None:
    from ..plots import figure, save_figure

    fig, ax = figure(figsize=(5, 3.5))
    names = [f"{r['method']}\n{r['width']}" for r in rows]
    values = [r["spearman"] for r in rows]
    err = np.array([[r["spearman"] - r["spearman_ci95"][0], r["spearman_ci95"][1] - r["spearman"]] for r in rows]).T
    ax.bar(names, values, yerr=np.nan_to_num(err), capsize=3)
    ax.set_ylabel("Spearman (latent distance vs k-mer MSE)")
    ax.set_title(f"P={rows[0]['pool']}, {rows[0]['queries']} queries x K={rows[0]['k']}", fontsize=9)
    save_figure(fig, outdir / "baselines")

"""The paper's local-distance check: do latent neighbours have similar k-mer profiles?

From a pool of P contigs (P is always reported: the value depends on it), Q seeded
queries each take their K exact latent nearest neighbours; every (query, neighbour)
pair gets its latent distance and its k-mer MSE in CLR space. Spearman and Pearson
over all pairs, 95 % bootstrap intervals resampling queries, mean MSE by neighbour rank
and for random pairs. Only the CLR rows of queries, neighbours and random pairs are
read, and pool vectors stream in blocks, so a 50,000 pool takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..errors import KmervaeError
from ..options import Option, defaults
from ..io.store import KmerStore
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
    kmer_mse,
    limit_threads,
    locate_in_store,
    row_samples,
    sample_rows,
    write_json,
    write_tsv,
)

TOP_RANKS = (1, 5, 10, 20, 50)
#: the local distance protocol's settings (spearman and baselines) and the workflow's keys for them
PROTOCOL = (
    Option("pool", 50_000, int, "pool size P (0 = all); always reported", workflow="evaluation.pool"),
    Option("queries", 100, int, "query contigs drawn from the pool", workflow="evaluation.queries"),
    Option("k", 50, int, "neighbours per query", workflow="evaluation.k"),
    Option("metric", "euclidean", help="embedding distance", choices=METRICS, workflow="evaluation.metric"),
    Option(
        "bootstrap", 10_000, int, "bootstrap resamples of queries (0 = none)", workflow="evaluation.bootstrap"
    ),
)
#: the settings of :func:`spearman` and their CLI flags
OPTIONS = (SPLIT, SEED, THREADS, *PROTOCOL)
DEFAULTS = defaults(OPTIONS)


def bootstrap_correlations(x: np.ndarray, y: np.ndarray, resamples: int, seed: int, batch: int = 500):
    """95 % percentile intervals of Spearman and Pearson over (Q, K) pair matrices, resampling queries.

    A resample is the original pairs weighted by how often their query was drawn, so
    its average ranks follow from one global sort (cumulative weights) instead of a sort
    per resample: the same numbers as ranking the expanded resample, 10,000 resamples in
    seconds. Returns ((spearman_lo, spearman_hi), (pearson_lo, pearson_hi)); NaN when
    resamples is 0.
    """
    if resamples <= 0:
        return (float("nan"),) * 2, (float("nan"),) * 2
    rng = np.random.default_rng(seed)
    q, k = x.shape
    xs, ys = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    query_of_pair = np.repeat(np.arange(q), k)
    x_sort, y_sort = _tie_groups(xs), _tie_groups(ys)
    rho, r = [], []
    for a in range(0, resamples, batch):
        b = min(batch, resamples - a)
        pick = rng.integers(0, q, size=(b, q))
        drawn = np.stack([np.bincount(row, minlength=q) for row in pick]).astype(np.float64)
        w = drawn[:, query_of_pair]
        rho.append(_weighted_pearson(_weighted_ranks(w, *x_sort), _weighted_ranks(w, *y_sort), w))
        r.append(_weighted_pearson(np.broadcast_to(xs, w.shape), np.broadcast_to(ys, w.shape), w))
    rho, r = np.concatenate(rho), np.concatenate(r)
    ci = lambda v: tuple(float(t) for t in np.nanpercentile(v, [2.5, 97.5]))
    return ci(rho), ci(r)


def _tie_groups(v: np.ndarray):
    """Sort order of v, tie-group index of each sorted value, and the number of groups."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    group = np.cumsum(np.r_[True, sorted_v[1:] != sorted_v[:-1]]) - 1
    return order, group, int(group[-1]) + 1


def _weighted_ranks(w: np.ndarray, order: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Average ranks of every value in datasets where value i appears w[b, i] times."""
    b = w.shape[0]
    ws = w[:, order]
    flat = (group[None, :] + groups * np.arange(b)[:, None]).ravel()
    group_weight = np.bincount(flat, weights=ws.ravel(), minlength=b * groups).reshape(b, groups)
    before = np.cumsum(group_weight, axis=1) - group_weight
    rank_sorted = (before + (group_weight + 1) / 2)[:, group]
    ranks = np.empty_like(rank_sorted)
    ranks[:, order] = rank_sorted
    return ranks


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum(axis=1, keepdims=True)
    a = a - (w * a).sum(axis=1, keepdims=True) / total
    b = b - (w * b).sum(axis=1, keepdims=True) / total
    den = np.sqrt((w * a * a).sum(axis=1) * (w * b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * a * b).sum(axis=1) / den


def local_distance_protocol(
    vectors_at: Callable[[np.ndarray], np.ndarray],
    store: KmerStore,
    store_positions: np.ndarray,
    ks: tuple[int, ...],
    queries: int,
    k: int,
    metric: str,
    bootstrap: int,
    seed: int,
) -> dict:
    """Run the protocol on a pool whose i-th vector is ``vectors_at([i])`` and i-th store row ``store_positions[i]``.

    The queries and random pairs depend only on (pool size, queries, k, seed), so every
    method run on the same pool gets the same queries. Returns numbers plus the pair
    arrays (``_neighbours``, ``_distances``, ``_mse``, ``_query_pool``).
    """
    pool = len(store_positions)
    check_pool(pool, k, store.path)
    rng = np.random.default_rng(seed)
    q = min(int(queries), pool)
    query_pool = np.sort(rng.choice(pool, size=q, replace=False))
    rand_a = rng.integers(0, pool, size=q * k)
    rand_b = (rand_a + rng.integers(1, pool, size=q * k)) % pool  # never the same contig
    neighbours, distances = exact_knn(
        vectors_at(query_pool), blocks_of(vectors_at, pool), k, metric, exclude=query_pool
    )
    needed = np.unique(np.concatenate([query_pool, neighbours.ravel(), rand_a, rand_b]))
    clr = clr_rows(store, store_positions[needed], ks)
    row = {p: i for i, p in enumerate(needed)}
    at = lambda positions: clr[[row[p] for p in np.asarray(positions).ravel()]]
    mse = kmer_mse(np.repeat(at(query_pool), k, axis=0), at(neighbours)).reshape(q, k)
    mse_random = kmer_mse(at(rand_a), at(rand_b))
    x, y = distances.ravel(), mse.ravel()
    from scipy import stats  # here, not at import: the workflow reads this module's options at start-up

    rho = stats.spearmanr(x, y).statistic
    r = stats.pearsonr(x, y).statistic if np.std(x) > 0 and np.std(y) > 0 else float("nan")
    rho_ci, r_ci = bootstrap_correlations(distances, mse, bootstrap, seed + 1)
    return {
        "pool": int(pool),
        "queries": int(q),
        "k": int(k),
        "metric": metric,
        "pairs": int(q * k),
        "spearman": float(rho),
        "spearman_ci95": list(rho_ci),
        "pearson": float(r),
        "pearson_ci95": list(r_ci),
        "mse_top": {str(t): float(mse[:, :t].mean()) for t in TOP_RANKS if t <= k},
        "mse_by_rank": [float(v) for v in mse.mean(axis=0)],
        "mse_random": float(mse_random.mean()),
        "bootstrap": int(bootstrap),
        "seed": int(seed),
        "kmer_groups": [int(g) for g in ks],
        "_query_pool": query_pool,
        "_neighbours": neighbours,
        "_distances": distances,
        "_mse": mse,
    }


def pool_for(emb: Embeddings, store: KmerStore, split: str, pool: int, seed: int):
    """(split used, embedding rows of the pool, matching store rows)."""
    used, rows = eligible_rows(emb, split)
    pool_rows = sample_rows(rows, pool, seed)
    store_rows = (
        locate_in_store(store, emb.take_ids(pool_rows), emb.path, row_samples(emb, pool_rows))
        if len(pool_rows)
        else pool_rows
    )
    return used, pool_rows, store_rows


def public(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def spearman(
    embeddings: str | os.PathLike,
    store: str | os.PathLike,
    outdir: str | os.PathLike,
    split: str = DEFAULTS["split"],
    pool: int = DEFAULTS["pool"],
    queries: int = DEFAULTS["queries"],
    k: int = DEFAULTS["k"],
    metric: str = DEFAULTS["metric"],
    bootstrap: int = DEFAULTS["bootstrap"],
    seed: int = DEFAULTS["seed"],
    threads: int | None = DEFAULTS["threads"],
) -> dict:
    """Write spearman.json, spearman_pairs.tsv and the two figures; return the numbers."""
    if k < 1 or queries < 1:
        raise KmervaeError(f"--k and --queries must be at least 1 (got k={k}, queries={queries})")
    outdir = Path(outdir)
    emb, kstore = Embeddings(embeddings), KmerStore(store)
    with limit_threads(threads):
        used, pool_rows, store_rows = pool_for(emb, kstore, split, pool, seed)
        check_pool(len(pool_rows), k, embeddings)
        result = local_distance_protocol(
            lambda p: emb.take(pool_rows[p]),
            kstore,
            store_rows,
            kmer_groups(emb, kstore),
            queries,
            k,
            metric,
            bootstrap,
            seed,
        )
    numbers = {
        **public(result),
        "split": used,
        "embeddings": str(embeddings),
        "store": str(store),
        "model_config_hash": emb.model_config_hash,
    }
    query_ids = emb.take_ids(pool_rows[result["_query_pool"]])
    neighbour_ids = emb.take_ids(pool_rows[result["_neighbours"].ravel()]).reshape(
        result["_neighbours"].shape
    )
    rows = (
        (
            query_ids[i],
            rank + 1,
            neighbour_ids[i, rank],
            result["_distances"][i, rank],
            result["_mse"][i, rank],
        )
        for i in range(len(query_ids))
        for rank in range(result["k"])
    )
    write_tsv(
        outdir / "spearman_pairs.tsv", ["query", "rank", "neighbour", "latent_distance", "kmer_mse"], rows
    )
    plot_spearman(result, outdir, label="VAE z_mean")
    write_json(outdir / "spearman.json", numbers)
    return numbers


def format_result(r: dict) -> str:
    lo, hi = r["spearman_ci95"]
    return (
        f"Spearman {r['spearman']:.3f} (95% CI {lo:.3f}-{hi:.3f}), Pearson {r['pearson']:.3f}; "
        f"pool P={r['pool']}, {r['queries']} queries x K={r['k']} ({r['metric']}); "
        f"k-mer MSE top1 {r['mse_top'].get('1', float('nan')):.4f}, random {r['mse_random']:.4f}"
    )


def spearman_figures(result: dict, label: str):
    """The (latent distance, k-mer MSE) pairs as a scatter, and the mean MSE by neighbour rank."""
    from matplotlib.ticker import MaxNLocator

    from ..plots import BASELINE_COLOUR, OKABE_ITO, SINGLE_COLUMN, figure, legend_outside

    pairs = result["_distances"].size
    fig, ax = figure(width=SINGLE_COLUMN, height=2.6)
    ax.scatter(result["_distances"].ravel(), result["_mse"].ravel(), s=2, alpha=0.3, linewidths=0,
               color=OKABE_ITO[0])
    ax.set_xlabel(f"latent distance ({result['metric']})")
    ax.set_ylabel("k-mer MSE of the CLR profiles")
    ax.set_title(
        f"{label}: Spearman ρ {result['spearman']:.3f}\n"
        f"n = {pairs:,} pairs ({result['queries']} queries × K = {result['k']}), pool P = {result['pool']:,}"
    )
    scatter = fig

    mse = result["_mse"]
    ranks = np.arange(1, mse.shape[1] + 1)
    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    ax.plot(ranks, mse.mean(axis=0), color=OKABE_ITO[0], label="neighbours (mean)")
    ax.fill_between(ranks, *np.percentile(mse, [25, 75], axis=0), color=OKABE_ITO[0], alpha=0.25,
                    linewidth=0, label="neighbours (25-75 %)")
    ax.axhline(result["mse_random"], color=BASELINE_COLOUR, linestyle="--", label="random pairs (mean)")
    ax.set_xlabel("neighbour rank")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("k-mer MSE of the CLR profiles\n(lower is more similar)")
    ax.set_title(f"n = {result['queries']} queries, pool P = {result['pool']:,}")
    legend_outside(ax, below=True, ncols=2)
    return scatter, fig


def plot_spearman(result: dict, outdir: Path, label: str) -> None:
    from ..plots import save_figure

    scatter, by_rank = spearman_figures(result, label)
    save_figure(scatter, outdir / "spearman_scatter")
    save_figure(by_rank, outdir / "mse_by_rank")

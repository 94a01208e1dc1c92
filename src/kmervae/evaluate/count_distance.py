"""How crowded is the latent space? Nearest-neighbour distances and pairwise distance shapes.

For a seeded sample: each point's exact nearest-neighbour distance (within the sample),
its histogram, the cumulative count of points vs distance with straight-line fits over
configured distance ranges (slope, intercept, R²), and the distributions of Euclidean and
cosine distances over random pairs (the development logs saw cosine bimodal, Euclidean
unimodal; the bimodality coefficient is reported for both).

The default metric is cosine and the default ranges (0-0.2, 0-0.5, 0-0.7) are on the cosine
scale, as in the development logs' analysis. The ranges are absolute distances, not
quantiles, so that fits of different models over the same range compare. A range outside
the metric's scale (cosine distance lies in 0-2), or one that holds no nearest-neighbour
distance (its count is constant, the fit has no R²), is an error naming the range.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..embed import Embeddings
from ..errors import KmervaeError
from ..options import Option, defaults
from .neighbours import (
    METRICS,
    SEED,
    SPLIT,
    THREADS,
    blocks_of,
    eligible_rows,
    exact_knn,
    limit_threads,
    pair_distance,
    sample_rows,
    write_json,
    write_tsv,
)


def parse_ranges(text: str) -> list[tuple[float, float]]:
    """'0-0.2,0-0.5' → [(0, 0.2), (0, 0.5)] (the numbers may have exponents: 0-1e-05)."""
    import argparse
    import re

    number = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    out = []
    for part in text.split(","):
        m = re.fullmatch(rf"\s*{number}\s*-\s*{number}\s*", part)
        if not m:
            raise argparse.ArgumentTypeError(f"{part!r} is not a range LOW-HIGH (e.g. 0-0.2,0-0.5)")
        out.append((float(m[1]), float(m[2])))
    return out


def format_ranges(ranges) -> str:
    """[(0, 0.2), (0, 0.5)] → '0-0.2,0-0.5' (what :func:`parse_ranges` reads)."""
    return ",".join(f"{lo}-{hi}" for lo, hi in ranges)


#: the settings of :func:`count_distance` and their CLI flags
OPTIONS = (
    SPLIT,
    SEED,
    THREADS,
    Option("sample", 100_000, int, "contigs sampled (0 = all)", workflow="evaluation.sample"),
    Option(
        "metric",
        "cosine",
        help="nearest-neighbour distance (default cosine, the scale of the default ranges)",
        choices=METRICS,
        workflow="evaluation.count_distance_metric",
    ),
    Option(
        "ranges",
        ((0.0, 0.2), (0.0, 0.5), (0.0, 0.7)),
        parse_ranges,
        "fit ranges on the metric's scale, each holding some nearest-neighbour distances "
        "(default 0-0.2,0-0.5,0-0.7, cosine)",
        workflow="evaluation.count_distance_ranges",
        render=format_ranges,
    ),
    Option("pairs", 100_000, int, "random pairs for the pairwise distributions"),
)
DEFAULTS = {**defaults(OPTIONS), "bins": 100}
DEFAULT_RANGES = DEFAULTS["ranges"]
METRIC_MAX = {"cosine": 2.0, "euclidean": float("inf")}
MIN_PAIRS = 4  # the bimodality coefficient needs four values

log = logging.getLogger(__name__)


def check_ranges(ranges, metric: str) -> list[tuple[float, float]]:
    """The fit ranges as (lo, hi) floats with 0 <= lo < hi <= the metric's largest distance."""
    if metric not in METRIC_MAX:
        raise KmervaeError(f"unknown metric {metric!r} (use {' or '.join(METRIC_MAX)})")
    out = []
    for lo, hi in ranges:
        lo, hi = float(lo), float(hi)
        if not 0 <= lo < hi <= METRIC_MAX[metric]:
            scale = "0-2" if metric == "cosine" else "0 and up"
            raise KmervaeError(
                f"fit range {lo:g}-{hi:g} does not fit {metric} distance: a range needs "
                f"low < high, both on the {metric} scale ({scale})"
            )
        out.append((lo, hi))
    if not out:
        raise KmervaeError("count-distance needs at least one fit range")
    return out


def check_ranges_hold_distances(nn: np.ndarray, ranges, metric: str, source) -> None:
    """A range without a nearest-neighbour distance in (lo, hi] has a constant count: no fit."""
    for lo, hi in ranges:
        if not ((nn > lo) & (nn <= hi)).any():
            raise KmervaeError(
                f"{source}: fit range {lo:g}-{hi:g} holds none of the {len(nn)} nearest-neighbour "
                f"{metric} distances (they span {nn.min():.4g}-{nn.max():.4g}); choose ranges on that scale"
            )


def linear_fit(x: np.ndarray, y: np.ndarray) -> dict:
    if len(x) < 2 or np.ptp(x) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "r2": float("nan")}
    from scipy import stats  # here, not at import: the workflow reads this module's options at start-up

    fit = stats.linregress(x, y)
    return {"slope": float(fit.slope), "intercept": float(fit.intercept), "r2": float(fit.rvalue**2)}


def cumulative_fits(nn_distance: np.ndarray, ranges, grid_points: int = 200) -> list[dict]:
    """Fit count(nn distance <= d) = slope * d + intercept on a grid of d over each range."""
    sorted_d = np.sort(nn_distance)
    fits = []
    for lo, hi in ranges:
        grid = np.linspace(lo, hi, grid_points)
        counts = np.searchsorted(sorted_d, grid, side="right").astype(np.float64)
        fits.append({"range": [float(lo), float(hi)], "points": grid_points, **linear_fit(grid, counts)})
    return fits


def bimodality_coefficient(x: np.ndarray) -> float:
    """Sarle's coefficient (> 5/9 ≈ 0.555 hints at two modes)."""
    n = len(x)
    if n < 4:
        return float("nan")
    from scipy import stats

    g = stats.skew(x, bias=False)
    k = stats.kurtosis(x, bias=False)
    return float((g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def count_distance(
    embeddings: str | os.PathLike,
    outdir: str | os.PathLike,
    split: str = DEFAULTS["split"],
    sample: int = DEFAULTS["sample"],
    metric: str = DEFAULTS["metric"],
    ranges=DEFAULTS["ranges"],
    pairs: int = DEFAULTS["pairs"],
    bins: int = DEFAULTS["bins"],
    seed: int = DEFAULTS["seed"],
    threads: int | None = DEFAULTS["threads"],
) -> dict:
    """Write count_distance.json, count_distance.tsv (histogram) and figures; return the numbers."""
    outdir = Path(outdir)
    ranges = check_ranges(ranges, metric)
    if pairs < MIN_PAIRS:
        raise KmervaeError(f"count-distance needs at least {MIN_PAIRS} random pairs, got {pairs}")
    emb = Embeddings(embeddings)
    used, rows = eligible_rows(emb, split)
    rows = sample_rows(rows, sample, seed)
    if len(rows) < 2:
        raise KmervaeError(
            f"{embeddings}: {len(rows)} contigs in split {used!r}; nearest neighbours need at least 2"
        )
    with limit_threads(threads):
        z = emb.take(rows)
        if not np.isfinite(z).all():
            raise KmervaeError(f"{embeddings}: z_mean holds {int((~np.isfinite(z)).sum())} non-finite values")
        _, nn = exact_knn(z, blocks_of(lambda p: z[p], len(z)), 1, metric, exclude=np.arange(len(z)))
    nn = nn[:, 0]
    check_ranges_hold_distances(nn, ranges, metric, embeddings)
    rng = np.random.default_rng(seed + 1)
    a = rng.integers(0, len(z), size=pairs)
    b = (a + rng.integers(1, len(z), size=pairs)) % len(z)
    euclid = pair_distance(z[a], z[b], "euclidean")
    cosine = pair_distance(z[a], z[b], "cosine")
    hist, edges = np.histogram(nn, bins=bins)
    cumulative = np.cumsum(hist)
    fits = cumulative_fits(nn, ranges)
    pairwise = {name: _pair_summary(name, d) for name, d in (("euclidean", euclid), ("cosine", cosine))}
    numbers = {
        "sample": len(z),
        "split": used,
        "metric": metric,
        "seed": int(seed),
        "nn_distance": {
            "mean": float(nn.mean()),
            "median": float(np.median(nn)),
            "q05": float(np.quantile(nn, 0.05)),
            "q95": float(np.quantile(nn, 0.95)),
        },
        "fits": fits,
        "pairwise": {"pairs": int(pairs), **pairwise},
        "embeddings": str(embeddings),
        "model_config_hash": emb.model_config_hash,
    }
    write_tsv(
        outdir / "count_distance.tsv",
        ["bin_lo", "bin_hi", "count", "cumulative"],
        zip(edges[:-1], edges[1:], hist, cumulative),
    )
    _plot(nn, fits, euclid, cosine, metric, outdir)
    write_json(outdir / "count_distance.json", numbers)
    return numbers


def format_result(r: dict) -> str:
    """The report's numbers in a few lines (what ``kmervae evaluate count-distance`` prints)."""
    lines = [
        f"nearest-neighbour {r['metric']} distance over a sample of {r['sample']}: "
        f"median {r['nn_distance']['median']:.4g}, mean {r['nn_distance']['mean']:.4g}"
    ]
    for fit in r["fits"]:
        lo, hi = fit["range"]
        lines.append(
            f"  cumulative count fit {lo:g}-{hi:g}: slope {fit['slope']:.4g}, "
            f"intercept {fit['intercept']:.4g}, R² {fit['r2']:.3f}"
        )
    for name in ("euclidean", "cosine"):
        p = r["pairwise"][name]
        lines.append(
            f"  random pairs, {name}: mean {p['mean']:.4g}, sd {p['std']:.4g}, "
            f"bimodality {p['bimodality']:.3f}"
        )
    return "\n".join(lines)


def _pair_summary(name: str, d: np.ndarray) -> dict:
    bimodality = bimodality_coefficient(d)
    if np.isnan(bimodality):
        log.warning(
            "bimodality of %s pair distances written as NaN: the %d distances are all equal", name, len(d)
        )
    return {"mean": float(d.mean()), "std": float(d.std()), "bimodality": bimodality}


def _plot(nn, fits, euclid, cosine, metric, outdir: Path) -> None:
    from ..plots import save_figure

    save_figure(nn_distance_figure(nn, metric), outdir / "nn_distance_hist")
    save_figure(count_vs_distance_figure(nn, fits, metric), outdir / "count_vs_distance")
    save_figure(pairwise_figure(euclid, cosine), outdir / "pairwise_distances")


def nn_distance_figure(nn: np.ndarray, metric: str):
    """Histogram of each contig's nearest-neighbour distance, one column wide."""
    from ..plots import OKABE_ITO, SINGLE_COLUMN, figure

    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    ax.hist(nn, bins=100, color=OKABE_ITO[0])
    ax.set_xlabel(f"nearest-neighbour distance ({metric})")
    ax.set_ylabel("contigs")
    ax.set_title(f"nearest-neighbour distances\nn = {len(nn):,} contigs")
    return fig


def count_vs_distance_figure(nn: np.ndarray, fits: list[dict], metric: str):
    """Cumulative count of contigs by nearest-neighbour distance and the straight-line fits."""
    from ..plots import OKABE_ITO, SINGLE_COLUMN, figure, legend_outside

    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    d = np.sort(nn)
    ax.plot(d, np.arange(1, len(d) + 1), color=OKABE_ITO[0], label="contigs with\nNN distance ≤ d")
    for i, fit in enumerate(fits):
        lo, hi = fit["range"]
        x = np.linspace(lo, hi, 50)
        y = fit["slope"] * x + fit["intercept"]
        colour = OKABE_ITO[1 + i % (len(OKABE_ITO) - 1)]
        ax.plot(x, y, "--", color=colour, label=f"fit {lo:g}–{hi:g}\nR² {fit['r2']:.3f}")
    ax.set_xlabel(f"distance d ({metric})")
    ax.set_ylabel("cumulative count")
    ax.set_title(f"count vs distance\nn = {len(nn):,} contigs")
    legend_outside(ax)
    return fig


def pairwise_figure(euclid: np.ndarray, cosine: np.ndarray):
    """Distributions of the Euclidean and cosine distances of random pairs, side by side."""
    from ..plots import DOUBLE_COLUMN, OKABE_ITO, figure

    fig, axes = figure(1, 2, width=DOUBLE_COLUMN, height=2.4)
    for ax, d, name, colour in zip(axes, (euclid, cosine), ("Euclidean", "cosine"), OKABE_ITO):
        ax.hist(d, bins=100, color=colour)
        ax.set_xlabel(f"{name} distance")
        ax.set_ylabel("random pairs")
    fig.suptitle(f"n = {len(euclid):,} random pairs")
    return fig

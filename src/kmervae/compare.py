"""Comparing many runs: the cross-comparison matrix and the summary figures of a sweep.

A *run* is one trained model, named ``{dataset}.min{threshold}.{model}``; a *test set*
is a dataset at a length threshold, ``{dataset}.min{threshold}``. Every run is evaluated
on every test set (``REPORTS/{run}/{testset}/spearman/spearman.json``), which gives the
matrix the paper reports: Spearman with its 95 % interval per cell. The figures put the
runs side by side: Spearman against the length threshold, validation loss and learning
rate per epoch from each run's ``history.tsv``, the reconstruction MSE per k-mer group,
and a grand comparison of every run with the PCA / raw-profile baselines.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import KmervaeError
from .options import Option, defaults
from .workflow_config import parse_run, parse_testset

MSE_COLUMN = re.compile(r"^(?P<prefix>val_)?mse_(?P<k>\d+)mer$")
MATRIX_COLUMNS = (
    "run", "dataset", "threshold", "model", "testset", "test_dataset", "test_threshold",
    "spearman", "spearman_ci_lo", "spearman_ci_hi", "pearson", "queries", "k", "metric",
)


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise KmervaeError(f"{path}: missing (evaluate spearman has not run for this run and test set)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KmervaeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _interval(record: dict, key: str, path: Path) -> tuple[float, float]:
    value = record.get(key)
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise KmervaeError(f"{path}: key {key!r} should be [lo, hi], got {value!r}")
    return float(value[0]), float(value[1])


def cross_matrix(runs: list[str], testsets: list[str], reports_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per run x test set with the Spearman, its interval and how it was measured."""
    rows = []
    for run_name in runs:
        run = parse_run(run_name)
        for testset_name in testsets:
            testset = parse_testset(testset_name)
            path = Path(reports_dir) / run.name / testset.name / "spearman" / "spearman.json"
            record = _read_json(path)
            if "spearman" not in record:
                raise KmervaeError(f"{path}: no 'spearman' key")
            lo, hi = _interval(record, "spearman_ci95", path)
            rows.append(
                {
                    "run": run.name, "dataset": run.dataset, "threshold": run.threshold, "model": run.model,
                    "testset": testset.name, "test_dataset": testset.dataset,
                    "test_threshold": testset.threshold,
                    "spearman": float(record["spearman"]), "spearman_ci_lo": lo, "spearman_ci_hi": hi,
                    "pearson": float(record.get("pearson", math.nan)),
                    "queries": record.get("queries"), "k": record.get("k"), "metric": record.get("metric"),
                }
            )
    return pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))


def matrix_table(long: pd.DataFrame) -> pd.DataFrame:
    """The matrix as the paper prints it: runs as rows, test sets as columns, 'rho [lo, hi]' cells."""
    cells = long.assign(
        cell=[f"{r:.4f} [{lo:.4f}, {hi:.4f}]" for r, lo, hi in
              zip(long.spearman, long.spearman_ci_lo, long.spearman_ci_hi)]
    )
    wide = cells.pivot(index="run", columns="testset", values="cell")
    return wide.loc[pd.unique(long.run), pd.unique(long.testset)]


def length_sweep(long: pd.DataFrame, which: str = "own") -> dict[str, pd.DataFrame]:
    """Spearman against test-set threshold, one line per run (``own``: only its own dataset's test sets).

    With ``all`` a run gets one line per test dataset, labelled ``run -> dataset``.
    """
    if which not in ("own", "all"):
        raise KmervaeError(f"length sweep must be 'own' or 'all', got {which!r}")
    lines = {}
    for (run, test_dataset), part in long.groupby(["run", "test_dataset"], sort=False):
        dataset = part.dataset.iloc[0]
        if which == "own" and test_dataset != dataset:
            continue
        label = run if which == "own" else f"{run} -> {test_dataset}"
        lines[label] = part.sort_values("test_threshold")[
            ["test_threshold", "spearman", "spearman_ci_lo", "spearman_ci_hi"]
        ].reset_index(drop=True)
    return lines


def read_history(model_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(model_dir) / "history.tsv"
    if not path.exists():
        raise KmervaeError(f"{path}: missing (the run has not finished training)")
    history = pd.read_csv(path, sep="\t")
    for column in ("epoch", "val_loss"):
        if column not in history.columns:
            raise KmervaeError(f"{path}: no {column!r} column (have {', '.join(history.columns)})")
    return history


def best_epoch_mse(history: pd.DataFrame) -> dict[int, float]:
    """Reconstruction MSE per k-mer group at the epoch whose weights were kept as best.

    That is the last epoch flagged in the ``best`` column (the trainer resets the best
    checkpoint after the beta warm-up), else the lowest validation loss. ``val_``-prefixed
    columns are preferred where both exist.
    """
    by_k: dict[int, tuple[bool, str]] = {}
    for column in history.columns:
        m = MSE_COLUMN.match(column)
        if m:
            k, is_val = int(m["k"]), m["prefix"] is not None
            if k not in by_k or (is_val and not by_k[k][0]):
                by_k[k] = (is_val, column)
    if "best" in history.columns and history.best.astype(bool).any():
        # the trainer flags the epochs whose weights became best.safetensors; the last one is kept
        best = history[history.best.astype(bool)].iloc[-1]
    else:
        finite = history[np.isfinite(history.val_loss.to_numpy(dtype=float))]
        if finite.empty:
            return {}
        best = finite.loc[finite.val_loss.astype(float).idxmin()]
    return {k: float(best[column]) for k, (_, column) in sorted(by_k.items(), reverse=True)}


BASELINE_ALIASES = {
    "spearman_ci_lo": ("spearman_ci_lo", "spearman_ci95_lo", "ci_lo", "ci95_lo", "lo"),
    "spearman_ci_hi": ("spearman_ci_hi", "spearman_ci95_hi", "ci_hi", "ci95_hi", "hi"),
}


def read_baselines(path: str | os.PathLike) -> pd.DataFrame:
    """A ``baselines.tsv`` (method, width, spearman, interval...) in this module's column names."""
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: missing (evaluate baselines has not run for this test set)")
    table = pd.read_csv(path, sep="\t")
    for column in ("method", "spearman"):
        if column not in table.columns:
            raise KmervaeError(f"{path}: no {column!r} column (have {', '.join(table.columns)})")
    out = pd.DataFrame({"method": table.method.astype(str), "spearman": table.spearman.astype(float)})
    out["width"] = table["width"] if "width" in table.columns else np.nan
    for name, aliases in BASELINE_ALIASES.items():
        found = next((a for a in aliases if a in table.columns), None)
        out[name] = table[found].astype(float) if found else np.nan
    return out


def collect_baselines(
    runs: list[str], testsets: list[str], reports_dir: str | os.PathLike
) -> dict[str, pd.DataFrame]:
    """Baselines per test set from every run that computed them there, one row per (method, width).

    The PCA baselines do not depend on the run, but their default widths follow the run's
    latent size, so runs of different model variants add rows; duplicates keep the first run's.
    A table's own ``vae`` row repeats its run's matrix cell and is left out.
    """
    out = {}
    for testset in testsets:
        tables = [
            read_baselines(path)
            for run in runs
            if (path := Path(reports_dir) / run / testset / "baselines" / "baselines.tsv").exists()
        ]
        if tables:
            merged = pd.concat(tables, ignore_index=True)
            merged = merged[merged.method != "vae"]
            out[testset] = merged.drop_duplicates(["method", "width"], keep="first").reset_index(drop=True)
    return out


def grand_comparison(
    long: pd.DataFrame, baselines: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Per test set: every run's Spearman next to the baselines', best first."""
    rows = [
        {"testset": r.testset, "kind": "vae", "method": r.run, "width": np.nan, "spearman": r.spearman,
         "spearman_ci_lo": r.spearman_ci_lo, "spearman_ci_hi": r.spearman_ci_hi}
        for r in long.itertuples()
    ]
    for testset, table in (baselines or {}).items():
        for r in table.itertuples():
            width = "" if pd.isna(r.width) else f" ({int(r.width)})"
            rows.append(
                {"testset": testset, "kind": "baseline", "method": f"{r.method}{width}", "width": r.width,
                 "spearman": r.spearman, "spearman_ci_lo": r.spearman_ci_lo, "spearman_ci_hi": r.spearman_ci_hi}
            )
    table = pd.DataFrame(rows, columns=["testset", "kind", "method", "width", "spearman",
                                        "spearman_ci_lo", "spearman_ci_hi"])
    order = {t: i for i, t in enumerate(pd.unique(table.testset))}
    table = table.assign(_t=table.testset.map(order)).sort_values(
        ["_t", "spearman", "method"], ascending=[True, False, True], kind="stable"
    )
    return table.drop(columns="_t").reset_index(drop=True)


def _write_tsv(frame: pd.DataFrame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=index, float_format="%.6g")


# --- figures -----------------------------------------------------------------------------


def _errors(part: pd.DataFrame) -> np.ndarray | None:
    lo, hi = part.spearman_ci_lo.to_numpy(float), part.spearman_ci_hi.to_numpy(float)
    if np.isnan(lo).all():
        return None
    value = part.spearman.to_numpy(float)
    # an interval need not contain its estimate (percentile bootstrap); draw what is on each side
    return np.clip(np.vstack([np.nan_to_num(value - lo), np.nan_to_num(hi - value)]), 0, None)


def plot_heatmap(long: pd.DataFrame, path: Path, cmap: str = "viridis") -> None:
    from .plots import figure, save_figure

    runs, testsets = list(pd.unique(long.run)), list(pd.unique(long.testset))
    values = long.pivot(index="run", columns="testset", values="spearman").loc[runs, testsets]
    lo = long.pivot(index="run", columns="testset", values="spearman_ci_lo").loc[runs, testsets]
    hi = long.pivot(index="run", columns="testset", values="spearman_ci_hi").loc[runs, testsets]
    fig, ax = figure(figsize=(1.6 + 1.3 * len(testsets), 1.2 + 0.55 * len(runs)))
    image = ax.imshow(values.to_numpy(float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(testsets)), testsets, rotation=30, ha="right")
    ax.set_yticks(range(len(runs)), runs)
    ax.set_xlabel("test set")
    ax.set_ylabel("run (dataset.threshold.model)")
    middle = np.nanmean(values.to_numpy(float)) if values.size else 0
    for i in range(len(runs)):
        for j in range(len(testsets)):
            v = values.iat[i, j]
            ax.text(j, i, f"{v:.3f}\n[{lo.iat[i, j]:.3f}, {hi.iat[i, j]:.3f}]", ha="center", va="center",
                    fontsize=7, color="white" if v < middle else "black")
    fig.colorbar(image, ax=ax, label="Spearman (embedding vs k-mer distance)")
    ax.set_title("Cross-comparison: every run on every test set")
    save_figure(fig, path)


def plot_length_sweep(lines: dict[str, pd.DataFrame], path: Path) -> None:
    from .plots import figure, save_figure

    fig, ax = figure(figsize=(7, 4.5))
    thresholds = sorted({t for part in lines.values() for t in part.test_threshold})
    step = min(np.diff(thresholds)) if len(thresholds) > 1 else 1000
    for i, (label, part) in enumerate(lines.items()):
        dodge = (i - (len(lines) - 1) / 2) * 0.3 * step / max(1, len(lines))  # keep error bars apart
        ax.errorbar(part.test_threshold + dodge, part.spearman, yerr=_errors(part), marker="o", capsize=3,
                    label=label)
    ax.set_xticks(thresholds)
    ax.set_xlabel("minimum contig length of the test set (bp)")
    ax.set_ylabel("Spearman")
    ax.set_title("Length sweep")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_curves(histories: dict[str, pd.DataFrame], column: str, path: Path, log_y: bool = False) -> None:
    from .plots import figure, save_figure

    fig, ax = figure(figsize=(7, 4.5))
    for run, history in histories.items():
        if column in history.columns:
            ax.plot(history.epoch, history[column], label=run)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " "))
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(f"{column.replace('_', ' ')} per epoch, runs overlaid")
    if histories:
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_mse_bars(mse: dict[str, dict[int, float]], path: Path) -> None:
    from .plots import figure, save_figure

    ks = sorted({k for per_run in mse.values() for k in per_run}, reverse=True)
    fig, ax = figure(figsize=(max(6, 1.2 * len(ks) * max(1, len(mse)) / 2), 4.5))
    width = 0.8 / max(1, len(mse))
    for i, (run, per_run) in enumerate(mse.items()):
        x = np.arange(len(ks)) + (i - (len(mse) - 1) / 2) * width
        ax.bar(x, [per_run.get(k, np.nan) for k in ks], width=width, label=run)
    ax.set_xticks(range(len(ks)), [f"{k}-mers" for k in ks])
    ax.set_ylabel("reconstruction MSE (CLR) at the best epoch")
    ax.set_title("Reconstruction error per k-mer group")
    if mse:
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_grand(table: pd.DataFrame, path: Path) -> None:
    from .plots import figure, save_figure

    testsets = list(pd.unique(table.testset))
    heights = [max(1, int((table.testset == t).sum())) for t in testsets] or [1]
    fig, axes = figure(len(heights), 1, figsize=(7.5, 1.0 + 0.28 * sum(heights) + 0.5 * len(heights)),
                       squeeze=False, gridspec_kw={"height_ratios": heights}, layout="constrained")
    low = np.nanmin(np.r_[table.spearman.to_numpy(float), table.spearman_ci_lo.to_numpy(float)]) if len(table) else 0
    for ax, testset in zip(axes[:, 0], testsets):
        part = table[table.testset == testset].iloc[::-1]
        colours = ["tab:blue" if kind == "vae" else "tab:gray" for kind in part.kind]
        ax.barh(range(len(part)), part.spearman, xerr=_errors(part), color=colours, capsize=2)
        ax.set_yticks(range(len(part)), part.method, fontsize=7)
        ax.set_xlim(max(0.0, low - 0.05), 1.0)
        ax.set_title(f"test set {testset}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("Spearman (embedding vs k-mer distance)")
    fig.suptitle("Grand comparison: VAE runs (blue) and baselines (grey)")
    save_figure(fig, path)


#: the settings of :func:`compare_runs`, their CLI flags and the workflow's ``figures`` keys
OPTIONS = (
    Option("runs", nargs="+", required=True, metavar="RUN", help="run names DATASET.minTHRESHOLD.MODEL"),
    Option("testsets", nargs="+", required=True, metavar="TESTSET", help="names DATASET.minTHRESHOLD"),
    Option(
        "reports_dir",
        "results/reports",
        flag="--reports",
        metavar="DIR",
        help="holds RUN/TESTSET/spearman/spearman.json and .../baselines/baselines.tsv",
    ),
    Option("models_dir", "results/models", flag="--models", metavar="DIR", help="holds RUN/history.tsv"),
    Option(
        "matrix_path",
        "results/reports/cross_comparison.tsv",
        flag="--matrix",
        metavar="TSV",
        help="the matrix TSV; the wide table and heatmap go next to it",
    ),
    Option("figures_dir", "results/figures", flag="--figures", metavar="DIR", help="summary figures"),
    Option("cmap", "viridis", help="heatmap colour map", workflow="figures.heatmap_cmap"),
    Option(
        "length_sweep_testsets",
        "own",
        flag="--length-sweep",
        choices=("own", "all"),
        help="length sweep over the run's own dataset's test sets or all",
        workflow="figures.length_sweep_testset",
    ),
)
DEFAULTS = defaults(OPTIONS)


def compare_runs(
    runs: list[str],
    testsets: list[str],
    reports_dir: str | os.PathLike = DEFAULTS["reports_dir"],
    models_dir: str | os.PathLike = DEFAULTS["models_dir"],
    matrix_path: str | os.PathLike = DEFAULTS["matrix_path"],
    figures_dir: str | os.PathLike = DEFAULTS["figures_dir"],
    cmap: str = DEFAULTS["cmap"],
    length_sweep_testsets: str = DEFAULTS["length_sweep_testsets"],
) -> dict[str, Path]:
    """Write the cross-comparison matrix and every summary figure; return what was written.

    ``matrix_path`` is the long TSV (``.../cross_comparison.tsv``); next to it go the wide
    ``*_matrix.tsv`` and the heatmap (``.png``/``.pdf``). Figures go to ``figures_dir``.
    Baselines come from ``REPORTS/{run}/{testset}/baselines/baselines.tsv`` where present.
    """
    if not runs or not testsets:
        raise KmervaeError("compare needs at least one run and one test set")
    matrix_path, figures_dir = Path(matrix_path), Path(figures_dir)
    base = matrix_path.with_suffix("")
    long = cross_matrix(runs, testsets, reports_dir)
    histories = {run: read_history(Path(models_dir) / run) for run in runs}
    baselines = collect_baselines(runs, testsets, reports_dir)
    grand = grand_comparison(long, baselines)

    written = {"matrix": matrix_path, "matrix_wide": base.with_name(base.name + "_matrix.tsv")}
    _write_tsv(long, matrix_path)
    _write_tsv(matrix_table(long), written["matrix_wide"], index=True)
    plot_heatmap(long, base, cmap)
    written["heatmap"] = base.with_suffix(".png")
    plot_length_sweep(length_sweep(long, length_sweep_testsets), figures_dir / "length_sweep")
    plot_curves(histories, "val_loss", figures_dir / "loss_curves", log_y=True)  # early epochs are orders larger
    plot_curves(histories, "lr", figures_dir / "lr_curves", log_y=True)
    plot_mse_bars({run: best_epoch_mse(h) for run, h in histories.items()}, figures_dir / "mse_by_kmer")
    plot_grand(grand, figures_dir / "grand_comparison")
    _write_tsv(grand, figures_dir / "grand_comparison.tsv")
    for name in ("length_sweep", "loss_curves", "lr_curves", "mse_by_kmer", "grand_comparison"):
        written[name] = figures_dir / f"{name}.png"
    written["grand_table"] = figures_dir / "grand_comparison.tsv"
    return written


def concat_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Concatenate TSV tables with the same header (e.g. the labels of a dataset's samples)."""
    if not paths:
        raise KmervaeError("no tables to concatenate")
    header = None
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "w") as sink:
        for path in paths:
            with open(path) as fh:
                first = fh.readline()
                if header is None:
                    header = first
                    sink.write(first)
                elif first != header:
                    raise KmervaeError(
                        f"{path}: line 1: header {first.strip()!r} differs from {header.strip()!r} of {paths[0]}"
                    )
                for line in fh:
                    sink.write(line)
    return out

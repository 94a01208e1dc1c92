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

from .io.atomic import atomic_path
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


# --- what each run's numbers are measured in ---------------------------------------------


def read_run_config(model_dir: str | os.PathLike) -> dict | None:
    """The resolved config a run was trained with (``config.yaml`` of its model directory), or None."""
    from .vae.config import load

    path = Path(model_dir) / "config.yaml"
    return load(path) if path.exists() else None


def mse_spaces(config: dict | None) -> dict[int, str]:
    """k -> what the history's ``mse_<k>mer`` of a run is the MSE of, from its resolved config.

    The default VAE reconstructs its input (``input.transform``, e.g. the CLR profile); a
    model's MSE is otherwise in the space its group's loss works in (``kmervae.vae.losses``):
    frequencies for BCE and gated losses, log(frequency + offset) for log-MSE, else the
    group's input transform. Without a config the space is unknown and said so.
    """
    if config is None:
        return {}
    from .vae.config import loss_spec

    names = {"clr": "the CLR input", "freq": "the frequency input"}
    transforms = config["input"]["group_transforms"]
    offset = float(config["input"]["log_offset"])
    spaces = {}
    for k in config["input"]["ks"]:
        name = f"{k}mer"
        spec = loss_spec(config, name)
        transform = transforms.get(name, config["input"]["transform"])
        if spec["kind"] == "bce":
            spaces[int(k)] = "frequencies (BCE loss)"
        elif spec["kind"] == "gated":
            spaces[int(k)] = "frequencies (gated loss)"
        elif spec["kind"] == "log_mse":
            spaces[int(k)] = f"log(frequency + {spec['offset']:g}) (log-MSE loss)"
        elif transform == "log":
            spaces[int(k)] = f"the log(frequency + {offset:g}) input"
        else:
            spaces[int(k)] = names.get(transform, f"the {transform} input")
    return spaces


def loss_description(config: dict | None) -> str:
    """What a run's training/validation loss sums, in words short enough for a panel title."""
    if config is None:
        return "loss (config.yaml missing)"
    from .vae.model import reconstructs_input

    beta = f"{float(config['loss']['beta']):g}·KL"
    if reconstructs_input(config):
        return f"Σ squared error + {beta}"
    weighting = config["loss"]["weighting"]
    terms = {"per_feature": "Σ per-column losses", "equal": "Σ group mean losses"}
    text = terms.get(weighting, "Σ weighted group means")
    scale = float(config["loss"]["scale"])
    return f"{text}{f' × {scale:g}' if scale != 1 else ''} + {beta}"


# --- figures -----------------------------------------------------------------------------


def _errors(part: pd.DataFrame) -> np.ndarray | None:
    lo, hi = part.spearman_ci_lo.to_numpy(float), part.spearman_ci_hi.to_numpy(float)
    if np.isnan(lo).all():
        return None
    value = part.spearman.to_numpy(float)
    # an interval need not contain its estimate (percentile bootstrap); draw what is on each side
    return np.clip(np.vstack([np.nan_to_num(value - lo), np.nan_to_num(hi - value)]), 0, None)


SPEARMAN_LABEL = "Spearman ρ, latent distance vs k-mer MSE\n(higher is better)"


def _pairs_per_cell(long: pd.DataFrame) -> str:
    """'n = Q queries × K neighbours' when every cell used the same numbers, else ''."""
    queries, k = pd.unique(long["queries"].dropna()), pd.unique(long["k"].dropna())
    if len(queries) == 1 and len(k) == 1:
        return f"n = {int(queries[0])} queries × {int(k[0])} neighbours"
    return ""


def heatmap_figure(long: pd.DataFrame, cmap: str = "viridis"):
    from .plots import DOUBLE_COLUMN, SINGLE_COLUMN, SMALL_PT, figure

    runs, testsets = list(pd.unique(long.run)), list(pd.unique(long.testset))
    values = long.pivot(index="run", columns="testset", values="spearman").loc[runs, testsets]
    lo = long.pivot(index="run", columns="testset", values="spearman_ci_lo").loc[runs, testsets]
    hi = long.pivot(index="run", columns="testset", values="spearman_ci_hi").loc[runs, testsets]
    width = SINGLE_COLUMN if 1.9 + 0.75 * len(testsets) <= SINGLE_COLUMN else DOUBLE_COLUMN
    fig, ax = figure(width=width, height=1.4 + 0.3 * len(runs))
    image = ax.imshow(values.to_numpy(float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(testsets)), testsets, rotation=30, ha="right")
    ax.set_yticks(range(len(runs)), runs)
    ax.set_xlabel("test set (dataset.min length)")
    ax.set_ylabel("run (dataset.min length.model)")
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    finite = values.to_numpy(float)[np.isfinite(values.to_numpy(float))]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(runs)):
        for j in range(len(testsets)):
            v = values.iat[i, j]
            ax.text(j, i, f"{v:.3f}\n[{lo.iat[i, j]:.3f}, {hi.iat[i, j]:.3f}]", ha="center", va="center",
                    fontsize=SMALL_PT, color="white" if v < middle else "black")
    fig.colorbar(image, ax=ax, label="Spearman ρ (higher is better)", shrink=0.9)
    n = _pairs_per_cell(long)
    # a figure title: constrained layout keeps it above the axes and the colour bar
    fig.suptitle("Every run on every test set: Spearman ρ [95 % CI]" + (f"\n{n} per cell" if n else ""))
    return fig


def plot_heatmap(long: pd.DataFrame, path: Path, cmap: str = "viridis") -> None:
    from .plots import save_figure

    save_figure(heatmap_figure(long, cmap), path)


def length_sweep_figure(lines: dict[str, pd.DataFrame], n: str = ""):
    from .plots import DOUBLE_COLUMN, categorical_palette, figure, legend_outside

    fig, ax = figure(width=DOUBLE_COLUMN, height=2.6)
    thresholds = sorted({t for part in lines.values() for t in part.test_threshold})
    step = min(np.diff(thresholds)) if len(thresholds) > 1 else 1000
    markers = "osD^vP*X"
    for i, ((label, part), colour) in enumerate(zip(lines.items(), categorical_palette(len(lines)))):
        dodge = (i - (len(lines) - 1) / 2) * 0.3 * step / max(1, len(lines))  # keep error bars apart
        ax.errorbar(part.test_threshold + dodge, part.spearman, yerr=_errors(part), marker=markers[i % 8],
                    color=colour, label=label)
    ax.set_xticks(thresholds, [f"{t:,}" for t in thresholds])
    ax.set_xlabel("minimum contig length of the test set (bp)")
    ax.set_ylabel(SPEARMAN_LABEL)
    ax.set_title("Spearman ρ against the test set's length threshold" + (f" ({n} per point)" if n else ""))
    ax.grid(alpha=0.3)
    legend_outside(ax, title="run")
    return fig


def plot_length_sweep(lines: dict[str, pd.DataFrame], path: Path, n: str = "") -> None:
    from .plots import save_figure

    save_figure(length_sweep_figure(lines, n), path)


def loss_curves_figure(histories: dict[str, pd.DataFrame], configs: dict[str, dict | None] | None = None):
    """One panel per run (losses of different models are in different units), shared epoch axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    from .plots import DOUBLE_COLUMN, OKABE_ITO, SINGLE_COLUMN, figure, legend_below

    runs = list(histories) or ["(no runs)"]
    ncols = min(len(runs), 3)
    nrows = -(-len(runs) // ncols)
    fig, axes = figure(nrows, ncols, width=SINGLE_COLUMN if ncols == 1 else DOUBLE_COLUMN,
                       height=0.5 + 1.45 * nrows, sharex=True, squeeze=False)
    series = [("val_loss", "validation", OKABE_ITO[0]), ("train_loss", "training", OKABE_ITO[1])]
    for ax, run in zip(axes.ravel(), runs):
        history = histories.get(run)
        if history is None:
            continue
        for column, label, colour in series:
            if column in history.columns:
                ax.plot(history.epoch, history[column], color=colour, label=label)
        if "warmup" in history.columns and history.warmup.astype(bool).any():
            last = history.epoch[history.warmup.astype(bool)].max()
            ax.axvspan(history.epoch.min() - 0.5, last + 0.5, color="0.9", zorder=0, label="β warm-up")
        if "best" in history.columns and history.best.astype(bool).any():
            ax.axvline(history.epoch[history.best.astype(bool)].iloc[-1], color="k", ls=":", lw=0.8,
                       label="best checkpoint")
        if (history[[c for c, _, _ in series if c in history.columns]].to_numpy(float) > 0).all():
            ax.set_yscale("log")  # early epochs are orders larger
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{run}\n{loss_description((configs or {}).get(run))}", fontsize=6.5)
        if ax in axes[:, 0]:
            ax.set_ylabel("loss per contig")
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(runs):
            ax.set_axis_off()
        elif i + ncols >= len(runs):  # nothing below: this panel carries the epoch axis
            ax.set_xlabel("epoch")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    legend_below(fig, list(handles.values()), list(handles), ncols=4)
    fig.suptitle("Loss per epoch, one panel per run (each in its model's own units)")
    return fig


def plot_loss_curves(histories: dict[str, pd.DataFrame], path: Path, configs=None) -> None:
    from .plots import save_figure

    save_figure(loss_curves_figure(histories, configs), path)


def _same_series(histories: dict[str, pd.DataFrame], column: str) -> list[tuple[list[str], pd.DataFrame]]:
    """Runs grouped by identical (epoch, value) series: lines drawn on top of each other are one entry."""
    groups: list[tuple[list[str], pd.DataFrame]] = []
    for run, history in histories.items():
        if column not in history.columns:
            continue
        part = history[["epoch", column]].reset_index(drop=True)
        for names, seen in groups:
            if seen.equals(part):
                names.append(run)
                break
        else:
            groups.append(([run], part))
    return groups


def lr_curves_figure(histories: dict[str, pd.DataFrame]):
    """Learning rate per epoch; runs with the same schedule are one line, a constant rate is said so."""
    from .plots import SINGLE_COLUMN, categorical_palette, figure, legend_outside, short

    groups = _same_series(histories, "lr")
    fig, ax = figure(width=SINGLE_COLUMN, height=2.4)
    for (names, part), colour in zip(groups, categorical_palette(len(groups))):
        label = "\n".join(short(name) for name in names)  # runs on one line, one legend entry
        ax.plot(part.epoch, part.lr, color=colour, marker="o", markersize=2, label=label)
    values = np.concatenate([part.lr.to_numpy(float) for _, part in groups]) if groups else np.array([])
    constant = [len(np.unique(part.lr.to_numpy(float))) == 1 for _, part in groups]
    if values.size and (values > 0).all() and values.max() / values.min() > 10:
        ax.set_yscale("log")
    if groups and all(constant):
        rates = ", ".join(f"{v:g}" for v in np.unique(values))
        ax.text(0.5, 0.5, f"constant learning rate in every run\n({rates}; {len(histories)} runs"
                + (", lines overlap)" if len(histories) > len(groups) else ")"),
                transform=ax.transAxes, ha="center", va="center",
                bbox={"fc": "white", "ec": "0.6", "lw": 0.5})
    elif groups:
        legend_outside(ax, title="schedule")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Learning rate per epoch ({len(histories)} runs)")
    ax.grid(alpha=0.3)
    return fig


def plot_lr_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    from .plots import save_figure

    save_figure(lr_curves_figure(histories), path)


def mse_figure(mse: dict[str, dict[int, float]], spaces: dict[str, dict[int, str]]):
    """Best-epoch MSE per k-mer group, one panel per space the MSE is measured in (never one axis for two)."""
    from .plots import DOUBLE_COLUMN, categorical_palette, figure, legend_below

    unknown = "reconstruction MSE\n(space unknown: no config.yaml)"
    panels: dict[str, dict[str, dict[int, float]]] = {}
    for run, per_run in mse.items():
        for k, value in per_run.items():
            space = spaces.get(run, {}).get(k)
            label = f"MSE of {space}".replace(" (", "\n(") if space else unknown
            panels.setdefault(label, {}).setdefault(run, {})[k] = value
    panels = panels or {unknown: {}}
    colour = dict(zip(mse, categorical_palette(len(mse))))
    # panel widths follow their bars, but a panel of few bars keeps room for its axis labels
    ratios = [
        max(14, 1 + len({k for v in p.values() for k in v}) * max(2, len(p))) for p in panels.values()
    ]
    fig, axes = figure(1, len(panels), width=DOUBLE_COLUMN, height=2.6, squeeze=False,
                       gridspec_kw={"width_ratios": ratios})
    for ax, (label, per_run) in zip(axes[0], panels.items()):
        ks = sorted({k for v in per_run.values() for k in v}, reverse=True)
        width = 0.8 / max(1, len(per_run))
        for i, (run, values) in enumerate(per_run.items()):
            x = np.arange(len(ks)) + (i - (len(per_run) - 1) / 2) * width
            ax.bar(x, [values.get(k, np.nan) for k in ks], width=width, color=colour[run], label=run)
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("k-mer group (k)")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    handles = {}
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    legend_below(fig, list(handles.values()), list(handles), ncols=3)
    fig.suptitle("Reconstruction MSE per k-mer group at each run's best epoch (lower is better)")
    return fig


def plot_mse_bars(mse: dict[str, dict[int, float]], path: Path, spaces=None) -> None:
    from .plots import save_figure

    save_figure(mse_figure(mse, spaces or {}), path)


def grand_figure(table: pd.DataFrame):
    """A dot plot: one row per VAE run or baseline, one colour per test set, 95 % intervals."""
    from .plots import BASELINE_COLOUR, DOUBLE_COLUMN, categorical_palette, figure, legend_outside

    testsets = list(pd.unique(table.testset))
    mean = table.groupby("method").spearman.mean()
    kind = table.drop_duplicates("method").set_index("method").kind
    rows = sorted(mean.index, key=lambda m: (kind[m] != "vae", -mean[m], m))
    slot = {m: i for i, m in enumerate(rows)}
    row_height = max(0.15, 0.045 * len(testsets))
    fig, ax = figure(width=DOUBLE_COLUMN, height=1.0 + row_height * max(1, len(rows)))
    markers = "osD^vP*X"
    for i, (testset, colour) in enumerate(zip(testsets, categorical_palette(len(testsets)))):
        part = table[table.testset == testset]
        dodge = (i - (len(testsets) - 1) / 2) * 0.7 / max(1, len(testsets))
        ax.errorbar(part.spearman, part.method.map(slot) + dodge, xerr=_errors(part), fmt=markers[i % 8],
                    color=colour, markersize=3, elinewidth=0.7, capsize=1.5, label=testset)
    ax.set_yticks(range(len(rows)), rows)
    for tick, method in zip(ax.get_yticklabels(), rows):
        if kind[method] != "vae":
            tick.set_color(BASELINE_COLOUR)
            tick.set_style("italic")
    vae_rows = sum(kind[m] == "vae" for m in rows)
    if 0 < vae_rows < len(rows):
        ax.axhline(vae_rows - 0.5, color="0.5", lw=0.6, ls="--")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(SPEARMAN_LABEL.replace("\n", " "))
    ax.set_ylabel("VAE run (top) · baseline, width (grey)")
    ax.grid(axis="x", alpha=0.3)
    legend_outside(ax, title="test set")
    ax.set_title("Every VAE run and baseline on every test set (95 % CI), best mean first")
    return fig


def plot_grand(table: pd.DataFrame, path: Path) -> None:
    from .plots import save_figure

    save_figure(grand_figure(table), path)


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
    configs = {run: read_run_config(Path(models_dir) / run) for run in runs}
    baselines = collect_baselines(runs, testsets, reports_dir)
    grand = grand_comparison(long, baselines)

    written = {"matrix": matrix_path, "matrix_wide": base.with_name(base.name + "_matrix.tsv")}
    _write_tsv(long, matrix_path)
    _write_tsv(matrix_table(long), written["matrix_wide"], index=True)
    plot_heatmap(long, base, cmap)
    written["heatmap"] = base.with_suffix(".png")
    sweep = length_sweep(long, length_sweep_testsets)
    plot_length_sweep(sweep, figures_dir / "length_sweep", _pairs_per_cell(long))
    plot_loss_curves(histories, figures_dir / "loss_curves", configs)
    plot_lr_curves(histories, figures_dir / "lr_curves")
    mse = {run: best_epoch_mse(h) for run, h in histories.items()}
    plot_mse_bars(mse, figures_dir / "mse_by_kmer", {run: mse_spaces(c) for run, c in configs.items()})
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

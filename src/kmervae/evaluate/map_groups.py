"""Sample groups on the t-SNE map: where each group lies and what each HDBSCAN cluster is made of.

The development logs' sample comparison (one site's soil vs water samples, aquatic vs
terrestrial samples) looked at the map three ways, and so does this module. A group is a
name and a list of sample names (the ``sample`` column of a dataset store, copied into its
embeddings); a map of groups covers every contig of their samples, and for each pair of
groups A, B (in the order given) it writes:

- ``map_density_A_vs_B`` (.png/.pdf/.tsv): each group's 2-D histogram on the same
  b x b bins over the whole map (:func:`density_bins`: half the square root of the number
  of contigs, 10 to :data:`DENSITY_BINS`, so small maps are not all empty bins), normalised to the
  fraction of the group's contigs per bin, and their difference A − B, drawn with a
  diverging colour map centred at 0 (symmetric limits: red where A is denser, blue where B is);
- ``map_overlay_A_vs_B`` (.png/.pdf): both groups on black, A cyan and B yellow, so that
  where they overlap the map is green. Each group's density (a :data:`OVERLAY_BINS` grid,
  smoothed by one bin, square-root scaled to its own maximum) goes into RGB channels:
  cyan is green + blue, yellow is red + green; green adds up (``G = min(1, a + b)``) while
  each group's own channel is dimmed by the other's density (``R = b (1 − a)``,
  ``B = a (1 − b)``), so overlap turns green whichever group is denser and no drawing
  order hides either group;

and, over all groups, ``map_composition`` (.tsv, .png/.pdf): per cluster (noise its own
row, last) the number of contigs, each group's count and each group's fraction of the
cluster, as stacked bars with each group's share of the whole map as dashed lines.
"""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import numpy as np

from ..errors import KmervaeError
from .neighbours import write_tsv

DENSITY_BINS = 50
OVERLAY_BINS = 256
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
CYAN, YELLOW, GREEN = (0.0, 1.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0)


# -- which groups ----------------------------------------------------------------------


def parse_group_options(values) -> dict[str, list[str]]:
    """``NAME=SAMPLE1,SAMPLE2`` strings (``--group``, repeatable) as {name: [samples]}, in order."""
    groups: dict[str, list[str]] = {}
    for value in values or ():
        name, sep, samples = str(value).partition("=")
        name = name.strip()
        if not sep or not name:
            raise KmervaeError(f"--group {value!r}: write a group as NAME=SAMPLE1,SAMPLE2")
        if name in groups:
            raise KmervaeError(f"--group {value!r}: group {name!r} is given twice")
        groups[name] = [s.strip() for s in samples.split(",") if s.strip()]
    return groups


def group_arguments(groups: dict) -> list[str]:
    """{name: [samples]} as ``--group NAME=S1,S2`` words (what :func:`parse_group_options` reads)."""
    return [word for name, samples in groups.items() for word in ("--group", f"{name}={','.join(samples)}")]


def check_groups(groups: dict, present, source) -> dict[str, list[str]]:
    """Groups as {name: [samples]}: two or more, file-safe names, each naming samples of ``present``
    (the samples ``source`` holds), no sample in two groups. Each problem is one error naming it."""
    groups = {str(k): [v] if isinstance(v, str) else [str(s) for s in v] for k, v in dict(groups).items()}
    if len(groups) < 2:
        raise KmervaeError(
            f"a map of sample groups needs two or more groups, got {len(groups)} ({', '.join(groups)})"
        )
    present = set(present)
    owner: dict[str, str] = {}
    for name, samples in groups.items():
        if not GROUP_NAME.fullmatch(name):
            raise KmervaeError(
                f"group name {name!r}: use letters, digits and _ . + - (it names the figure files)"
            )
        if not samples:
            raise KmervaeError(f"group {name!r} names no samples")
        for sample in samples:
            if sample in owner and owner[sample] != name:
                raise KmervaeError(
                    f"groups {owner[sample]!r} and {name!r} both name sample {sample!r}; "
                    "a sample belongs to one group at most"
                )
            owner[sample] = name
            if sample not in present:
                have = sorted(present)
                listed = ", ".join(have[:10]) + (f" and {len(have) - 10} more" if len(have) > 10 else "")
                raise KmervaeError(
                    f"{source}: group {name!r} names sample {sample!r}, which it does not hold "
                    f"(its samples: {listed or 'none'})"
                )
    return {name: list(dict.fromkeys(samples)) for name, samples in groups.items()}


def group_of_samples(samples: np.ndarray, groups: dict[str, list[str]]) -> np.ndarray:
    """Per row, the index of its sample's group in ``groups`` (-1: in no group)."""
    out = np.full(len(samples), -1, dtype=np.int64)
    for g, members in enumerate(groups.values()):
        out[np.isin(samples, members)] = g
    return out


# -- the numbers -----------------------------------------------------------------------


def map_edges(xy: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``bins`` equal bins over the map's extent on each axis (every point inside)."""
    return tuple(np.histogram_bin_edges(xy[:, axis], bins=bins) for axis in (0, 1))


def density_bins(n: int) -> int:
    """Bins per axis of the density difference: sqrt(n) / 2, at least 10, at most DENSITY_BINS."""
    return int(np.clip(round(np.sqrt(n) / 2), 10, DENSITY_BINS))


def group_density(xy: np.ndarray, member: np.ndarray, edges) -> np.ndarray:
    """The group's 2-D histogram on ``edges`` as fractions of its contigs (sums to 1)."""
    counts, _, _ = np.histogram2d(xy[member, 0], xy[member, 1], bins=edges)
    return counts / max(int(member.sum()), 1)


def composition(clusters: np.ndarray, group_of: np.ndarray, names: list[str]) -> list[list]:
    """Rows ``cluster, n, n_<group>..., fraction_<group>...``: clusters in order, noise last."""
    rows = []
    order = [c for c in np.unique(clusters) if c >= 0] + ([-1] if (clusters < 0).any() else [])
    for c in order:
        in_cluster = clusters == c
        counts = [int(np.sum(in_cluster & (group_of == g))) for g in range(len(names))]
        n = int(in_cluster.sum())
        rows.append(["noise" if c < 0 else int(c), n, *counts, *(k / n for k in counts)])
    return rows


def overlay_rgb(xy: np.ndarray, in_a: np.ndarray, in_b: np.ndarray, edges) -> np.ndarray:
    """An (x bins, y bins, 3) RGB image: group A cyan, group B yellow, overlap green (see the module)."""
    from scipy.ndimage import gaussian_filter

    def intensity(member):
        counts, _, _ = np.histogram2d(xy[member, 0], xy[member, 1], bins=edges)
        smooth = gaussian_filter(counts, sigma=1.0, mode="constant")
        return np.sqrt(smooth / smooth.max()) if smooth.max() > 0 else smooth

    a, b = intensity(in_a), intensity(in_b)
    return np.clip(np.stack([b * (1 - a), a + b, a * (1 - b)], axis=-1), 0.0, 1.0)


# -- the outputs -----------------------------------------------------------------------


def write_group_reports(xy, clusters, group_of, groups: dict[str, list[str]], outdir: Path) -> dict:
    """The composition table and figure, and per pair of groups the density difference and overlay."""
    names = list(groups)
    rows = composition(clusters, group_of, names)
    header = ["cluster", "n"] + [f"n_{g}" for g in names] + [f"fraction_{g}" for g in names]
    write_tsv(outdir / "map_composition.tsv", header, rows)
    share = np.array([np.mean(group_of == g) for g in range(len(names))])
    _save(composition_figure(rows, names, share), outdir / "map_composition")
    bins = density_bins(len(xy))
    x_edges, y_edges = map_edges(xy, bins)
    pairs = []
    for a, b in combinations(range(len(names)), 2):
        in_a, in_b = group_of == a, group_of == b
        fa, fb = group_density(xy, in_a, (x_edges, y_edges)), group_density(xy, in_b, (x_edges, y_edges))
        stem = f"map_density_{names[a]}_vs_{names[b]}"
        ix, iy = np.meshgrid(np.arange(bins), np.arange(bins), indexing="ij")
        write_tsv(
            outdir / f"{stem}.tsv",
            ["x_lo", "x_hi", "y_lo", "y_hi", f"fraction_{names[a]}", f"fraction_{names[b]}", "difference"],
            zip(x_edges[ix.ravel()], x_edges[ix.ravel() + 1], y_edges[iy.ravel()], y_edges[iy.ravel() + 1],
                fa.ravel(), fb.ravel(), (fa - fb).ravel()),
        )  # fmt: skip
        counts = (int(in_a.sum()), int(in_b.sum()))
        _save(density_figure(fa - fb, (x_edges, y_edges), (names[a], names[b]), counts), outdir / stem)
        rgb = overlay_rgb(xy, in_a, in_b, map_edges(xy, OVERLAY_BINS))
        extent = (x_edges[0], x_edges[-1], y_edges[0], y_edges[-1])
        _save(
            overlay_figure(rgb, extent, (names[a], names[b]), counts),
            outdir / stem.replace("density", "overlay"),
        )
        pairs.append({"a": names[a], "b": names[b], "max_abs_difference": float(np.abs(fa - fb).max())})
    return {
        "groups": {
            g: {"samples": groups[g], "contigs": int(np.sum(group_of == i))} for i, g in enumerate(names)
        },
        "density_bins": bins,
        "pairs": pairs,
    }


def _save(fig, path) -> None:
    from ..plots import save_figure

    save_figure(fig, path)


def _map_axes(ax) -> None:
    ax.spines[:].set_visible(True)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])


def density_figure(difference: np.ndarray, edges, names: tuple[str, str], counts: tuple[int, int]):
    """The density difference A − B on the map, a diverging colour map with limits ±max|A − B|."""
    from ..plots import SINGLE_COLUMN, figure

    fig, ax = figure(width=SINGLE_COLUMN, height=2.7)
    limit = float(np.abs(difference).max()) or 1.0
    (x_edges, y_edges), (a, b) = edges, names
    image = ax.imshow(
        difference.T,
        origin="lower",
        extent=(x_edges[0], x_edges[-1], y_edges[0], y_edges[-1]),
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
        aspect="equal",
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"fraction of {a} − fraction of {b}\n(per bin)")
    ax.set_title(f"density {a} − {b}\nn = {counts[0]:,} {a}, {counts[1]:,} {b} contigs")
    _map_axes(ax)
    return fig


def overlay_figure(rgb: np.ndarray, extent, names: tuple[str, str], counts: tuple[int, int]):
    """Both groups on black: the first cyan, the second yellow, where both are green."""
    from matplotlib.patches import Patch

    from ..plots import SINGLE_COLUMN, figure, legend_outside

    fig, ax = figure(width=SINGLE_COLUMN, height=2.7)
    ax.set_facecolor("black")
    ax.imshow(
        np.transpose(rgb, (1, 0, 2)), origin="lower", extent=extent, interpolation="nearest", aspect="equal"
    )
    (a, b), (na, nb) = names, counts
    handles = [Patch(color=CYAN, label=f"{a} ({na:,})"), Patch(color=YELLOW, label=f"{b} ({nb:,})"),
               Patch(color=GREEN, label="both")]  # fmt: skip
    legend_outside(ax, handles, [h.get_label() for h in handles], title="group (contigs)")
    ax.set_title(f"{a} and {b} on the map\nn = {na + nb:,} contigs")
    _map_axes(ax)
    return fig


def composition_figure(rows: list[list], names: list[str], share: np.ndarray):
    """Stacked bars: each group's fraction of each cluster (noise last); dashed: shares of the map."""
    from matplotlib.lines import Line2D

    from ..plots import DOUBLE_COLUMN, SINGLE_COLUMN, categorical_palette, figure, legend_outside

    fig, ax = figure(width=SINGLE_COLUMN if len(rows) <= 12 else DOUBLE_COLUMN, height=2.6)
    k = len(names)
    fractions = np.array([row[2 + k :] for row in rows], dtype=np.float64).reshape(len(rows), k)
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for g, colour in enumerate(categorical_palette(k)):
        ax.bar(x, fractions[:, g], bottom=bottom, color=colour, width=0.8, label=names[g], linewidth=0)
        bottom += fractions[:, g]
    for level in np.cumsum(share)[:-1]:
        ax.axhline(level, color="black", linestyle="--", linewidth=0.6)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.6))
    labels.append("share of the map")
    legend_outside(ax, handles, labels, title="group")
    ax.set_xticks(x, [f"{row[0]} ({row[1]:,})" for row in rows], rotation=90)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel("HDBSCAN cluster (contigs)")
    ax.set_ylabel("fraction of the cluster")
    clusters = sum(1 for row in rows if row[0] != "noise")
    ax.set_title(f"cluster composition: {clusters} clusters\nn = {sum(row[1] for row in rows):,} contigs")
    return fig

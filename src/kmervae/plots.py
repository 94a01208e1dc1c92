"""The house style of every figure, and saving figures as PNG + PDF pairs, atomically, headless.

Figures are sized for a journal page: :data:`SINGLE_COLUMN` (89 mm) or :data:`DOUBLE_COLUMN`
(183 mm) wide, in inches, so their fonts (:data:`FONT_PT`, never under :data:`SMALL_PT`)
print at the size they are set. PNGs are written at :data:`DPI` without cropping, so a PNG's
pixel width is its print width times the DPI. Layout is matplotlib's constrained layout,
which makes room for labels, colour bars and legends placed outside the axes.

Categorical colours come from :func:`categorical_palette`: the Okabe–Ito colours (safe for
the common colour-vision deficiencies) while there are at most eight categories, then a
fixed list of :data:`MAX_CATEGORIES` colours chosen far apart in CIELAB (beyond Okabe–Ito no
palette is safe for every reader; the legend names each colour). Beyond that,
:func:`categories` colours the most frequent labels and groups the rest as "other".

Every report figure is saved through :func:`save_figure` so figures never appear half
written and a machine without a display (cluster nodes, CI) never tries to open one.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from .io.atomic import atomic_path

SUFFIXES = (".png", ".pdf")
MM_PER_INCH = 25.4
SINGLE_COLUMN = 89 / MM_PER_INCH  # 3.50 in
DOUBLE_COLUMN = 183 / MM_PER_INCH  # 7.20 in
DPI = 300
FONT_PT, SMALL_PT, TITLE_PT = 7, 6, 8

#: Okabe & Ito (2008), ordered so the first colours are the most distinct from each other
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
#: after Okabe–Ito: each colour the farthest (CIE76) from those before it, from white and from
#: the greys below, picked from the Tol, Brewer, tab20 and IBM lists
EXTENSION = (
    "#4B0082", "#7FFF00", "#FF1493", "#66A61E", "#004D40", "#DBDB8D",
    "#8C564B", "#8B0000", "#1A85FF", "#00CED1", "#FF9896", "#882255",
)  # fmt: skip
MAX_CATEGORIES = len(OKABE_ITO) + len(EXTENSION)
OTHER_COLOUR = "#BBBBBB"  # labels grouped as "other" (beyond MAX_CATEGORIES - 1)
NOISE_COLOUR = "#DDDDDD"  # HDBSCAN noise
VAE_COLOUR, BASELINE_COLOUR = OKABE_ITO[0], "#777777"

STYLE = {
    "font.size": FONT_PT,
    "axes.titlesize": TITLE_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT + 0.5,
    "ytick.labelsize": SMALL_PT + 0.5,
    "legend.fontsize": SMALL_PT + 0.5,
    "legend.title_fontsize": FONT_PT,
    "figure.titlesize": TITLE_PT,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "grid.linewidth": 0.4,
    "errorbar.capsize": 2,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable in a journal's layout tools
    "savefig.dpi": DPI,
    "figure.dpi": 100,
}
matplotlib.rcParams.update(STYLE)


def figure(*args, width: float | None = None, height: float | None = None, **kwargs):
    """A new figure and axes (``plt.subplots``) on the headless backend.

    ``width``/``height`` in inches (e.g. ``width=SINGLE_COLUMN``) set the size and constrained
    layout. Called with a plain ``figsize`` instead, the figure gets no layout engine (its
    caller may choose one) and, if it still has none when saved, is cropped to its content.
    """
    if width is not None:
        kwargs["figsize"] = (width, height if height is not None else width * 0.75)
        kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def categorical_palette(n: int) -> list[str]:
    """``n`` distinct colours: Okabe–Ito up to 8, the extended list up to MAX_CATEGORIES, then cycled."""
    colours = list(OKABE_ITO) if n <= len(OKABE_ITO) else list(OKABE_ITO + EXTENSION)
    return [colours[i % len(colours)] for i in range(n)]


def categories(
    values, keep_last: tuple[str, ...] = (), by_name: bool = False
) -> tuple[list[str], list[str], np.ndarray]:
    """Legend labels, their colours and each value's index into them, most frequent label first.

    With more labels than :data:`MAX_CATEGORIES`, the most frequent MAX_CATEGORIES - 1 keep a
    colour and the rest become one grey ``m others``. Labels in ``keep_last`` (e.g.
    ``"noise"``) get :data:`NOISE_COLOUR` and come last, outside the palette. ``by_name``
    lists the coloured labels in name order (numbers by value: cluster 2 before cluster 10).
    """
    values = np.asarray(values).astype(str)
    names, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    special = np.isin(names, list(keep_last))
    order = [i for i in np.lexsort((names, -counts)) if not special[i]]  # frequent first, then by name
    colours_of = order if len(order) <= MAX_CATEGORIES else order[: MAX_CATEGORIES - 1]
    if by_name:
        colours_of = sorted(colours_of, key=lambda i: (not names[i].isdigit(), len(names[i]), names[i]))
    legend = [str(names[i]) for i in colours_of]
    colours = categorical_palette(len(colours_of))
    slot = np.full(len(names), -1)
    slot[colours_of] = np.arange(len(colours_of))
    rest = [i for i in order if slot[i] < 0]
    if rest:
        slot[rest] = len(legend)
        legend.append(f"{len(rest)} others")
        colours.append(OTHER_COLOUR)
    for i in np.nonzero(special)[0]:
        slot[i] = len(legend)
        legend.append(str(names[i]))
        colours.append(NOISE_COLOUR)
    return legend, colours, slot[inverse]


def legend_outside(ax, handles=None, labels=None, ncols: int = 1, below: bool = False, **kwargs):
    """A legend right of ``ax`` (or ``below`` the figure's axes), outside: no data is hidden.

    Constrained layout makes room for both; the legend below is the figure's, under every label.
    """
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    if below:
        return legend_below(ax.figure, handles, labels, ncols=ncols, **kwargs)
    kwargs.setdefault("loc", "upper left")
    kwargs.setdefault("bbox_to_anchor", (1.02, 1.0))
    kwargs.setdefault("borderaxespad", 0.0)
    return ax.legend(handles, labels, ncols=ncols, **kwargs)


def legend_below(fig, handles, labels, ncols: int = 3, **kwargs):
    """One legend for the whole figure, below every axes."""
    if not handles:
        return None
    return fig.legend(handles, labels, loc="outside lower center", ncols=max(1, ncols), **kwargs)


def short(label: str, limit: int = 28) -> str:
    """A label cut to ``limit`` characters with an ellipsis in the middle (both ends stay readable)."""
    if len(label) <= limit:
        return label
    head = (limit - 1) // 2
    return f"{label[:head]}…{label[len(label) - (limit - 1 - head) :]}"


def save_figure(fig, path_without_suffix: str | os.PathLike, dpi: int = DPI) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` and ``<path>.pdf`` (each atomically), close it, return the paths.

    A figure with a layout engine (every figure from ``figure(width=...)``) is not cropped:
    its PNG is its size in inches times ``dpi`` pixels. PDF metadata dates are dropped so the
    same figure gives the same bytes.
    """
    base = Path(path_without_suffix)
    bbox = None if fig.get_layout_engine() is not None else "tight"
    written = []
    try:
        for suffix in SUFFIXES:
            target = base.with_name(base.name + suffix)
            with atomic_path(target) as tmp:
                metadata = {"CreationDate": None} if suffix == ".pdf" else {"Software": None}
                fig.savefig(tmp, format=suffix[1:], dpi=dpi, bbox_inches=bbox, metadata=metadata)
            written.append(target)
    finally:
        plt.close(fig)
    return written

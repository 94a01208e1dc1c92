"""Figures as PNG + PDF pairs, written atomically, with a headless backend.

Every report figure is saved through :func:`save_figure` so figures never appear half
written and a machine without a display (cluster nodes, CI) never tries to open one.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from .atomic import atomic_path

SUFFIXES = (".png", ".pdf")


def figure(*args, **kwargs):
    """A new figure and axes (``plt.subplots``) on the headless backend."""
    return plt.subplots(*args, **kwargs)


def save_figure(fig, path_without_suffix: str | os.PathLike, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` and ``<path>.pdf`` (each atomically), close it, return the paths.

    PDF metadata dates are dropped so the same figure gives the same bytes.
    """
    base = Path(path_without_suffix)
    written = []
    try:
        for suffix in SUFFIXES:
            target = base.with_name(base.name + suffix)
            with atomic_path(target) as tmp:
                metadata = {"CreationDate": None} if suffix == ".pdf" else {"Software": None}
                fig.savefig(tmp, format=suffix[1:], dpi=dpi, bbox_inches="tight", metadata=metadata)
            written.append(target)
    finally:
        plt.close(fig)
    return written

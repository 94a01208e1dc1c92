"""Per-threshold stores: keep the rows at or above a minimum length (or listed), without recounting.

The length sweep (1000 … 5000 bp) reads one counted store per sample and writes one
smaller store per threshold; rows are streamed chunk by chunk, so memory is a few
chunks whatever the store's size. Works on counts and freq stores and on datasets
(``sample`` and ``split`` are carried along).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .errors import KmervaeError
from .options import Option, defaults
from .progress import progress
from .io.store import OPTIONAL_ARRAYS, KmerStore, StoreWriter

log = logging.getLogger(__name__)

#: attributes StoreWriter writes itself; everything else is copied from the source store
WRITER_ATTRS = ("format", "format_version", "counts_width", "matrix", "groups", "tool_version", "n")


class AlignedAppender:
    """Buffer rows for a StoreWriter and append them in whole chunks.

    Appends that are not whole chunks make zarr rewrite the last partial chunk each time;
    buffering keeps every write a full chunk (memory: under two chunks of rows).
    """

    def __init__(self, writer: StoreWriter):
        self.writer = writer
        self.parts: list[dict] = []
        self.buffered = 0

    def append(self, ids, lengths, matrix, **extra) -> None:
        if len(ids) == 0:
            return
        self.parts.append({"ids": np.asarray(ids), "lengths": np.asarray(lengths), "matrix": matrix, **extra})
        self.buffered += len(ids)
        if self.buffered >= self.writer.chunk_rows:
            self._write(whole_chunks_only=True)

    def flush(self) -> None:
        """Write what is buffered, including a last partial chunk."""
        self._write(whole_chunks_only=False)

    def _write(self, whole_chunks_only: bool) -> None:
        if not self.parts:
            return
        merged = {key: np.concatenate([p[key] for p in self.parts]) for key in self.parts[0]}
        n = len(merged["ids"])
        cut = n - n % self.writer.chunk_rows if whole_chunks_only else n
        extra = {k: v[:cut] for k, v in merged.items() if k not in ("ids", "lengths", "matrix")}
        self.writer.append(merged["ids"][:cut], merged["lengths"][:cut], merged["matrix"][:cut], **extra)
        rest = {k: v[cut:] for k, v in merged.items()}
        self.parts = [rest] if cut < n else []
        self.buffered = n - cut


def read_optional(store: KmerStore, name: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of an optional array; strings as plain ``str`` (zarr returns StringDType)."""
    return store.read(name, start, stop)


def copied_attrs(source: KmerStore) -> dict:
    """The source store's attributes that a derived store keeps (sources, sample, provenance...)."""
    return {k: v for k, v in source.attrs.items() if k not in WRITER_ATTRS}


def read_id_list(path: str | os.PathLike) -> set[str]:
    """IDs from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise KmervaeError(f"{path}: no such ID list")
    with open(path, encoding="utf-8") as fh:
        return {line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")}


#: the settings of :func:`select_min_length` and their CLI flags
OPTIONS = (
    Option("min_length", 0, int, "keep rows with length >= T", metavar="T"),
    Option("ids_file", None, flag="--ids", metavar="IDS.txt", help="keep only the IDs listed (one per line)"),
    Option("chunk_rows", None, int, "rows per chunk (default: the input's)"),
)
DEFAULTS = defaults(OPTIONS)


def select_min_length(
    store: str | os.PathLike,
    out: str | os.PathLike,
    min_length: int = DEFAULTS["min_length"],
    chunk_rows: int | None = DEFAULTS["chunk_rows"],
    ids_file: str | os.PathLike | None = DEFAULTS["ids_file"],
) -> Path:
    """Write the rows of ``store`` whose length is at least ``min_length`` to the store ``out``.

    With ``ids_file`` (one ID per line) only the listed records are kept (a row selection
    without recounting; the list is held in memory, the store is streamed). Attributes
    are copied; ``provenance.min_length`` records the threshold (the larger of this one
    and any threshold the source was already selected with).

    When no row is kept the empty store is still written (in a length sweep some samples
    have nothing above the larger thresholds, and the workflow expects every store), with
    a warning giving the store's row count and its longest record.
    """
    min_length = int(min_length)
    if min_length < 0:
        raise KmervaeError(f"--min-length must be >= 0, got {min_length}")
    source = KmerStore(store)
    if Path(out).resolve() == source.path.resolve():
        raise KmervaeError(f"{out}: the output would overwrite its input store")
    wanted = read_id_list(ids_file) if ids_file is not None else None
    attrs = copied_attrs(source)
    provenance = dict(attrs.get("provenance") or {})
    provenance["min_length"] = max(min_length, int(provenance.get("min_length", 0)))
    provenance["selected_from"] = {"path": str(source.path), "n": source.n}
    if wanted is not None:
        provenance["selected_ids"] = {"path": str(ids_file), "listed": len(wanted)}
    attrs["provenance"] = provenance
    extra = tuple(name for name in OPTIONAL_ARRAYS if source.has(name))
    step = int(chunk_rows or source.chunk_rows)
    with StoreWriter(
        out,
        source.layout,
        source.matrix_name,
        step,
        attrs=attrs,
        extra=extra,
        compressors=source.matrix_array.compressors,  # keep the source's codec (count's is tuned for counts)
        counts_width=source.counts_width,
    ) as writer:
        appender = AlignedAppender(writer)
        longest = 0
        with progress(f"select >= {min_length} bp", total=source.n, unit="rows") as bar:
            for start, stop in source.chunks(step):
                lengths = source.lengths(start, stop)
                longest = max(longest, int(lengths.max(initial=0)))
                ids = source.ids(start, stop)
                mask = lengths >= min_length
                if wanted is not None:
                    mask &= np.fromiter((i in wanted for i in ids), dtype=bool, count=len(ids))
                keep = np.nonzero(mask)[0]
                if len(keep):
                    appender.append(
                        ids[keep],
                        lengths[keep],
                        source.rows(start, stop)[keep],
                        **{name: read_optional(source, name, start, stop)[keep] for name in extra},
                    )
                bar.update(stop - start)
        appender.flush()
        if writer.n == 0:
            listed = f" and listed in {ids_file}" if wanted is not None else ""
            log.warning(
                "%s: no row of %s (%d rows, longest %d bp) has length >= %d%s: wrote an empty store",
                out,
                source.path,
                source.n,
                longest,
                min_length,
                listed,
            )
    return Path(out)

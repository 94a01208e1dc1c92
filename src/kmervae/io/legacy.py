"""Legacy data of the original Keras 3 / JAX implementation: one float32 ``.npy`` of
N x (1 + 2772) plus an ``ids.txt``.

Column 0 is the contig length, the rest are the per-group frequencies in the store's
column order (6-mers … 1-mers). Import keeps the frequencies bit for bit in a ``freq``
store; export writes a ``freq`` store's values unchanged and a ``counts`` store's as
:func:`kmervae.kmers.frequencies`, so export → import → export is lossless. Both
directions stream chunk by chunk (the .npy is read through a memory map and written
through ``numpy.lib.format.open_memmap``), so memory stays at one chunk.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from .atomic import atomic_path
from ..errors import KmervaeError
from ..kmers import Layout, frequencies
from ..progress import progress
from .store import DEFAULT_CHUNK_ROWS, KmerStore, StoreWriter, source_entry

#: lengths above this are not exact in float32 (column 0 of the legacy matrix)
FLOAT32_EXACT_INTEGERS = 1 << 24
log = logging.getLogger("kmervae")


def _read_ids(path: Path):
    """Yield IDs from ids.txt one per line, naming the line of an empty one."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            record_id = line.rstrip("\r\n")
            if not record_id.strip():
                raise KmervaeError(f"{path}: line {number} is empty; ids.txt needs one ID per line")
            yield record_id


def _check_unique_ids(path: Path, batch: int = 1 << 20) -> None:
    """Refuse an ids.txt that lists an ID twice, naming the ID and its lines.

    Holds 8 bytes per ID (a 64-bit hash); only IDs whose hash repeats are read again and
    compared as strings, so a hash collision is never reported as a duplicate.
    """
    hashes, part = [], []
    for record_id in _read_ids(path):
        part.append(hash(record_id))
        if len(part) == batch:
            hashes.append(np.array(part, dtype=np.int64))
            part = []
    hashes.append(np.array(part, dtype=np.int64))
    every = np.sort(np.concatenate(hashes))
    repeated = set(every[1:][every[1:] == every[:-1]].tolist())
    if not repeated:
        return
    lines: dict[str, list[int]] = {}
    for number, record_id in enumerate(_read_ids(path), start=1):
        if hash(record_id) in repeated:
            lines.setdefault(record_id, []).append(number)
    duplicated = [(where[1], record_id, where) for record_id, where in lines.items() if len(where) > 1]
    if duplicated:
        _, record_id, where = min(duplicated)  # the ID whose second line comes first
        shown = ", ".join(map(str, where[:-1][:9])) + f" and {where[-1]}"
        raise KmervaeError(
            f"{path}: ID {record_id!r} is listed on lines {shown}; ids.txt needs one unique ID per row"
        )


def import_legacy(
    npy: str | os.PathLike,
    ids_txt: str | os.PathLike,
    out: str | os.PathLike,
    layout: Layout = Layout(),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    sample: str | None = None,
) -> Path:
    """Write a ``freq`` store from a legacy .npy (length + frequencies per row) and its ids.txt."""
    npy, ids_txt = Path(npy), Path(ids_txt)
    if not npy.exists():
        raise KmervaeError(f"{npy}: no such file")
    if not ids_txt.exists():
        raise KmervaeError(f"{ids_txt}: no such file")
    try:
        matrix = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise KmervaeError(f"{npy}: not a readable .npy file ({exc})") from None
    if matrix.ndim != 2 or matrix.shape[1] != 1 + layout.width:
        raise KmervaeError(
            f"{npy}: shape {matrix.shape}, expected N x {1 + layout.width} (length + {layout.width} "
            f"{layout.describe()} frequencies)"
        )
    if matrix.dtype != np.float32:
        raise KmervaeError(f"{npy}: dtype {matrix.dtype}, expected float32")
    n = matrix.shape[0]
    attrs = {
        "sources": [source_entry(npy, n), source_entry(ids_txt, n)],
        "provenance": {"stage": "import-legacy", "npy": str(npy), "ids": str(ids_txt)},
    }
    if sample:
        attrs["sample"] = sample
    _check_unique_ids(ids_txt)
    ids = _read_ids(ids_txt)
    with StoreWriter(out, layout, "freq", chunk_rows, attrs=attrs) as writer:
        with progress("import-legacy", total=n, unit="rows") as bar:
            for start in range(0, n, chunk_rows):
                block = np.asarray(matrix[start : start + chunk_rows])
                chunk_ids = [record_id for _, record_id in zip(range(len(block)), ids)]
                if len(chunk_ids) < len(block):
                    raise KmervaeError(
                        f"{ids_txt}: {start + len(chunk_ids)} IDs but {npy} has {n} rows; "
                        "they must match line for row"
                    )
                bad = (
                    ~np.isfinite(block).all(axis=1)
                    | (block[:, 0] < 0)
                    | (block[:, 0] != np.round(block[:, 0]))
                )
                if bad.any():
                    row = int(np.argmax(bad))
                    raise KmervaeError(
                        f"{npy}: row {start + row + 1} ({chunk_ids[row]}): "
                        "not a finite non-negative whole length "
                        "followed by finite frequencies"
                    )
                writer.append(chunk_ids, block[:, 0].astype(np.int64), block[:, 1:])
                bar.update(len(block))
        extra = next(ids, None)
        if extra is not None:
            raise KmervaeError(f"{ids_txt}: more IDs than the {n} rows of {npy} (line {n + 1}: {extra})")
    return Path(out)


def export_legacy(
    store: str | os.PathLike, out_npy: str | os.PathLike, out_ids: str | os.PathLike
) -> tuple[Path, Path]:
    """Write a store as a legacy float32 .npy (length, then frequencies) and an ids.txt."""
    source = KmerStore(store)
    too_long = 0
    with atomic_path(out_npy) as tmp_npy, atomic_path(out_ids) as tmp_ids:
        # open_memmap appends nothing to the name, so the temp path stays the one we rename
        target = open_memmap(tmp_npy, mode="w+", dtype=np.float32, shape=(source.n, 1 + source.layout.width))
        with (
            open(tmp_ids, "w", encoding="utf-8") as ids_out,
            progress("export-legacy", total=source.n, unit="rows") as bar,
        ):
            for start, stop in source.chunks():
                ids = source.ids(start, stop)
                if any("\n" in i or "\r" in i for i in ids):
                    raise KmervaeError(f"{source.path}: an ID in rows {start + 1}-{stop} has a line break")
                lengths = source.lengths(start, stop)
                too_long += int((lengths > FLOAT32_EXACT_INTEGERS).sum())
                rows = source.rows(start, stop)
                freq = rows if source.matrix_name == "freq" else frequencies(rows, source.layout)
                target[start:stop, 0] = lengths
                target[start:stop, 1:] = freq
                target.flush()  # write back each chunk: dirty pages never pile up in memory
                ids_out.write("".join(f"{i}\n" for i in ids))
                bar.update(stop - start)
        target.flush()
        del target
    if too_long:
        log.warning(
            "%s: %d lengths above %d are rounded in the float32 length column",
            out_npy,
            too_long,
            FLOAT32_EXACT_INTEGERS,
        )
    return Path(out_npy), Path(out_ids)

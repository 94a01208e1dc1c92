"""The k-mer store: one zarr v3 group per sample, threshold or dataset.

Layout of ``NAME.zarr`` (format ``kmervae-kmers``, version 1)::

    id        str     (N,)            record ID (first word of the FASTA header)
    length    int64   (N,)            record length as written (all characters)
    counts    uint32  (N, C)          canonical k-mer counts, groups per ``attrs.groups``
      or
    freq      float32 (N, C)          per-group frequencies (legacy imports)
    sample    str     (N,)            optional: sample each row came from (datasets)
    split     int8    (N,)            optional: 0 train, 1 validation, 2 test (datasets)

Group attributes: ``format``, ``format_version``, ``matrix`` ("counts" or "freq"),
``groups`` (list of {k, start, stop, width} in column order), ``tool_version``,
``sources`` (files with sha256 and record counts) and whatever the writing stage
adds (``provenance``: thresholds, seed, split fractions...). All arrays are chunked by
rows with the same ``chunk_rows`` so a chunk of rows is one read per array.

A store is written through :class:`StoreWriter` into a temporary sibling directory
and renamed into place on :meth:`StoreWriter.commit`; readers see whole stores only.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, VLenUTF8Codec, ZstdCodec
from zarr.codecs.bytes import Endian

from ..version import __version__
from .atomic import _remove, prepare_output, publish, temporary_sibling, zarr_group
from ..errors import KmervaeError
from ..kmers import Layout, frequencies

FORMAT = "kmervae-kmers"
FORMAT_VERSION = 1
MATRIX_KINDS = {"counts": np.uint32, "freq": np.float32}
SPLITS = ("train", "validation", "test")
DEFAULT_CHUNK_ROWS = 4096
OPTIONAL_ARRAYS = {"sample": str, "split": np.int8}
#: 4-5x faster to write than zarr's default zstd and smaller on count matrices (bit
#: shuffling suits small integers); measured in bench/count.py
FAST_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
#: the matrix codec of dataset stores (``kmervae merge``): a dataset is written once and
#: read every epoch. On count matrices lz4 with bit shuffling decodes 3.5x faster than zstd
#: (170,000 vs 49,000 rows/s a thread) at a better ratio (6.6x vs 4.3x); blosclz decodes as
#: fast at a lower ratio, lz4 with byte shuffling 1.4x faster but 1.6x larger on disk (the
#: bytes a dataset larger than the page cache reads every epoch); measured in bench/loader.py
DATASET_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _direct_chunk_encoder(array):
    """A function encoding one whole chunk of ``array`` into exactly the bytes zarr would
    write, when the array is on a local store and its codecs can be replayed with numcodecs
    (native-order bytes or vlen-utf8, then blosc or zstd); else None. Writing chunks
    ourselves skips zarr's per-call buffer copies and event-loop round trips (a third of
    the time to write counts, most of the time to write IDs)."""
    if not isinstance(array.store, zarr.storage.LocalStore):
        return None
    steps = []
    for codec in array.metadata.codecs:
        if isinstance(codec, BytesCodec) and codec.endian in (None, Endian(sys.byteorder)):
            continue  # a C-contiguous native-order chunk already is these bytes
        if isinstance(codec, VLenUTF8Codec):
            steps.append(numcodecs.VLenUTF8())
        elif isinstance(codec, BloscCodec):
            steps.append(
                numcodecs.Blosc(
                    cname=codec.cname.value,
                    clevel=codec.clevel,
                    shuffle=_BLOSC_SHUFFLE[codec.shuffle.value],
                    blocksize=codec.blocksize,
                    typesize=codec.typesize,
                )
            )
        elif isinstance(codec, ZstdCodec):
            steps.append(numcodecs.Zstd(level=codec.level, checksum=codec.checksum))
        else:
            return None
    strings = bool(steps) and isinstance(steps[0], numcodecs.VLenUTF8)

    def encode(chunk: np.ndarray):
        data = np.asarray(chunk, dtype=object) if strings else np.ascontiguousarray(chunk)
        for step in steps:
            data = step.encode(data)
        return data

    return encode


def _direct_chunk_decoder(array):
    """A function ``decode(c, out)`` decoding chunk ``c`` (a whole chunk of rows) of a 2-D
    ``array`` into ``out`` straight from its file with numcodecs, when the array is on a
    local store with native-order bytes then one blosc or zstd codec; else None. Skips
    zarr's per-chunk machinery (5x the decoding time on count matrices), and numcodecs
    releases the GIL while decoding, so several threads decode in parallel."""
    array = getattr(array, "_array", array)
    if not isinstance(array.store, zarr.storage.LocalStore) or array.ndim != 2:
        return None
    if tuple(array.chunks)[1] != array.shape[1]:  # chunks must hold whole rows
        return None
    codecs = list(array.metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or codecs[0].endian not in (None, Endian(sys.byteorder)):
        return None
    if len(codecs) == 1:
        step = None
    elif len(codecs) == 2 and isinstance(codecs[1], (BloscCodec, ZstdCodec)):
        step = numcodecs.Blosc() if isinstance(codecs[1], BloscCodec) else numcodecs.Zstd()
    else:
        return None
    root = Path(array.store.root) / array.path

    def decode(c: int, out: np.ndarray) -> None:
        path = root / array.metadata.encode_chunk_key((c, 0))
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # an unwritten chunk is all fill value
            out[...] = array.metadata.fill_value
            return
        target = out.reshape(-1).view(np.uint8)
        if step is None:
            target[...] = np.frombuffer(data, dtype=np.uint8)
        elif isinstance(step, numcodecs.Blosc):
            step.decode(data, out=target)
        else:
            target[...] = np.frombuffer(step.decode(data), dtype=np.uint8)

    return decode


MAPPED_CHUNKS = 256  # chunk files a row reader keeps mapped


def mapped_row_reader(array):
    """A function ``take(rows) -> array`` reading rows of a 2-D ``array`` at sorted or unsorted
    integer positions through memory maps of its chunk files, when the array is on a local
    store with whole-row chunks and native-order bytes (no compression; a trailing CRC32C
    allowed); else None.

    Each row costs a few pages of its chunk file rather than the whole chunk, so a gather
    of scattered rows from a large store (re-ranking candidates) reads what it needs. zarr
    v3 writes every chunk at its full size, so a row's offset in its file is fixed. Rows read
    this way are not checked against the chunk's CRC32C (that needs the whole chunk); reads
    of row ranges through zarr are, and a chunk of the wrong size is one error.
    """
    array = getattr(array, "_array", array)
    if not isinstance(array.store, zarr.storage.LocalStore) or array.ndim != 2:
        return None
    codecs = list(array.metadata.codecs)
    endian_ok = codecs and isinstance(codecs[0], BytesCodec) and codecs[0].endian in (None, Endian(sys.byteorder))
    checksum = len(codecs) == 2 and isinstance(codecs[1], Crc32cCodec)
    if not (len(codecs) == 1 or checksum) or not endian_ok or tuple(array.chunks)[1] != array.shape[1]:
        return None
    root, chunk_rows, width = Path(array.store.root) / array.path, int(array.chunks[0]), int(array.shape[1])
    dtype, maps = np.dtype(array.dtype), OrderedDict()

    def chunk(c: int):
        if c in maps:
            maps.move_to_end(c)
            return maps[c]
        path = root / array.metadata.encode_chunk_key((c, 0))
        size = chunk_rows * width * dtype.itemsize + (4 if checksum else 0)  # CRC32C after the rows
        if path.exists() and path.stat().st_size != size:
            raise KmervaeError(f"{path}: damaged chunk ({path.stat().st_size} bytes, expected {size})")
        maps[c] = np.memmap(path, dtype=dtype, mode="r", shape=(chunk_rows, width)) if path.exists() else None
        if len(maps) > MAPPED_CHUNKS:  # bounded open files, whatever the store's size
            maps.popitem(last=False)
        return maps[c]

    def take(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= array.shape[0]):
            raise IndexError(f"row positions outside 0..{array.shape[0] - 1}")
        out = np.empty((len(rows), width), dtype=dtype)
        order = np.argsort(rows, kind="stable")
        which = rows[order] // chunk_rows
        cuts = np.flatnonzero(np.diff(which)) + 1
        for sel in np.split(order, cuts) if len(rows) else ():
            c = int(rows[sel[0]] // chunk_rows)
            block = chunk(c)
            out[sel] = array.metadata.fill_value if block is None else block[rows[sel] - c * chunk_rows]
        return out

    return take


def plain_str(values) -> np.ndarray:
    """Strings as a numpy ``str`` array (zarr 3 returns StringDType, which won't cast to ``str``)."""
    return np.asarray(values, dtype=object).astype(str)


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def source_entry(path: str | os.PathLike, records: int | None = None) -> dict:
    entry = {"path": str(path), "sha256": sha256_of(path)}
    if records is not None:
        entry["records"] = int(records)
    return entry


def open_group(path: str | os.PathLike, what: str) -> CheckedGroup:
    """Open a finished zarr group read-only; a missing or non-zarr path is one clear error,
    and so is a chunk that cannot be decoded when it is read (see :class:`CheckedArray`)."""
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such {what}")
    try:
        return CheckedGroup(zarr.open_group(str(path), mode="r"), path)
    except Exception as exc:  # zarr raises several types for "not a group"
        raise KmervaeError(f"{path}: not a zarr store ({exc})") from None


class CheckedGroup:
    """A read-only zarr group whose arrays are :class:`CheckedArray`; everything else is the group's."""

    def __init__(self, group: zarr.Group, path: Path):
        self._group = group
        self._path = path

    def __getattr__(self, name):
        return getattr(self._group, name)

    def __contains__(self, name) -> bool:
        return self._member(name) is not None

    def __getitem__(self, name):
        item = self._member(name)
        if item is None:
            raise KeyError(name)
        return CheckedArray(item, self._path) if isinstance(item, zarr.Array) else item

    def _member(self, name: str):
        """The group's member ``name``, or None; damaged metadata is one error naming it."""
        try:
            return self._group.get(name)
        except Exception as exc:  # JSONDecodeError, ValueError, TypeError... from the member's zarr.json
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise KmervaeError(
                f"{self._path}: the metadata of array {name!r} ({name}/zarr.json) cannot be read "
                f"({reason}); the store is damaged, write it again"
            ) from None


class CheckedArray:
    """A read-only zarr array whose reads turn an undecodable chunk (overwritten, truncated)
    into one :class:`KmervaeError` naming the store, the array and the chunk, instead of the
    codec's RuntimeError deep inside zarr. Attributes (shape, dtype, chunks...) are the array's."""

    def __init__(self, array: zarr.Array, store_path: Path):
        self._array = array
        self._store_path = store_path

    def __getattr__(self, name):
        return getattr(self._array, name)

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, key):
        try:
            return self._array[key]
        except Exception:
            bad = self._first_bad_chunk(key)
            if bad is None:
                raise  # every chunk decodes: not a damaged store, a bug
            raise KmervaeError(bad) from None

    def _first_bad_chunk(self, key) -> str | None:
        """Read the chunks ``key`` touches one by one; describe the first that fails."""
        array = self._array
        n = array.shape[0]
        rows = key[0] if isinstance(key, tuple) and key else key
        start, stop = rows.indices(n)[:2] if isinstance(rows, slice) else (0, n)
        step = max(int(array.chunks[0]), 1)
        for c in range(start // step, -(-stop // step)):
            lo, hi = c * step, min((c + 1) * step, n)
            try:
                array[lo:hi]
            except Exception as exc:
                chunk = array.metadata.encode_chunk_key((c,) + (0,) * (array.ndim - 1))
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                return (
                    f"{self._store_path}: array {array.path!r}, chunk {chunk} (rows {lo}-{hi - 1}) "
                    f"cannot be read ({reason}); the store is damaged, write it again"
                )
        return None


class AtomicGroupWriter:
    """A zarr v3 group written under a temporary sibling path and published whole by :meth:`commit`.

    Use as a context manager: leaving the block with an exception removes the partial
    group, leaving it normally commits. Subclasses create their arrays and count ``n``.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict):
        #: only a group of the same ``format`` (or nothing, or an empty directory) is replaced
        self.kind = zarr_group(attrs["format"])
        self.path = prepare_output(path, self.kind)
        self.tmp = temporary_sibling(self.path)
        self._committed = False
        try:
            self.group = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        except OSError as exc:
            self.abort()
            raise KmervaeError(f"{self.path}: cannot write the store ({exc.strerror})") from None
        self.group.attrs.update(attrs)
        self.n = 0

    def _before_commit(self) -> None:
        """Hook: finish the arrays before the group is published."""

    def commit(self) -> Path:
        try:
            self._before_commit()
            self.group.attrs["n"] = self.n
            publish(self.tmp, self.path, self.kind)
        except BaseException:
            self.abort()
            raise
        self._committed = True
        return self.path

    def abort(self) -> None:
        if not self._committed:
            _remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class StoreWriter(AtomicGroupWriter):
    """Append rows chunk by chunk, then :meth:`commit` to publish the store atomically."""

    def __init__(
        self,
        path: str | os.PathLike,
        layout: Layout,
        matrix: str = "counts",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        attrs: dict | None = None,
        extra: tuple[str, ...] = (),
        compressors="auto",
    ):
        """``compressors`` (zarr codecs) applies to the matrix, the bulk of the bytes; see
        :data:`FAST_COMPRESSOR` for one that keeps up with the counting kernel."""
        if matrix not in MATRIX_KINDS:
            raise ValueError(f"matrix must be one of {sorted(MATRIX_KINDS)}")
        unknown = set(extra) - set(OPTIONAL_ARRAYS)
        if unknown:
            raise ValueError(f"unknown optional arrays {sorted(unknown)}")
        super().__init__(
            path,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "matrix": matrix,
                "groups": layout.to_attrs(),
                "tool_version": __version__,
                **(attrs or {}),
            },
        )
        self.layout = layout
        self.matrix = matrix
        self.chunk_rows = int(chunk_rows)
        self.extra = tuple(extra)
        c = self.chunk_rows
        self.arrays = {
            "id": self.group.create_array("id", shape=(0,), dtype=str, chunks=(c,)),
            "length": self.group.create_array("length", shape=(0,), dtype=np.int64, chunks=(c,)),
            matrix: self.group.create_array(
                matrix,
                shape=(0, layout.width),
                dtype=MATRIX_KINDS[matrix],
                chunks=(c, layout.width),
                compressors=compressors,
                # zarr's check for an all-fill chunk (to skip writing it) costs more than
                # compressing the chunk; matrix chunks are practically never all zero
                config={"write_empty_chunks": True},
            ),
        }
        for name in self.extra:
            self.arrays[name] = self.group.create_array(
                name, shape=(0,), dtype=OPTIONAL_ARRAYS[name], chunks=(c,)
            )
        self._encoders = {name: _direct_chunk_encoder(array) for name, array in self.arrays.items()}

    def append(self, ids, lengths, matrix, **extra) -> None:
        """Append rows. Appending whole multiples of ``chunk_rows`` is fastest."""
        self._append(ids, lengths, matrix, extra)

    def append_padded(self, ids, lengths, chunk: np.ndarray, **extra) -> None:
        """Append ``len(ids)`` rows given as the first rows of ``chunk``, a whole
        ``chunk_rows`` matrix whose other rows are zero. The store's last, partial chunk is
        then compressed as it is, with no padded copy (a fresh 45 MB buffer costs more in
        page faults than compressing it)."""
        n = len(ids)
        chunk = np.asarray(chunk)
        if chunk.shape != (self.chunk_rows, self.layout.width) or chunk[n:].any():
            raise ValueError(f"chunk must be {self.chunk_rows} x {self.layout.width}, zero after row {n}")
        padded = chunk if chunk.dtype == MATRIX_KINDS[self.matrix] and chunk.flags.c_contiguous else None
        self._append(ids, lengths, chunk[:n], extra, padded)

    def _append(self, ids, lengths, matrix, extra: dict, padded: np.ndarray | None = None) -> None:
        ids = plain_str(ids)
        n = len(ids)
        if n == 0:
            return
        matrix = np.asarray(matrix)
        if matrix.shape != (n, self.layout.width):
            raise ValueError(f"matrix shape {matrix.shape} != ({n}, {self.layout.width})")
        if set(extra) != set(self.extra):
            raise ValueError(f"expected optional arrays {self.extra}, got {sorted(extra)}")
        self._append_rows("id", ids)
        self._append_rows("length", np.asarray(lengths, dtype=np.int64))
        self._append_rows(self.matrix, matrix.astype(MATRIX_KINDS[self.matrix], copy=False), padded)
        for name, values in extra.items():
            kind = OPTIONAL_ARRAYS[name]
            self._append_rows(name, plain_str(values) if kind is str else np.asarray(values, dtype=kind))
        self.n += n

    def _append_rows(self, name: str, values: np.ndarray, padded: np.ndarray | None = None) -> None:
        """Rows starting on a chunk boundary are encoded and written here chunk by chunk
        (the bytes zarr would write; array shapes are set once, at commit); other appends
        go through zarr. ``padded``: ``values`` already padded to a whole chunk."""
        array, encode, c = self.arrays[name], self._encoders[name], self.chunk_rows
        if encode is None or self.n % c:
            if array.shape[0] != self.n:
                array.resize((self.n, *array.shape[1:]))
            array.append(values)
            return
        fill = array.metadata.fill_value
        for start in range(0, len(values), c):
            block = values[start : start + c]
            if len(block) < c and padded is not None:
                block = padded
            elif len(block) < c:  # zarr stores an edge chunk whole, padded with the fill value
                padding = np.full((c - len(block), *block.shape[1:]), fill, dtype=block.dtype)
                block = np.concatenate([block, padding])
            if not array.config.write_empty_chunks and (block == fill).all():
                continue  # zarr leaves such chunks unwritten
            key = array.metadata.encode_chunk_key(((self.n + start) // c,) + (0,) * (block.ndim - 1))
            path = Path(array.store.root) / array.path / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(block))

    def update_attrs(self, **attrs) -> None:
        self.group.attrs.update(attrs)

    def _before_commit(self) -> None:
        # the direct chunk writer leaves the shapes to be set once, here
        for array in self.arrays.values():
            if array.shape[0] != self.n:
                array.resize((self.n, *array.shape[1:]))


class KmerStore:
    """Read access to a finished store; all reads are by row ranges (bounded memory)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.group = open_group(self.path, "k-mer store")
        attrs = dict(self.group.attrs)
        if attrs.get("format") != FORMAT:
            raise KmervaeError(f"{self.path}: not a kmervae k-mer store (format {attrs.get('format')!r})")
        if attrs.get("format_version") != FORMAT_VERSION:
            raise KmervaeError(
                f"{self.path}: store format version {attrs.get('format_version')} is not supported "
                f"(this kmervae reads version {FORMAT_VERSION})"
            )
        self.attrs = attrs
        self.layout = Layout.from_attrs(attrs["groups"])
        self.matrix_name = attrs["matrix"]
        self.matrix_array = self.group[self.matrix_name]
        self.n = int(self.matrix_array.shape[0])
        self.chunk_rows = int(self.matrix_array.chunks[0])
        self._decoder = _direct_chunk_decoder(self.matrix_array)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"KmerStore({str(self.path)!r}, n={self.n}, {self.matrix_name}, {self.layout.describe()})"

    def has(self, name: str) -> bool:
        return name in self.group

    def array(self, name: str):
        if name not in self.group:
            raise KmervaeError(f"{self.path}: the store has no {name!r} array")
        return self.group[name]

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of a 1-D array (``id``, ``length``, ``sample``, ``split``); strings as ``str``."""
        values = self.array(name)[start:stop]
        return plain_str(values) if values.dtype.kind in "OTU" else values

    def ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.read("id", start, stop)

    def lengths(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.array("length")[start:stop]

    def rows(self, start: int = 0, stop: int | None = None, ks: tuple[int, ...] | None = None) -> np.ndarray:
        """The stored matrix (counts or freq) for rows [start, stop), optionally only groups ``ks``."""
        block = self.matrix_array[start:stop]
        if ks is not None and tuple(ks) != self.layout.ks:
            block = block[:, self.layout.columns_for(ks)]
        return block

    def read_chunk_into(self, c: int, out: np.ndarray) -> int:
        """Decode chunk ``c`` of the matrix into ``out`` (``chunk_rows`` x width, the stored
        dtype, C-contiguous); return its number of rows (the last chunk may be short).

        Thread-safe; straight from the chunk file when the codecs allow (see
        :func:`_direct_chunk_decoder`), else through zarr. A damaged chunk is one error naming it.
        """
        lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n)
        if self._decoder is not None:
            try:
                self._decoder(c, out)
                return hi - lo
            except Exception:  # noqa: BLE001 (zarr's read below names the damaged chunk)
                pass
        out[: hi - lo] = self.matrix_array[lo:hi]
        return hi - lo

    def take(self, index: np.ndarray, ks: tuple[int, ...] | None = None) -> np.ndarray:
        """Rows at sorted or unsorted integer positions (read chunk-wise, returned in ``index`` order)."""
        out = take_rows(self.matrix_array, index, self.chunk_rows)
        if ks is not None and tuple(ks) != self.layout.ks:
            out = out[:, self.layout.columns_for(ks)]
        return out

    def freq(self, start: int = 0, stop: int | None = None, ks: tuple[int, ...] | None = None) -> np.ndarray:
        """Per-group frequencies (float32) for rows [start, stop), from counts or freq alike."""
        block = self.rows(start, stop, ks)
        layout = Layout(tuple(ks)) if ks is not None else self.layout
        return frequencies(block, layout).astype(np.float32, copy=False)

    def chunks(self, chunk_rows: int | None = None) -> Iterator[tuple[int, int]]:
        """Row ranges [start, stop) covering the store, aligned to its chunks."""
        step = int(chunk_rows or self.chunk_rows)
        for start in range(0, self.n, step):
            yield start, min(start + step, self.n)

    def split_names(self) -> list[str]:
        return list(self.attrs.get("split_names", SPLITS))

    def _split_array(self):
        if not self.has("split"):
            raise KmervaeError(f"{self.path}: the store has no split column; make a dataset with `kmervae merge`")
        return self.array("split")

    def split_codes(self) -> np.ndarray:
        """The split code (int8, an index into :meth:`split_names`) of every row: one byte a row."""
        return np.asarray(self._split_array()[:], dtype=np.int8)

    def split_index(self, split: str) -> np.ndarray:
        """Row positions of one split (``train``, ``validation``, ``test``), read chunk-wise."""
        names = self.split_names()
        if split not in names:
            raise KmervaeError(f"{self.path}: unknown split {split!r} (have {names})")
        code = names.index(split)
        arr = self._split_array()
        parts = [np.nonzero(arr[a:b] == code)[0] + a for a, b in self.chunks(max(self.chunk_rows, 1 << 20))]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def take_rows(array, index: np.ndarray, chunk_rows: int) -> np.ndarray:
    """Rows of a zarr array at integer positions, read chunk by chunk, returned in ``index`` order."""
    index = np.asarray(index, dtype=np.int64)
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    first = array[0:0]
    out = np.empty(
        (len(index),) + tuple(array.shape[1:]), dtype=object if first.dtype.kind in "OTU" else first.dtype
    )
    chunk = sorted_index // chunk_rows
    for c in np.unique(chunk):
        sel = np.nonzero(chunk == c)[0]
        lo = int(c) * chunk_rows
        block = np.asarray(array[lo : lo + chunk_rows])
        out[order[sel]] = block[sorted_index[sel] - lo]
    return out

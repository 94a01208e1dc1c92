"""Count canonical k-mers of FASTA records into a k-mer store (the ``count`` stage).

The kernel walks each record once, keeping a rolling 2-bit code of the last K bases
(K = the layout's largest k) and the length of the current run of ACGT; any other
character ends the run, so no k-mer spans it. Two exact strategies, chosen per record:

* short records: every position adds its 1..K-mers straight into the canonical columns;
* long records: count only raw K-mers (plus, near run starts, the one r-mer ending at a
  position with run length r < K), then derive each shorter k by summing the (k+1)-mer
  counts over their leading base, and fold raw codes onto canonical columns at the end.
  This costs one increment per base plus a fixed ~4**K per record, so it wins once a
  record is a few kb long.

Both give identical integers, so the choice (and the thread count) never changes output.
Records of a chunk are split between threads by bases; each row is computed by one
thread only, so output is identical for any ``threads``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from .errors import KmervaeError
from .fasta import DEFAULT_CHUNK_BASES, FastaChunk, open_fasta, read_fasta_chunks
from .kmers import Layout, canonical_index, reverse_complement_code
from .progress import progress
from .store import DEFAULT_CHUNK_ROWS, FAST_COMPRESSOR, StoreWriter, source_entry

log = logging.getLogger("kmervae.count")

#: byte → base code: A/a 0, C/c 1, G/g 2, T/t 3, everything else 4 (breaks k-mers)
BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    for _letter in _letters:
        BASE_CODE[ord(_letter)] = _code
BASE_CODE.setflags(write=False)

#: records with at least this many bases use the K-mer + marginalisation strategy
#: (measured with 6..1 on the 2-core dev machine: about 4.3 us + 1 ns/base per record against
#: 1.9 us + 10 ns/base for adding the 1..6-mers of each position directly)
MARGINAL_FROM_BASES = 250


class _Tables:
    """Per-layout lookup tables the kernel needs (indexed by k = 1..K)."""

    def __init__(self, layout: Layout):
        self.K = K = max(layout.ks)
        self.width = layout.width
        self.want = np.zeros(K + 1, dtype=np.bool_)
        self.column_start = np.zeros(K + 1, dtype=np.int64)
        for g in layout.groups:
            self.want[g.k] = True
            self.column_start[g.k] = g.start
        # raw k-mer counts of k live at scratch[offset[k] : offset[k] + 4**k]; one more
        # slot at the end stays zero (the "no reverse complement" target of palindromes)
        self.offset = np.zeros(K + 2, dtype=np.int64)
        for k in range(1, K + 1):
            self.offset[k + 1] = self.offset[k] + 4**k
        self.zero_slot = int(self.offset[K + 1])
        self.scratch = self.zero_slot + 1
        self.canonical = np.concatenate([canonical_index(k) for k in range(1, K + 1)])
        # fold raw → canonical as a gather: column j of group k = raw[forward] + raw[reverse]
        self.forward = np.full(layout.width, self.zero_slot, dtype=np.uint64)
        self.reverse = np.full(layout.width, self.zero_slot, dtype=np.uint64)
        for g in layout.groups:
            codes = np.arange(4**g.k, dtype=np.int64)
            rc = reverse_complement_code(codes, g.k)
            is_canonical = codes <= rc
            columns = canonical_index(g.k)[is_canonical]
            self.forward[g.start + columns] = self.offset[g.k] + codes[is_canonical]
            distinct = is_canonical & (codes < rc)
            self.reverse[g.start + canonical_index(g.k)[distinct]] = self.offset[g.k] + rc[distinct]


@njit(cache=True, nogil=True)
def _count_direct(seq, lo, hi, K, want, offset, canonical, column_start, row):
    """Add every 1..K-mer of seq[lo:hi] straight into the canonical columns of ``row``."""
    row[:] = 0
    code = 0
    run = 0
    for i in range(lo, hi):
        base = BASE_CODE[seq[i]]
        if base > 3:
            run = 0
            continue
        code = (code << 2) | base
        run += 1
        top = run if run < K else K
        for k in range(1, top + 1):
            if want[k]:
                raw = code & ((1 << (2 * k)) - 1)
                row[column_start[k] + canonical[offset[k] + raw]] += 1
    return


@njit(cache=True, nogil=True)
def _count_marginal(seq, lo, hi, K, offset, forward, reverse, row, scratch):
    """Raw K-mer counts, shorter k derived exactly by marginalising the leading base.

    Unsigned indices and slices let LLVM drop negative-index checks and vectorise the
    table sums (3x faster than plain indexing on one array).
    """
    scratch[:] = 0
    top = scratch[offset[K] : offset[K + 1]]
    full = np.uint64((1 << (2 * K)) - 1)
    code = np.uint64(0)
    run = 0
    for i in range(lo, hi):
        base = BASE_CODE[seq[i]]
        if base > 3:
            run = 0
            continue
        code = ((code << np.uint64(2)) | np.uint64(base)) & full
        run += 1
        if run >= K:
            top[code] += 1
        else:  # the run-length-r r-mer ending here is no suffix of any counted K-mer
            scratch[np.uint64(offset[run]) + (code & np.uint64((1 << (2 * run)) - 1))] += 1
    for k in range(K - 1, 0, -1):
        n = 1 << (2 * k)
        shorter = scratch[offset[k] : offset[k] + n]
        longer = scratch[offset[k + 1] : offset[k + 1] + 4 * n]
        for x in range(n):
            shorter[x] += longer[x] + longer[n + x] + longer[2 * n + x] + longer[3 * n + x]
    for j in range(row.shape[0]):
        row[j] = scratch[forward[j]] + scratch[reverse[j]]
    return


@njit(cache=True, nogil=True)
def _count_rows(
    seq,
    offsets,
    first,
    stop,
    K,
    want,
    offset,
    canonical,
    column_start,
    forward,
    reverse,
    out,
    scratch,
    switch,
):
    """Count records ``first`` .. ``stop - 1`` into their rows of ``out``."""
    for r in range(first, stop):
        lo = offsets[r]
        hi = offsets[r + 1]
        if hi - lo >= switch:
            _count_marginal(seq, lo, hi, K, offset, forward, reverse, out[r], scratch)
        else:
            _count_direct(seq, lo, hi, K, want, offset, canonical, column_start, out[r])


@njit(cache=True, parallel=True)
def _count_blocks_in_parallel(
    seq,
    offsets,
    block_rows,
    K,
    want,
    offset,
    canonical,
    column_start,
    forward,
    reverse,
    out,
    scratch_size,
    switch,
):
    """Blocks of rows on numba's threads; each row is written by exactly one thread."""
    for b in prange(len(block_rows) - 1):
        scratch = np.zeros(scratch_size, dtype=np.uint32)
        _count_rows(
            seq,
            offsets,
            block_rows[b],
            block_rows[b + 1],
            K,
            want,
            offset,
            canonical,
            column_start,
            forward,
            reverse,
            out,
            scratch,
            switch,
        )


def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def _check_threads(threads: int) -> int:
    threads = int(threads)
    if threads < 1:
        raise KmervaeError(f"--threads must be at least 1, got {threads}")
    if threads > max_threads():
        log.warning(
            "%d threads requested but only %d available; using %d", threads, max_threads(), max_threads()
        )
        threads = max_threads()
    return threads


def count_buffer(
    seq: np.ndarray,
    offsets: np.ndarray,
    layout: Layout = Layout(),
    threads: int = 1,
    switch: int = MARGINAL_FROM_BASES,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Counts (uint32, n × layout.width) of the records ``seq[offsets[i]:offsets[i+1]]``,
    written into ``out[:n]`` if given (a C-contiguous uint32 matrix of at least n rows)."""
    tables = _tables(layout)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if out is None:
        out = np.empty((n, tables.width), dtype=np.uint32)
    else:
        if (
            out.dtype != np.uint32
            or out.shape[1:] != (tables.width,)
            or len(out) < n
            or not out.flags.c_contiguous
        ):
            raise ValueError(f"out must be a C-contiguous uint32 matrix of >= {n} x {tables.width}")
        out = out[:n]
    if n == 0:
        return out
    threads = _check_threads(threads)
    seq = np.ascontiguousarray(seq, dtype=np.uint8)
    t = tables
    if threads == 1:  # no parallel region: numba's thread pool is never started
        scratch = np.zeros(t.scratch, dtype=np.uint32)
        _count_rows(
            seq, offsets, 0, n, t.K, t.want, t.offset, t.canonical, t.column_start, t.forward, t.reverse,
            out, scratch, int(switch),
        )  # fmt: skip
        return out
    # blocks of about equal bases, several per thread
    blocks = min(n, 8 * threads)
    block_rows = np.searchsorted(offsets, np.linspace(0, offsets[-1], blocks + 1), side="left").astype(
        np.int64
    )
    block_rows[0], block_rows[-1] = 0, n
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _count_blocks_in_parallel(
            seq, offsets, block_rows, t.K, t.want, t.offset, t.canonical, t.column_start, t.forward,
            t.reverse, out, t.scratch, int(switch),
        )  # fmt: skip
    finally:
        numba.set_num_threads(previous)
    return out


_TABLE_CACHE: dict[tuple[int, ...], _Tables] = {}


def _tables(layout: Layout) -> _Tables:
    if layout.ks not in _TABLE_CACHE:
        _TABLE_CACHE[layout.ks] = _Tables(layout)
    return _TABLE_CACHE[layout.ks]


def count_sequences(seqs: list[str | bytes], layout: Layout = Layout(), threads: int = 1) -> np.ndarray:
    """Counts matrix (uint32, len(seqs) × layout.width) of in-memory sequences."""
    encoded = [s.encode("ascii") if isinstance(s, str) else bytes(s) for s in seqs]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in encoded], out=offsets[1:])
    return count_buffer(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets, layout, threads)


class _MatrixPool:
    """Output matrices to reuse. A fresh 45 MB matrix per chunk costs more in page faults
    than counting 1 kb contigs into it (glibc returns allocations over 32 MB to the OS).

    :meth:`take` is called from one thread only; :meth:`give` from any.
    """

    def __init__(self, rows: int, width: int, limit: int):
        self.rows, self.width, self.limit = rows, width, limit
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        self.made = 0

    def take(self) -> np.ndarray:
        try:
            return self.free.get_nowait()
        except queue.Empty:
            if self.made < self.limit:
                self.made += 1
                return np.empty((self.rows, self.width), dtype=np.uint32)
            return self.free.get()  # wait for the writer to finish with one

    def give(self, matrix: np.ndarray) -> None:
        self.free.put(matrix)


def _counted_chunks(
    paths, layout: Layout, threads: int, chunk_records: int, chunk_bases: int, pool: _MatrixPool | None = None
) -> Iterator[tuple[FastaChunk, np.ndarray, np.ndarray | None]]:
    """(chunk, counts, pooled matrix holding the counts or None) in input order.

    With threads > 1 the next chunk is parsed while the current one is counted, so
    parsing does not leave the counting threads idle. With a ``pool`` the caller gives
    each matrix back when done with it.
    """
    threads = _check_threads(threads)
    chunks = read_fasta_chunks(paths, chunk_bases=chunk_bases, chunk_records=chunk_records)

    def count(chunk):
        matrix = pool.take() if pool is not None and len(chunk) <= pool.rows else None
        return count_buffer(chunk.seq, chunk.offsets, layout, threads, out=matrix), matrix

    if threads == 1:
        for chunk in chunks:
            yield chunk, *count(chunk)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-count") as executor:
        pending = None
        try:
            for chunk in chunks:
                matrix = pool.take() if pool is not None and len(chunk) <= pool.rows else None
                future = executor.submit(count_buffer, chunk.seq, chunk.offsets, layout, threads, out=matrix)
                if pending is not None:
                    yield pending[0], pending[1].result(), pending[2]
                pending = (chunk, future, matrix)
            if pending is not None:
                yield pending[0], pending[1].result(), pending[2]
                pending = None
        finally:
            if pending is not None:
                pending[1].cancel()


def default_chunk_rows(layout: Layout) -> int:
    """Rows per chunk keeping a chunk of counts near 45 MB whatever the layout: 4096
    (the store default) for 6..1 and smaller layouts, 1024 for 7..1."""
    rows = DEFAULT_CHUNK_ROWS * Layout().width // layout.width
    return int(min(DEFAULT_CHUNK_ROWS, 1 << max(rows.bit_length() - 1, 6)))


def count_chunks(
    paths,
    layout: Layout = Layout(),
    threads: int = 1,
    chunk_records: int | None = None,
    chunk_bases: int = DEFAULT_CHUNK_BASES,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(ids, lengths, counts)`` per chunk of FASTA records, in input order.

    Memory is bounded by the chunk size (default: :func:`default_chunk_rows`); IDs must
    be unique over all ``paths``.
    """
    chunk_records = chunk_records or default_chunk_rows(layout)
    for chunk, counts, _ in _counted_chunks(paths, layout, threads, chunk_records, chunk_bases):
        yield chunk.ids, chunk.lengths, counts


def count_fasta(
    paths,
    out: str | os.PathLike,
    layout: Layout = Layout(),
    threads: int = 1,
    sample: str | None = None,
    chunk_rows: int | None = None,
    chunk_bases: int = DEFAULT_CHUNK_BASES,
) -> Path:
    """Count the records of ``paths`` (FASTA, plain or gzip) into the store ``out``.

    ``chunk_rows`` (records per chunk and per store chunk) defaults to
    :func:`default_chunk_rows`. The store appears only when complete; on any error
    nothing is left behind.
    """
    chunk_rows = chunk_rows or default_chunk_rows(layout)
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise KmervaeError("no FASTA files given")
    for p in paths:
        open_fasta(p).close()  # fail before any work on a missing or unsupported file
    out = Path(out)
    sample = sample or (out.name[: -len(".zarr")] if out.name.endswith(".zarr") else out.stem)
    records = [0] * len(paths)
    totals = {"empty": 0, "bases": 0}

    # at most: one matrix being counted, one waiting to be written, one being written
    pool = _MatrixPool(chunk_rows, layout.width, limit=1 if threads == 1 else 3)

    def row_blocks():
        """(rows to append, matrix to give back to the pool after appending them or None)."""
        buffer = _RowBuffer(chunk_rows)
        with progress(f"count {sample}", unit="bp") as bar:
            for chunk, counts, matrix in _counted_chunks(
                paths, layout, threads, chunk_rows, chunk_bases, pool
            ):
                records[chunk.file_index] += len(chunk)
                totals["empty"] += int(np.count_nonzero(chunk.lengths == 0))
                totals["bases"] += chunk.bases
                given = False
                for block, is_view in buffer.add(chunk.ids, chunk.lengths, counts):
                    yield block, (matrix if is_view else None)
                    given = given or (is_view and matrix is not None)
                if matrix is not None and not given:
                    pool.give(matrix)  # the buffer kept copies only
                bar.update(chunk.bases)
                bar.set_postfix_str(f"{sum(records):,} sequences", refresh=False)
            for block, _ in buffer.flush():
                yield block, None

    with (
        StoreWriter(
            out, layout, chunk_rows=chunk_rows, attrs={"sample": sample}, compressors=FAST_COMPRESSOR
        ) as writer,
        _compression_threads(threads),
    ):
        _append_all(writer, row_blocks(), pool, background=threads > 1)
        writer.update_attrs(
            sources=[source_entry(p, n) for p, n in zip(paths, records)],
            stage="count",
            records=sum(records),
            bases=totals["bases"],
            empty_records=totals["empty"],
        )
    if totals["empty"]:
        log.warning("%s: %d record(s) without sequence kept with zero counts", out, totals["empty"])
    log.info("%s: %d records, %d bases, %s", out, sum(records), totals["bases"], layout.describe())
    return out


@contextlib.contextmanager
def _compression_threads(threads: int):
    """Let blosc use ``threads`` threads per chunk (numcodecs only does so from the main
    thread by default, and zarr compresses in worker threads)."""
    if threads <= 1:
        yield
        return
    from numcodecs import blosc

    previous_use, previous_n = blosc.use_threads, blosc.get_nthreads()
    blosc.use_threads = True
    blosc.set_nthreads(threads)
    try:
        yield
    finally:
        blosc.use_threads = previous_use
        blosc.set_nthreads(previous_n)


def _append_all(writer: StoreWriter, blocks, pool: _MatrixPool, background: bool) -> None:
    """Append row blocks, giving pooled matrices back once written; in the background,
    compression overlaps parsing and counting."""

    def append(block, matrix):
        writer.append(*block)
        if matrix is not None:
            pool.give(matrix)

    if not background:
        for block, matrix in blocks:
            append(block, matrix)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-write") as executor:
        in_flight = None
        for block, matrix in blocks:
            if in_flight is not None:
                in_flight.result()
            in_flight = executor.submit(append, block, matrix)
        if in_flight is not None:
            in_flight.result()


class _RowBuffer:
    """Regroup rows into appends of whole ``chunk_rows`` multiples (zarr's fast path).

    ``add`` yields ``(block, is_view)``: aligned input passes through as a view of the
    caller's arrays (``is_view``); rows kept for later are always copies.
    """

    def __init__(self, chunk_rows: int):
        self.chunk_rows = int(chunk_rows)
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n = 0

    def add(self, ids, lengths, counts):
        rows = (ids, lengths, counts)
        if self.n:  # complete the pending partial chunk first
            need = min(self.chunk_rows - self.n, len(ids))
            self.parts.append(tuple(x[:need].copy() for x in rows))
            self.n += need
            rows = tuple(x[need:] for x in rows)
            if self.n < self.chunk_rows:
                return
            yield tuple(np.concatenate(x) for x in zip(*self.parts)), False
            self.parts, self.n = [], 0
        whole = (len(rows[0]) // self.chunk_rows) * self.chunk_rows
        if whole:
            yield tuple(x[:whole] for x in rows), True
        if whole < len(rows[0]):
            self.parts = [tuple(x[whole:].copy() for x in rows)]
            self.n = len(rows[0]) - whole

    def flush(self):
        if self.parts:
            yield tuple(np.concatenate(x) for x in zip(*self.parts)), False
        self.parts, self.n = [], 0

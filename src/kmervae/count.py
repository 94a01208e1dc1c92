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
from .io.fasta import DEFAULT_CHUNK_BASES, FastaChunk, open_fasta, read_fasta_chunks
from .kmers import Layout, canonical_index, reverse_complement_code
from .options import Option, defaults
from .progress import progress
from .io.store import DEFAULT_CHUNK_ROWS, FAST_COMPRESSOR, StoreWriter, source_entry

log = logging.getLogger("kmervae.count")

#: byte → base code: A/a 0, C/c 1, G/g 2, T/t 3, everything else 4 (breaks k-mers)
#: the settings of :func:`count_fasta` and their CLI flags (``k`` is parsed into its ``layout``)
OPTIONS = (
    Option("threads", 1, int, "cores to use", metavar="N"),
    Option(
        "k",
        "6..1",
        help="k-mer groups, e.g. 6..1, 7..1, 5..1, 4 or 6,4",
        metavar="KS",
        workflow="kmers.groups",
    ),
    Option("sample", None, help="sample name (default: OUT without .zarr)", metavar="NAME"),
    Option(
        "chunk_rows",
        None,
        int,
        "records per chunk and store chunk; bounds memory " "(default: 4096 for 6..1, 1024 for 7..1)",
        metavar="N",
    ),
)
DEFAULTS = defaults(OPTIONS)

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


@njit(cache=True, parallel=True, nogil=True)
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
    """Blocks of rows on numba's threads; each row is written by exactly one thread. Without
    the GIL, so parsing and writing go on in other threads meanwhile."""
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
    """At most ``limit`` output matrices, reused. A fresh 45 MB matrix per chunk costs more
    in page faults than counting 1 kb contigs into it (glibc returns allocations over
    32 MB to the OS).

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
    threads = _check_threads(threads)
    chunks = read_fasta_chunks(paths, chunk_bases=chunk_bases, chunk_records=chunk_records)
    if threads == 1:
        for chunk in chunks:
            yield chunk.ids, chunk.lengths, count_buffer(chunk.seq, chunk.offsets, layout, threads)
        return
    # the next chunk is parsed while the current one is counted, so parsing does not leave
    # the counting threads idle
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-count") as executor:
        pending = None
        try:
            for chunk in chunks:
                future = executor.submit(count_buffer, chunk.seq, chunk.offsets, layout, threads)
                if pending is not None:
                    yield pending[0].ids, pending[0].lengths, pending[1].result()
                pending = (chunk, future)
            if pending is not None:
                yield pending[0].ids, pending[0].lengths, pending[1].result()
                pending = None
        finally:
            if pending is not None:
                pending[1].cancel()


def count_fasta(
    paths,
    out: str | os.PathLike,
    layout: Layout = Layout.parse(DEFAULTS["k"]),
    threads: int = DEFAULTS["threads"],
    sample: str | None = DEFAULTS["sample"],
    chunk_rows: int | None = DEFAULTS["chunk_rows"],
    chunk_bases: int = DEFAULT_CHUNK_BASES,
) -> Path:
    """Count the records of ``paths`` (FASTA, plain or gzip) into the store ``out``.

    ``chunk_rows`` (records per chunk and per store chunk) defaults to
    :func:`default_chunk_rows`. The store appears only when complete; on any error
    nothing is left behind.
    """
    chunk_rows = chunk_rows or default_chunk_rows(layout)
    threads = _check_threads(threads)
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise KmervaeError("no FASTA files given")
    for p in paths:
        open_fasta(p).close()  # fail before any work on a missing or unsupported file
    out = Path(out)
    sample = sample or (out.name[: -len(".zarr")] if out.name.endswith(".zarr") else out.stem)
    records = [0] * len(paths)
    empty = bases = 0
    with (
        _source_entries(paths, background=threads > 1) as sources,
        StoreWriter(
            out, layout, chunk_rows=chunk_rows, attrs={"sample": sample}, compressors=FAST_COMPRESSOR
        ) as writer,
        _StoreChunks(writer, layout, threads) as store_chunks,
        progress(f"count {sample}", unit="bp") as bar,
    ):
        for chunk in read_fasta_chunks(paths, chunk_bases=chunk_bases, chunk_records=chunk_rows):
            store_chunks.add(chunk)
            records[chunk.file_index] += len(chunk)
            empty += int(np.count_nonzero(chunk.lengths == 0))
            bases += chunk.bases
            bar.update(chunk.bases)
            bar.set_postfix_str(f"{sum(records):,} sequences", refresh=False)
        store_chunks.finish()
        writer.update_attrs(
            sources=[{**entry, "records": n} for entry, n in zip(sources(), records)],
            stage="count",
            records=sum(records),
            bases=bases,
            empty_records=empty,
        )
    if empty:
        log.warning("%s: %d record(s) without sequence kept with zero counts", out, empty)
    log.info("%s: %d records, %d bases, %s", out, sum(records), bases, layout.describe())
    return out


class _StoreChunks:
    """Count FASTA chunks straight into whole store chunks and write each when full.

    Records are counted into their final rows of a ``chunk_rows`` matrix (a FASTA chunk
    may straddle two store chunks), so nothing is copied or regrouped, and every write
    but the last starts and ends on a chunk boundary (the store's direct-encoding path).
    Matrices are reused (a fresh 45 MB matrix per chunk costs more in page faults than
    counting 1 kb contigs into it).

    With ``threads`` > 1, three stages overlap: the caller parses the next FASTA chunk,
    one worker counts (numba, ``threads`` threads), one worker compresses and writes the
    previous store chunk (blosc releases the GIL), so the wall time tends to the slowest
    stage rather than the sum. At most two FASTA chunks wait to be counted and three
    matrices exist. Rows keep input order and each is counted by one thread, so the
    output does not depend on ``threads``; blosc compresses with one thread (with more
    it orders its blocks by completion), so the store's files are the same bytes too.
    """

    def __init__(self, writer: StoreWriter, layout: Layout, threads: int):
        self.writer, self.layout, self.threads = writer, layout, threads
        self.rows = writer.chunk_rows
        self.background = threads > 1
        self.pool = _MatrixPool(self.rows, layout.width, limit=3 if self.background else 1)
        self.matrix: np.ndarray | None = None
        self.filled = 0
        self.ids: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.counting: list = []  # count futures of the current matrix
        self.queued: list = []  # count futures not yet waited for, oldest first
        self.writing = None  # the write future in flight
        if self.background:
            self.count_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-count")
            self.write_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-write")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.background:  # nothing may write into the store once the writer aborts it
            for worker in (self.count_worker, self.write_worker):
                worker.shutdown(wait=True, cancel_futures=exc_type is not None)

    def add(self, chunk: FastaChunk) -> None:
        row = 0
        while row < len(chunk):
            if self.matrix is None:
                self.matrix = self.pool.take()
            take = min(self.rows - self.filled, len(chunk) - row)
            rows = self.matrix[self.filled : self.filled + take]
            offsets = chunk.offsets[row : row + take + 1]
            if self.background:
                self.queued.append(self.count_worker.submit(self._count, chunk.seq, offsets, rows))
                self.counting.append(self.queued[-1])
                while len(self.queued) > 2:  # bound the parsed chunks waiting in memory
                    self.queued.pop(0).result()
            else:
                self._count(chunk.seq, offsets, rows)
            self.ids.append(chunk.ids[row : row + take])
            self.lengths.append(chunk.lengths[row : row + take])
            self.filled += take
            row += take
            if self.filled == self.rows:
                self._write()

    def finish(self) -> None:
        if self.filled:
            self._write()
        if self.background:
            for future in self.queued:
                future.result()
            if self.writing is not None:
                self.writing.result()

    def _count(self, seq, offsets, rows) -> None:
        count_buffer(seq, offsets, self.layout, self.threads, out=rows)

    def _write(self) -> None:
        block = (np.concatenate(self.ids), np.concatenate(self.lengths), self.matrix[: self.filled])
        matrix, counting = self.matrix, self.counting
        self.matrix, self.filled, self.ids, self.lengths, self.counting = None, 0, [], [], []
        if not self.background:
            self._append(block, matrix, ())
            return
        if self.writing is not None:
            self.writing.result()
        self.writing = self.write_worker.submit(self._append, block, matrix, counting)

    def _append(self, block, matrix, counting) -> None:
        for future in counting:
            future.result()
        ids, lengths, rows = block
        if len(rows) < len(matrix):  # the last chunk: compressed in place, no padded copy
            matrix[len(rows) :] = 0
            self.writer.append_padded(ids, lengths, matrix)
        else:
            self.writer.append(ids, lengths, rows)
        self.pool.give(matrix)


@contextlib.contextmanager
def _source_entries(paths: list[Path], background: bool):
    """Yield a function returning the store's ``sources`` entries (path, sha256). In the
    background the files are hashed while they are counted (hashlib releases the GIL)
    rather than after."""
    if not background:
        yield lambda: [source_entry(p) for p in paths]
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmervae-sha256") as hashing:
        futures = [hashing.submit(source_entry, p) for p in paths]
        try:
            yield lambda: [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

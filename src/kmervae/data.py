"""Batches of a dataset store for training: in memory when it fits, else streamed by chunks.

Both modes yield tensors of the *stored* values (counts or frequencies) of the model's
groups only — in memory float32, streamed in the stored type (counts as int32) — and
the model turns them into its input per batch (cast and CLR in torch), so the store
stays counts and the transform runs wherever the model runs (CPU or GPU).

Batch order is a function of ``(seed, epoch)`` only — never of earlier epochs, the
process or the wall clock — which is what makes resumed and multi-process runs
reproduce uninterrupted single-process ones.

* In memory (the split fits ``in_memory_budget_bytes``): one random permutation of the
  training rows per epoch.
* Streaming: the store's chunks in a random order per epoch, rows shuffled within a
  bounded buffer of ``shuffle_buffer_rows`` (plus one chunk); a pool of threads reads and
  decodes the next chunks straight from their files (on the CPU, into their place in the
  buffer: two buffers take turns) while the model trains. 16-bit datasets stay 16 bits in
  the buffer; batches are int32 counts either way. Peak memory is the buffers and a few
  chunks, independent of the dataset size. Datasets from
  ``kmervae merge`` are already globally shuffled, so the buffer only needs to vary the
  batches between epochs. On a CUDA device the buffer is on the device (chunks go over
  from pinned memory without blocking). Under data parallelism (``world`` > 1) each rank
  streams only its share of the chunks (:meth:`DatasetBatches.shard_sizes`).

Models with ``log_length`` among their inputs also read the contig length (one more float32 column after
the groups, ``lengths=True``), and may keep the training split in memory already
transformed, as float16 (``transform=``: half the memory of float32; safe because the
Jeffreys pseudocount keeps the CLR bounded). Validation always stays float32 and raw.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .errors import KmervaeError
from .progress import progress
from .io.store import KmerStore
from .vae.config import require_groups


def default_read_threads() -> int:
    """Decoding threads of the streaming loader: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores))


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one epoch (independent of every other epoch)."""
    return np.random.default_rng([int(seed), int(epoch), int(stream)])


class DatasetBatches:
    """Training and validation batches of one dataset store, for the model's k groups."""

    def __init__(
        self,
        path: str | os.PathLike,
        ks: tuple[int, ...],
        batch_size: int,
        seed: int,
        in_memory_budget_bytes: int,
        shuffle_buffer_rows: int,
        train_split: str = "train",
        validation_split: str = "validation",
        eval_batch_size: int = 8192,
        in_memory: bool | None = None,
        lengths: bool = False,
        transform=None,
        transformed_width: int | None = None,
        device: str | torch.device = "cpu",
        read_threads: int | None = None,
        rank: int = 0,
        world: int = 1,
    ):
        self.path = Path(path)
        self.store = KmerStore(path)
        self.ks = tuple(ks)
        require_groups(self.ks, self.store.layout, where=str(self.path), holder="the dataset")
        self.columns = None if self.ks == self.store.layout.ks else self.store.layout.columns_for(self.ks)
        self.lengths = bool(lengths)
        self.width = int(sum(self.store.layout.group(k).width for k in self.ks)) + int(self.lengths)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self.buffer_rows = max(int(shuffle_buffer_rows), self.batch_size)
        names = self.store.split_names()
        for split in (train_split, validation_split):
            if split not in names:
                raise KmervaeError(f"{self.path}: no split named {split!r} (the dataset has {names})")
        self.train_code = names.index(train_split)
        self.val_code = names.index(validation_split)
        #: the split of every row (one byte a row), and per chunk {split code: rows}
        self._split = self.store.split_codes()
        self._chunk_counts = [
            dict(zip(*(v.tolist() for v in np.unique(self._split[a:b], return_counts=True))))
            for a, b in self.store.chunks()
        ]
        self.n_train = int((self._split == self.train_code).sum())
        self.n_val = int((self._split == self.val_code).sum())
        self.device = torch.device(device)
        self.read_threads = int(read_threads or default_read_threads())
        for split, n in ((train_split, self.n_train), (validation_split, self.n_val)):
            if n == 0:
                raise KmervaeError(f"{self.path}: the {split} split is empty (0 of {self.store.n} rows)")
        if self.n_train < 2:
            raise KmervaeError(f"{self.path}: the {train_split} split has only {self.n_train} row")
        self.row_bytes = self.width * 4
        needed = (self.n_train + self.n_val) * self.row_bytes
        if transform is not None:  # float16 transformed training rows
            needed = self.n_train * int(transformed_width) * 2 + self.n_val * self.row_bytes
        self.in_memory = needed <= in_memory_budget_bytes if in_memory is None else bool(in_memory)
        #: training batches are model inputs (float16) rather than stored values
        self.train_transformed = self.in_memory and transform is not None
        self._transform, self._transformed_width = transform, transformed_width
        self._train = self._val = self._buffer = self._buffers = None
        #: decoding arrays kept from call to call, by dtype
        self._spare: dict[str, list[np.ndarray]] = {}
        if self.columns is not None:  # a store column's position among the model's columns (or -1)
            self._column_pos = np.full(self.store.layout.width, -1, dtype=np.int64)
            self._column_pos[self.columns] = np.arange(len(self.columns))
        #: seconds the last epoch's training loop waited for its batches
        self.wait_seconds = 0.0
        if self.in_memory:
            self._train, self._val = self._load()
        self.rank, self.world = int(rank), int(world)
        #: streaming under data parallelism: each rank reads its own share of the chunks and
        #: yields its own part of every global batch (see :meth:`shard_sizes`)
        self.sharded = not self.in_memory and self.world > 1
        self._step_rows = self._share(self.batch_size, self.rank) if self.sharded else self.batch_size

    # -- reading -------------------------------------------------------------------

    def _select(self, c: int, rows: np.ndarray, wide=None) -> tuple[np.ndarray, tuple | None]:
        """The model's columns of chunk ``c``'s rows (then the length when read), and the
        complete counts above 16 bits of 16-bit ``rows`` as (rows, columns, counts), or None.

        ``wide``: the chunk's :meth:`KmerStore.high_counts`. Rows read with the length are
        float32 copies, completed here (their ``wide`` is None)."""
        if wide is not None:
            r, col, high = wide
            wide = (r, col, rows[r, col] + high)
        if self.columns is not None:
            rows = rows[:, self.columns]
            if wide is not None:
                pos = self._column_pos[wide[1]]
                keep = pos >= 0
                wide = (wide[0][keep], pos[keep], wide[2][keep]) if keep.any() else None
        if self.lengths:  # the length as one more float32 column
            lo = c * self.store.chunk_rows
            length = self.store.lengths(lo, lo + len(rows)).astype(np.float32)
            rows = np.concatenate([rows.astype(np.float32, copy=False), length[:, None]], axis=1)
            if wide is not None:
                rows[wide[0], wide[1]] = wide[2]
                wide = None
        return rows, wide

    def _chunk_arrays(self, count: int, dtype: np.dtype) -> list[np.ndarray]:
        """``count`` chunk-sized arrays of ``dtype`` to decode into (pinned for a CUDA device)."""
        shape = (self.store.chunk_rows, self.store.layout.width)
        if self.device.type != "cuda":
            return [np.empty(shape, dtype=dtype) for _ in range(count)]
        same = torch.int32 if dtype.itemsize == 4 else torch.int16 if dtype.itemsize == 2 else torch.uint8
        return [torch.empty(shape, dtype=same, pin_memory=True).numpy().view(dtype) for _ in range(count)]

    def _chunks_in(self, order, stored: bool = False) -> Iterator[tuple[int, np.ndarray, tuple | None]]:
        """(chunk, rows of the model's columns, wide counts) for the chunks in ``order``,
        decoded ahead by ``read_threads`` threads. Rows are valid until the next item is
        asked for (their array is then reused; on CUDA only after the copies queued from it
        have run).

        Rows hold complete counts (uint32) and wide counts are None, unless ``stored``: then
        16-bit counts stay as stored (half the bytes to copy and gather) and the counts above
        65535 come as (rows, columns, complete counts) (see :meth:`_select`)."""
        order = [int(c) for c in order]
        depth = self.read_threads + 1
        dtype = self.store.matrix_array.dtype if stored else self.store.matrix_dtype
        # the arrays are kept from call to call (fresh ones cost their page faults again)
        arrays = self._spare.pop(dtype.str, None) or self._chunk_arrays(depth + 1, dtype)
        free: queue.Queue = queue.Queue()
        for array in arrays:
            free.put((array, None))

        def work(c: int):
            array, event = free.get()
            if event is not None:
                event.synchronize()
            n = self.store.read_chunk_into(c, array)
            lo = c * self.store.chunk_rows
            wide = self.store.high_counts(lo, lo + n) if stored else None
            return array, *self._select(c, array[:n], wide)

        with ThreadPoolExecutor(self.read_threads, thread_name_prefix="kmervae-read") as pool:
            ahead = _read_ahead(pool, work, order, depth)
            try:
                for c, (array, rows, wide) in ahead:
                    yield c, rows, wide
                    event = None
                    if self.device.type == "cuda":
                        event = torch.cuda.Event()
                        event.record()
                    free.put((array, event))
            finally:
                ahead.close()
        self._spare[dtype.str] = arrays

    def _chunk_range(self, c: int) -> tuple[int, int]:
        lo = c * self.store.chunk_rows
        return lo, min(lo + self.store.chunk_rows, self.store.n)

    def _chunks_with(self, code: int) -> list[int]:
        """The chunks (in store order) holding rows of split ``code``."""
        return [c for c, counts in enumerate(self._chunk_counts) if counts.get(code, 0)]

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train_transformed:
            train = np.empty((self.n_train, self._transformed_width), dtype=np.float16)
        else:
            train = np.empty((self.n_train, self.width), dtype=np.float32)
        val = np.empty((self.n_val, self.width), dtype=np.float32)
        t = v = 0
        with progress(f"loading {self.path.name}", total=self.store.n, unit="rows") as bar:
            for c, rows, _ in self._chunks_in(range(len(self._chunk_counts))):
                split = self._split[slice(*self._chunk_range(c))]
                is_train, is_val = split == self.train_code, split == self.val_code
                nt, nv = int(is_train.sum()), int(is_val.sum())
                if self.train_transformed:
                    with torch.no_grad():
                        block = torch.from_numpy(rows[is_train].astype(np.float32, copy=False))
                        train[t : t + nt] = self._transform(block).half().numpy()
                else:
                    train[t : t + nt] = rows[is_train]
                val[v : v + nv] = rows[is_val]
                t, v = t + nt, v + nv
                bar.update(len(split))
        return torch.from_numpy(train), torch.from_numpy(val)

    # -- batches -------------------------------------------------------------------

    def train_batches(self, epoch: int, min_rows: int = 2) -> Iterator[torch.Tensor]:
        """Global training batches of epoch ``epoch`` (every row once; the last may be short).

        A final batch under ``min_rows`` is dropped (batch normalisation needs two rows,
        and every data-parallel rank at least one).
        """
        self.wait_seconds = 0.0
        if self.sharded:
            yield from self._timed(itertools.islice(self._streamed_batches(epoch), len(self.shard_sizes(epoch))))
            return
        batches = self._memory_batches(epoch) if self.in_memory else self._streamed_batches(epoch)
        for batch in self._timed(batches):
            if len(batch) >= min_rows:
                yield batch

    def _timed(self, batches) -> Iterator[torch.Tensor]:
        """``batches``, adding the time spent waiting for each to :attr:`wait_seconds` (the
        loader's stall as the training loop sees it)."""
        batches = iter(batches)
        while True:
            began = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.wait_seconds += time.perf_counter() - began
            yield batch

    def _share(self, rows: int, rank: int) -> int:
        return (rows * (rank + 1)) // self.world - (rows * rank) // self.world

    def _chunk_order(self, epoch: int) -> list[int]:
        """The chunks holding training rows in epoch ``epoch``'s order (this rank's share when sharded)."""
        order = epoch_rng(self.seed, epoch, stream=1).permutation(len(self._chunk_counts))
        order = [int(c) for c in order if self._chunk_counts[c].get(self.train_code, 0)]
        return order[self.rank :: self.world] if self.sharded else order

    def shard_sizes(self, epoch: int) -> np.ndarray:
        """Sharded streaming: rows of every rank's part of each global batch of ``epoch``
        (steps x ranks). Rank r reads chunks r, r + world, ... of the epoch's chunk order and
        yields parts of its share of the batch size, the last one short; all ranks take as
        many steps as the rank with the fewest (parts of at least two rows), so a few rows of
        the others wait for a later epoch."""
        order = epoch_rng(self.seed, epoch, stream=1).permutation(len(self._chunk_counts))
        order = [int(c) for c in order if self._chunk_counts[c].get(self.train_code, 0)]
        rows = [sum(self._chunk_counts[c][self.train_code] for c in order[r :: self.world]) for r in range(self.world)]
        shares = [self._share(self.batch_size, r) for r in range(self.world)]
        parts = []
        for r in range(self.world):
            sizes = [shares[r]] * (rows[r] // shares[r]) + ([rows[r] % shares[r]] if rows[r] % shares[r] else [])
            parts.append([n for n in sizes if n >= 2])
        steps = min(len(p) for p in parts)
        return np.array([[p[s] for p in parts] for s in range(steps)], dtype=np.int64).reshape(steps, self.world)

    def _memory_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        perm = torch.from_numpy(epoch_rng(self.seed, epoch).permutation(self.n_train))
        if self.device.type == "cuda":
            yield from self._memory_batches_to_device(perm)
            return
        for start in range(0, self.n_train, self.batch_size):
            yield self._train.index_select(0, perm[start : start + self.batch_size])

    def _memory_batches_to_device(self, perm: torch.Tensor, ring: int = 3) -> Iterator[torch.Tensor]:
        """The same batches gathered into a ring of pinned host buffers and sent to the CUDA
        device without blocking (a buffer is reused once its copy has run)."""
        shape = (self.batch_size, self._train.shape[1])
        slots = [[torch.empty(shape, dtype=self._train.dtype, pin_memory=True), None] for _ in range(ring)]
        for i, start in enumerate(range(0, self.n_train, self.batch_size)):
            slot = slots[i % ring]
            if slot[1] is not None:
                slot[1].synchronize()
            index = perm[start : start + self.batch_size]
            host = slot[0][: len(index)]
            torch.index_select(self._train, 0, index, out=host)
            batch = host.to(self.device, non_blocking=True)
            slot[1] = torch.cuda.Event()
            slot[1].record()
            yield batch

    def _streamed_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        rng = epoch_rng(self.seed, epoch, stream=1 + self.rank if self.rank else 0)
        order = self._chunk_order(epoch)
        if self.device.type == "cuda":
            yield from self._streamed_on_device(rng, order)
            return
        if self.columns is None and not self.lengths:  # the chunks as stored are the rows
            yield from self._streamed_in_place(rng, order)
            return
        # The buffer holds whole chunks after a carry area; ``where`` lists the buffer rows of
        # the training rows held, in the order they came (the rows a plain buffer would hold).
        # Copying whole chunks runs at memory speed, copying masked rows at a third of it.
        # 16-bit counts stay 16 bits in the buffer; ``wide`` completes the counts above.
        carry = self._step_rows
        buffer = wide = None
        where = np.empty(self.buffer_rows + self.store.chunk_rows, dtype=np.int64)
        held, top = 0, carry
        for c, rows, chunk_wide in self._chunks_in(order, stored=True):
            if buffer is None:
                buffer = self._host_buffer(rows.dtype, carry)
                wide = _WideRows(len(buffer))
            mask = self._split[slice(*self._chunk_range(c))] == self.train_code
            n = int(mask.sum())
            if 4 * n >= 3 * len(rows):  # mostly training rows: copy the chunk whole
                buffer[top : top + len(rows)] = rows
                where[held : held + n] = top + np.flatnonzero(mask)
                wide.add(top, chunk_wide)
                top += len(rows)
            else:
                buffer[top : top + n] = rows[mask]
                where[held : held + n] = np.arange(top, top + n)
                wide.add(top, chunk_wide, mask)
                top += n
            held += n
            if held >= self.buffer_rows:
                held = yield from self._drain(buffer, wide, where, held, rng, final=False)
                top = carry
        if buffer is not None:
            yield from self._drain(buffer, wide, where, held, rng, final=True)

    def _host_buffers(self, dtype: np.dtype, carry: int) -> list[np.ndarray]:
        """The two buffers of :meth:`_streamed_in_place`, kept from epoch to epoch, each
        with room for a whole chunk decoded at its last row."""
        rows = carry + -(-4 * (self.buffer_rows + self.store.chunk_rows) // 3) + self.store.chunk_rows
        if self._buffers is None or self._buffers[0].dtype != dtype:
            self._buffers = [np.empty((rows, self.width), dtype=dtype) for _ in range(2)]
        return self._buffers

    def _host_buffer(self, dtype: np.dtype, carry: int) -> np.ndarray:
        """The streaming buffer, kept from epoch to epoch (a fresh one costs its page faults
        again): the carry area, then up to 4/3 of the buffer rows (whole chunks are at least
        3/4 training rows)."""
        rows = carry + -(-4 * (self.buffer_rows + self.store.chunk_rows) // 3)
        if self._buffer is None or self._buffer.dtype != dtype:
            self._buffer = np.empty((rows, self.width), dtype=dtype)
        return self._buffer

    def _drain(self, buffer: np.ndarray, wide, where: np.ndarray, held: int, rng, final: bool, into=None):
        """Yield shuffled full batches of the held rows; move the rest to the carry area (of
        the buffer ``into``: (buffer, wide rows), else of this one)."""
        perm = rng.permutation(held)
        step = self._step_rows
        full = held if final else held - held % step
        for start in range(0, full, step):
            yield torch.from_numpy(wide.batch(buffer, where[perm[start : start + step]]))
        rest = where[perm[full:]]
        target, target_wide = into or (buffer, wide)
        target[: len(rest)] = buffer[rest]
        where[: len(rest)] = np.arange(len(rest))
        wide.moved(rest, target_wide)
        return len(rest)

    def _fill_plan(self, order: list[int]) -> list[tuple[int, int, int, bool]]:
        """Where each chunk of ``order`` goes, known ahead from the splits alone:
        (chunk, fill of the buffer it belongs to, its first buffer row, whole). Chunks of
        mostly training rows go whole after the carry area, others only their training
        rows; a fill ends (and is drained) once it holds the shuffle buffer's rows."""
        plan, held, top, fill = [], 0, self._step_rows, 0
        for c in order:
            lo, hi = self._chunk_range(c)
            n = self._chunk_counts[c].get(self.train_code, 0)
            whole = 4 * n >= 3 * (hi - lo)
            plan.append((c, fill, top, whole))
            top += (hi - lo) if whole else n
            held += n
            if held >= self.buffer_rows:
                held, top, fill = held % self._step_rows, self._step_rows, fill + 1
        return plan

    def _streamed_in_place(self, rng: np.random.Generator, order: list[int]) -> Iterator[torch.Tensor]:
        """The streamed batches of :meth:`_streamed_batches` (the same rows in the same order)
        with whole chunks decoded by the reading threads straight into their place in the
        buffer: no copy on the main thread. Two buffers take turns (one filled while the
        other is drained); a fill's chunks wait until their buffer was drained."""
        plan = self._fill_plan(order)
        if not plan:
            return
        buffers = self._host_buffers(self.store.matrix_array.dtype, self._step_rows)
        wides = [_WideRows(len(b)) for b in buffers]
        gates = [threading.Event() for _ in range(plan[-1][1] + 3)]
        gates[0].set(), gates[1].set()
        where = np.empty(self.buffer_rows + self.store.chunk_rows, dtype=np.int64)
        held = current = 0  # the rows held, in the buffer of fill ``current``
        try:
            for (c, fill, top, whole), rows, chunk_wide in self._placed_chunks(plan, buffers, gates):
                buffer, wide = buffers[fill % 2], wides[fill % 2]
                mask = self._split[slice(*self._chunk_range(c))] == self.train_code
                n = int(mask.sum())
                if whole:
                    if rows is not None:  # a short chunk, decoded apart
                        buffer[top : top + len(rows)] = rows
                    where[held : held + n] = top + np.flatnonzero(mask)
                    wide.add(top, chunk_wide)
                else:
                    buffer[top : top + n] = rows[mask]
                    where[held : held + n] = np.arange(top, top + n)
                    wide.add(top, chunk_wide, mask)
                held += n
                if held >= self.buffer_rows:
                    into = (buffers[(fill + 1) % 2], wides[(fill + 1) % 2])
                    held = yield from self._drain(buffer, wide, where, held, rng, final=False, into=into)
                    gates[fill + 2].set()  # this buffer is free for fill + 2
                    current = fill + 1
            yield from self._drain(buffers[current % 2], wides[current % 2], where, held, rng, final=True)
        finally:
            for gate in gates:  # threads still waiting to decode may finish (into a drained buffer)
                gate.set()

    def _placed_chunks(self, plan, buffers, gates) -> Iterator[tuple[tuple, np.ndarray | None, tuple | None]]:
        """(plan entry, rows or None, wide counts) in plan order, decoded ahead by the reading
        threads: whole full-size chunks straight into their buffer (rows None), once their
        fill's gate is open; others into spare arrays (rows valid until the next item)."""
        free: queue.Queue = queue.Queue()
        depth = self.read_threads + 1
        arrays = self._spare.pop("placed", None) or self._chunk_arrays(depth + 1, buffers[0].dtype)
        for array in arrays:
            free.put(array)
        size = self.store.chunk_rows

        def work(entry):
            c, fill, top, whole = entry
            lo, hi = self._chunk_range(c)
            direct = whole and hi - lo == size
            if direct:
                gates[fill].wait()
            array = buffers[fill % 2][top : top + size] if direct else free.get()
            n = self.store.read_chunk_into(c, array)
            rows, wide = self._select(c, array[:n], self.store.high_counts(lo, hi))
            return (None, None, wide) if direct else (array, rows, wide)

        with ThreadPoolExecutor(self.read_threads, thread_name_prefix="kmervae-read") as pool:
            ahead = _read_ahead(pool, work, plan, depth)
            try:
                for entry, (array, rows, wide) in ahead:
                    yield entry, rows, wide
                    if array is not None:
                        free.put(array)
            finally:
                ahead.close()  # cancels the reads not started, before the gates open
                for gate in gates:
                    gate.set()
        self._spare["placed"] = arrays

    def _streamed_on_device(self, rng: np.random.Generator, order: list[int]) -> Iterator[torch.Tensor]:
        """Streaming into a buffer on the CUDA device: whole chunks go over from pinned memory
        without blocking, training rows are picked, shuffled and batched on the device."""
        buffer = staging = None
        held = 0
        for c, rows, _ in self._chunks_in(order):
            if buffer is None:  # the dtype of the rows read: stored counts stay integers
                kind = _torch_dtype(rows.dtype)
                cap = self.buffer_rows + self.store.chunk_rows
                buffer = torch.empty((cap, self.width), dtype=kind, device=self.device)
                staging = torch.empty((self.store.chunk_rows, self.width), dtype=kind, device=self.device)
            mask = self._split[slice(*self._chunk_range(c))] == self.train_code
            n = int(mask.sum())
            _stage_on_device(buffer[held : held + n], staging, rows, mask, n)
            held += n
            if held >= self.buffer_rows:
                held = yield from self._drain_on_device(buffer, held, rng, final=False)
        if buffer is not None:
            yield from self._drain_on_device(buffer, held, rng, final=True)

    def _drain_on_device(self, buffer: torch.Tensor, held: int, rng: np.random.Generator, final: bool):
        perm = rng.permutation(held)
        step = self._step_rows
        full = held if final else held - held % step
        index = torch.from_numpy(perm).pin_memory().to(buffer.device, non_blocking=True)
        for start in range(0, full, step):
            yield buffer.index_select(0, index[start : start + step])
        buffer[: held - full] = buffer[index[full:]]
        return held - full

    def train_subset_batches(self, rows: int) -> Iterator[torch.Tensor]:
        """The first ``rows`` training rows in store order (a fixed subset), in eval batches.

        Batches are model inputs when :attr:`train_transformed`, else stored values.
        """
        size = self.eval_batch_size
        rows = min(int(rows), self.n_train)
        if self.in_memory:
            for start in range(0, rows, size):
                yield self._train[start : min(start + size, rows)]
            return
        taken = 0
        for c, chunk, _ in self._chunks_in(self._chunks_with(self.train_code)):
            split = self._split[slice(*self._chunk_range(c))]
            keep = chunk[split == self.train_code][: rows - taken].astype(np.float32)
            for start in range(0, len(keep), size):
                yield torch.from_numpy(keep[start : start + size])
            taken += len(keep)
            if taken >= rows:
                return

    def validation_batches(self) -> Iterator[torch.Tensor]:
        """The whole validation split in store order, in batches of ``eval_batch_size``.

        Streaming reads only the chunks that hold validation rows (a dataset from
        ``kmervae merge`` keeps them together in each shuffle bucket).
        """
        size = self.eval_batch_size
        if self.in_memory:
            for start in range(0, self.n_val, size):
                yield self._val[start : start + size]
            return
        pending: list[np.ndarray] = []
        held = 0
        for c, rows, _ in self._chunks_in(self._chunks_with(self.val_code)):
            split = self._split[slice(*self._chunk_range(c))]
            keep = rows[split == self.val_code].astype(np.float32)
            pending.append(keep)
            held += len(keep)
            while held >= size:
                block = np.concatenate(pending)
                yield torch.from_numpy(block[:size])
                pending, held = [block[size:]], len(block) - size
        if held:
            yield torch.from_numpy(np.concatenate(pending))

    def describe(self) -> str:
        mode = "in memory" if self.in_memory else f"streaming (shuffle buffer {self.buffer_rows:,} rows"
        if not self.in_memory:
            mode += f", {self.read_threads} decoding thread(s)"
            mode += f", rank {self.rank} of {self.world} reads its share of the chunks)" if self.sharded else ")"
        if self.train_transformed:
            mode += ", training rows transformed as float16"
        return (
            f"{self.path}: {self.n_train:,} training and {self.n_val:,} validation rows, "
            f"{self.width} columns ({'+'.join(f'{k}-mers' for k in self.ks)}), {mode}"
        )


class _WideRows:
    """The counts above 16 bits of the rows of a streaming buffer of 16-bit counts, by buffer
    row (few: long contigs' 1- and 2-mers), put into the batches that hold those rows."""

    def __init__(self, size: int):
        self.flag = np.zeros(size, dtype=bool)
        self.at: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # buffer row -> (columns, counts)

    def add(self, top: int, wide: tuple | None, mask: np.ndarray | None = None) -> None:
        """A chunk's wide counts, its rows copied from buffer row ``top`` on (whole, or only
        the rows of ``mask``, packed)."""
        if wide is None:
            return
        rows, cols, counts = wide
        if mask is not None:
            keep = mask[rows]
            rows, cols, counts = (np.cumsum(mask) - 1)[rows[keep]], cols[keep], counts[keep]
        if len(rows) == 0:
            return
        order = np.argsort(rows, kind="stable")
        rows, cols, counts = rows[order] + top, cols[order], counts[order]
        edges = np.flatnonzero(np.diff(rows)) + 1
        for r, c, v in zip(rows[np.r_[0, edges]], np.split(cols, edges), np.split(counts, edges)):
            self.at[int(r)] = (c, v)
        self.flag[rows] = True

    def batch(self, buffer: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Buffer ``rows`` as a batch of int32 counts, the wide ones completed. (Every batch
        is int32 whatever the stored width: with 1 % of the rows wide, nearly every batch
        of a real dataset holds one, and batches of one dtype concatenate.)"""
        batch = np.take(buffer, rows, axis=0)
        batch = batch.astype(np.int32) if batch.dtype == np.uint16 else _torchable(batch)
        hit = np.flatnonzero(self.flag[rows]) if self.at else ()
        for p in hit:
            cols, counts = self.at[int(rows[p])]
            batch[p, cols] = counts
        return batch

    def moved(self, rest: np.ndarray, into: _WideRows) -> None:
        """Buffer rows ``rest`` moved to rows 0, 1, ... (of the buffer of ``into``, maybe
        this one); every other row of this buffer is free."""
        at = {i: self.at[int(b)] for i, b in enumerate(rest) if self.flag[b]} if self.at else {}
        for wide in (self, into):
            if wide.at:
                wide.flag[:] = False
                wide.at = {}
        into.flag[list(at)] = True
        into.at = at


def _read_ahead(pool: ThreadPoolExecutor, work, items, depth: int):
    """``(item, work(item))`` in the order of ``items``, with ``depth`` calls in flight on
    ``pool``; closing the generator cancels the calls not yet started."""
    following = iter(items)
    pending: collections.deque = collections.deque(
        (item, pool.submit(work, item)) for item in itertools.islice(following, depth)
    )
    try:
        while pending:
            item, future = pending.popleft()
            result = future.result()
            if (nxt := next(following, None)) is not None:
                pending.append((nxt, pool.submit(work, nxt)))
            yield item, result
    finally:
        for _, future in pending:
            future.cancel()


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype holding rows of numpy ``dtype`` (unsigned counts as the signed type
    of their width: counts stay below 2**31)."""
    return torch.from_numpy(_torchable(np.empty(0, dtype=dtype))).dtype


def _torchable(array: np.ndarray) -> np.ndarray:
    """``array`` with unsigned counts viewed as the signed type torch computes with."""
    if array.dtype == np.uint32:
        return array.view(np.int32)
    if array.dtype == np.uint16:
        return array.astype(np.int32)
    return array


def _stage_on_device(target: torch.Tensor, staging: torch.Tensor, rows: np.ndarray, mask, n: int) -> None:
    """Copy the masked ``rows`` (pinned host memory) into ``target`` on the device without
    blocking the host: the whole chunk goes over, the rows are picked on the device."""
    source = torch.from_numpy(_torchable(rows))
    if n == len(rows):
        target.copy_(source, non_blocking=True)
        return
    staging = staging[: len(rows)]
    staging.copy_(source, non_blocking=True)
    index = torch.from_numpy(np.flatnonzero(mask)).pin_memory().to(staging.device, non_blocking=True)
    torch.index_select(staging, 0, index, out=target)

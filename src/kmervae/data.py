"""Batches of a dataset store for training: in memory when it fits, else streamed by chunks.

Both modes yield float32 tensors of the *stored* values (counts or frequencies) of the
model's groups only; the model turns them into its input per batch (CLR in torch), so
the store stays counts and the transform runs wherever the model runs (CPU or GPU).

Batch order is a function of ``(seed, epoch)`` only — never of earlier epochs, the
process or the wall clock — which is what makes resumed and multi-process runs
reproduce uninterrupted single-process ones.

* In memory (the split fits ``in_memory_budget_bytes``): one random permutation of the
  training rows per epoch.
* Streaming: the store's chunks in a random order per epoch, rows shuffled within a
  bounded buffer of ``shuffle_buffer_rows`` (plus one chunk); a background thread reads
  and decompresses the next chunk while the model trains. Peak memory is the buffer,
  independent of the dataset size. Datasets from ``kmervae merge`` are already globally
  shuffled, so the buffer only needs to vary the batches between epochs.

Models with ``log_length`` among their inputs also read the contig length (one more float32 column after
the groups, ``lengths=True``), and may keep the training split in memory already
transformed, as float16 (``transform=``: half the memory of float32; safe because the
Jeffreys pseudocount keeps the CLR bounded). Validation always stays float32 and raw.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import KmervaeError
from .progress import progress
from .store import KmerStore
from .vae.config import require_groups


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
        self.n_train = len(self.store.split_index(train_split))
        self.n_val = len(self.store.split_index(validation_split))
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
        self._train = self._val = None
        if self.in_memory:
            self._train, self._val = self._load()

    # -- reading -------------------------------------------------------------------

    def _read_chunk(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(split codes, stored rows of the model's groups) of rows [start, stop).

        Rows keep the stored dtype; callers cast while copying the rows they keep
        (one pass instead of two).
        """
        split = self.store.array("split")[start:stop]
        rows = self.store.rows(start, stop)
        if self.columns is not None:
            rows = rows[:, self.columns]
        if self.lengths:  # the length as one more float32 column
            length = self.store.lengths(start, stop).astype(np.float32)
            rows = np.concatenate([rows.astype(np.float32, copy=False), length[:, None]], axis=1)
        return split, rows

    def _chunks_in(self, order) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Read chunks in ``order`` with one chunk read ahead in a background thread."""
        ranges = list(self.store.chunks())
        q: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def reader():
            try:
                for c in order:
                    if stop.is_set():
                        return
                    q.put(self._read_chunk(*ranges[c]))
                q.put(None)
            except BaseException as exc:  # surfaced in the consumer
                q.put(exc)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            while (item := q.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a reader waiting on a full queue
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train_transformed:
            train = np.empty((self.n_train, self._transformed_width), dtype=np.float16)
        else:
            train = np.empty((self.n_train, self.width), dtype=np.float32)
        val = np.empty((self.n_val, self.width), dtype=np.float32)
        t = v = 0
        with progress(f"loading {self.path.name}", total=self.store.n, unit="rows") as bar:
            for split, rows in self._chunks_in(range(len(list(self.store.chunks())))):
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
        batches = self._memory_batches(epoch) if self.in_memory else self._streamed_batches(epoch)
        for batch in batches:
            if len(batch) >= min_rows:
                yield batch

    def _memory_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        perm = torch.from_numpy(epoch_rng(self.seed, epoch).permutation(self.n_train))
        for start in range(0, self.n_train, self.batch_size):
            yield self._train.index_select(0, perm[start : start + self.batch_size])

    def _streamed_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        rng = epoch_rng(self.seed, epoch)
        n_chunks = len(list(self.store.chunks()))
        order = epoch_rng(self.seed, epoch, stream=1).permutation(n_chunks)
        buffer = np.empty((self.buffer_rows + self.store.chunk_rows, self.width), dtype=np.float32)
        held = 0
        for split, rows in self._chunks_in(order):
            mask = split == self.train_code
            n = int(mask.sum())
            buffer[held : held + n] = rows if n == len(rows) else rows[mask]
            held += n
            if held >= self.buffer_rows:
                held = yield from self._drain(buffer, held, rng, final=False)
        yield from self._drain(buffer, held, rng, final=True)

    def _drain(self, buffer: np.ndarray, held: int, rng: np.random.Generator, final: bool):
        """Yield shuffled full batches from the buffer; move the rest to its front."""
        perm = rng.permutation(held)
        full = held if final else held - held % self.batch_size
        for start in range(0, full, self.batch_size):
            yield torch.from_numpy(buffer[perm[start : start + self.batch_size]])
        rest = perm[full:]
        buffer[: len(rest)] = buffer[rest]
        return len(rest)

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
        for split, chunk in self._chunks_in(range(len(list(self.store.chunks())))):
            keep = chunk[split == self.train_code][: rows - taken].astype(np.float32)
            for start in range(0, len(keep), size):
                yield torch.from_numpy(keep[start : start + size])
            taken += len(keep)
            if taken >= rows:
                return

    def validation_batches(self) -> Iterator[torch.Tensor]:
        """The whole validation split in store order, in batches of ``eval_batch_size``."""
        size = self.eval_batch_size
        if self.in_memory:
            for start in range(0, self.n_val, size):
                yield self._val[start : start + size]
            return
        pending: list[np.ndarray] = []
        held = 0
        for split, rows in self._chunks_in(range(len(list(self.store.chunks())))):
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
        mode = "in memory" if self.in_memory else f"streaming (shuffle buffer {self.buffer_rows:,} rows)"
        if self.train_transformed:
            mode += ", training rows transformed as float16"
        return (
            f"{self.path}: {self.n_train:,} training and {self.n_val:,} validation rows, "
            f"{self.width} columns ({'+'.join(f'{k}-mers' for k in self.ks)}), {mode}"
        )

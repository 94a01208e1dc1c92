"""Datasets: several stores merged into one, globally shuffled, with a train/validation/test split.

The shuffle is out of core (the original implementation's in-memory ``--shuffle`` needed twice the dataset
in RAM; an unshuffled concatenation once put a whole source into validation):

1. Every row gets a destination *bucket*. Bucket sizes are fixed in advance (near-equal,
   each small enough that one bucket fits the memory budget) and rows are dealt to them
   by sequential sampling, so the partition into buckets is uniformly random.
2. Inputs are streamed once; rows are spilled to one temporary file per bucket (the
   matrix compressed with blosc/lz4, so counts take about a tenth of their raw size).
3. Each bucket is read back into a preallocated block at uniformly permuted positions
   and appended to the output. Uniform partition + uniform order inside each bucket =
   a uniform permutation of all rows, with memory bounded by the bucket size.

Split labels are dealt the same way (exact sizes: fractions rounded), from their own
random stream, so the split depends on the seed and the inputs only. Rows of held-out
samples (``test_samples``) all go to the test split. Duplicate (sample, id) pairs are
found out of core too: 64-bit hashes are spilled to hash partitions and each partition
is checked in memory.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numcodecs import Blosc

from .io.atomic import prepare_output, temporary_sibling, zarr_group
from .errors import KmervaeError
from .options import Option, defaults
from .progress import progress
from .select import AlignedAppender, read_optional
from .io.store import DATASET_COMPRESSOR, DATASET_COUNTS_WIDTH, FORMAT, SPLITS, KmerStore, StoreWriter

DEFAULT_FRACTIONS = (0.9, 0.1, 0.0)
#: bytes of row data (all buckets' spill buffers, or one bucket being shuffled) held at once
DEFAULT_MEMORY_BUDGET = 1 << 30
#: allowance per row for id, length, sample and split beside the matrix row
ROW_OVERHEAD_BYTES = 256
#: rows dealt per random draw; fixed so the output does not depend on chunk sizes
DEAL_BLOCK = 1 << 16
#: more buckets than this means the memory budget is far too small for the dataset
MAX_BUCKETS = 10_000
#: spilled matrix rows are compressed (counts shrink ~10x), so the spill costs little disk
SPILL_CODEC = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)
TRAIN, VALIDATION, TEST = (SPLITS.index(s) for s in ("train", "validation", "test"))


def plan_buckets(n_rows: int, row_bytes: int, memory_budget: int) -> np.ndarray:
    """Bucket sizes (rows) for a shuffle of ``n_rows``: near-equal, each using at most half the budget.

    Half, because reading a bucket back holds the bucket plus one spilled block of it.
    """
    max_rows = max(1, int(memory_budget) // (2 * int(row_bytes)))
    n_buckets = max(1, math.ceil(n_rows / max_rows))
    sizes = np.full(n_buckets, n_rows // n_buckets, dtype=np.int64)
    sizes[: n_rows % n_buckets] += 1
    return sizes


def split_sizes(n_rows: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Exact (train, validation, test) sizes: validation and test rounded, train the rest."""
    n_validation = int(math.floor(fractions[1] * n_rows + 0.5))
    n_test = min(int(math.floor(fractions[2] * n_rows + 0.5)), n_rows - n_validation)
    return n_rows - n_validation - n_test, n_validation, n_test


class ExactDealer:
    """Hand out labels with exact totals in a uniformly random order, a block at a time.

    The first m labels of a uniformly shuffled multiset have multivariate hypergeometric
    counts and, given those, a uniform order; drawing block after block keeps memory at
    one block whatever the totals.
    """

    def __init__(self, totals: Sequence[int], rng: np.random.Generator, block: int = DEAL_BLOCK):
        self.remaining = np.asarray(totals, dtype=np.int64).copy()
        self.rng = rng
        self.block = block
        self.buffer = np.empty(0, dtype=np.int32)

    def take(self, n: int) -> np.ndarray:
        while len(self.buffer) < n:
            m = int(min(self.block, self.remaining.sum()))
            if m == 0:
                raise ValueError("more labels requested than dealt")
            counts = self.rng.multivariate_hypergeometric(self.remaining, m)
            labels = np.repeat(np.arange(len(self.remaining), dtype=np.int32), counts)
            self.rng.shuffle(labels)
            self.remaining -= counts
            self.buffer = np.concatenate([self.buffer, labels])
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def default_sample_name(store: KmerStore) -> str:
    """The store's ``sample`` attribute, else its file name without ``.zarr`` and ``.min<T>``."""
    if store.attrs.get("sample"):
        return str(store.attrs["sample"])
    name = re.sub(r"\.zarr$", "", store.path.name.rstrip("/"))
    return re.sub(r"\.min\d+$", "", name)


def row_hashes(samples: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """64-bit fingerprints of (sample, id) pairs, to find duplicates without holding all IDs."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(f"{s}\0{i}".encode(), digest_size=8).digest(), "little")
            for s, i in zip(samples, ids)
        ),
        dtype=np.uint64,
        count=len(ids),
    )


class _Input:
    """One input store with its sample name(s) and its place in the global row numbering."""

    def __init__(self, store: KmerStore, sample: str | None, offset: int):
        self.store, self.sample, self.offset = store, sample, offset  # sample None: per-row array

    def samples(self, start: int, stop: int) -> np.ndarray:
        if self.sample is not None:
            return np.full(stop - start, self.sample, dtype=object)
        return read_optional(self.store, "sample", start, stop).astype(object)

    def sample_counts(self) -> Counter:
        if self.sample is not None:
            return Counter({self.sample: self.store.n})
        counts: Counter = Counter()
        for a, b in self.store.chunks(max(self.store.chunk_rows, 1 << 20)):
            names, n = np.unique(self.samples(a, b).astype(str), return_counts=True)
            counts.update(dict(zip(names.tolist(), n.tolist())))
        return counts

    def describe_row(self, row: int) -> tuple[str, str]:
        local = row - self.offset
        return self.samples(local, local + 1)[0], self.store.ids(local, local + 1)[0]


class _Spill:
    """Per-bucket spill files of rows, plus hash partitions for the duplicate check."""

    def __init__(self, directory: Path, n_buckets: int, flush_bytes: int):
        self.dir = directory
        self.n_buckets = n_buckets
        self.flush_bytes = flush_bytes
        self.rows: list[list[tuple]] = [[] for _ in range(n_buckets)]
        self.hashes: list[list[tuple]] = [[] for _ in range(n_buckets)]
        #: rows of each split per bucket: a bucket is written split by split
        self.split_rows = np.zeros((n_buckets, len(SPLITS)), dtype=np.int64)
        self.buffered_bytes = 0

    def bucket_file(self, b: int) -> Path:
        return self.dir / f"bucket{b:06d}.npy"

    def hash_file(self, b: int) -> Path:
        return self.dir / f"hashes{b:06d}.npy"

    def add(self, bucket, ids, lengths, sample_codes, split, matrix, hashes, rows) -> None:
        order = np.argsort(bucket, kind="stable")
        edges = np.searchsorted(bucket[order], np.arange(self.n_buckets + 1))
        for b in np.nonzero(np.diff(edges))[0]:
            sel = order[edges[b] : edges[b + 1]]
            self.rows[b].append((ids[sel], lengths[sel], sample_codes[sel], split[sel], matrix[sel]))
            self.split_rows[b] += np.bincount(split[sel], minlength=len(SPLITS))
        partition = (hashes % np.uint64(self.n_buckets)).astype(np.int64)
        for p in np.unique(partition):
            sel = partition == p
            self.hashes[p].append((hashes[sel], rows[sel]))
        self.buffered_bytes += matrix.nbytes + len(ids) * ROW_OVERHEAD_BYTES
        if self.buffered_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        for b in range(self.n_buckets):
            if self.rows[b]:
                with open(self.bucket_file(b), "ab") as fh:
                    for ids, lengths, codes, split, matrix in self.rows[b]:
                        packed = np.frombuffer(
                            SPILL_CODEC.encode(np.ascontiguousarray(matrix)), dtype=np.uint8
                        )
                        for array in (np.asarray(ids, dtype=str), lengths, codes, split, packed):
                            np.save(fh, array, allow_pickle=False)
                self.rows[b] = []
            if self.hashes[b]:
                with open(self.hash_file(b), "ab") as fh:
                    for hashes, rows in self.hashes[b]:
                        np.save(fh, hashes, allow_pickle=False)
                        np.save(fh, rows, allow_pickle=False)
                self.hashes[b] = []
        self.buffered_bytes = 0

    def blocks(self, path: Path, arrays_per_block: int):
        if not path.exists():
            return
        size = path.stat().st_size
        with open(path, "rb") as fh:
            while fh.tell() < size:
                yield [np.load(fh, allow_pickle=False) for _ in range(arrays_per_block)]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = [float(f) for f in fractions]
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3 or any(not 0 <= f <= 1 for f in values) or abs(sum(values) - 1) > 1e-6:
        raise KmervaeError(
            "split fractions must be 2 or 3 numbers in [0, 1] summing to 1 (train validation [test]), "
            f"got {list(fractions)}"
        )
    return tuple(values)  # type: ignore[return-value]


#: the settings of :func:`merge_stores` and their CLI flags (``memory_mb`` is its ``memory_budget`` in MiB)
OPTIONS = (
    Option("seed", 42, int, "seed of the shuffle and the split", workflow="seed"),
    Option(
        "fractions",
        DEFAULT_FRACTIONS,
        float,
        "train validation [test] fractions",
        nargs="+",
        metavar="F",
        workflow="datasets.{dataset}.fractions",
    ),
    Option(
        "samples",
        None,
        nargs="+",
        metavar="NAME",
        help="one sample name per input store",
        workflow="datasets.{dataset}.samples",
    ),
    Option(
        "test_samples",
        (),
        nargs="+",
        metavar="NAME",
        help="held-out samples: all their rows go to test",
        workflow="datasets.{dataset}.test_samples",
    ),
    Option("chunk_rows", None, int, "rows per chunk (default: the first input's)"),
    Option("memory_mb", DEFAULT_MEMORY_BUDGET >> 20, int, "row data held in memory at once, MiB"),
)
DEFAULTS = defaults(OPTIONS)


@dataclass(frozen=True)
class _SplitPlan:
    """The samples of the merged inputs (sorted, coded) and the exact sizes of the splits."""

    sample_names: list[str]
    sample_code: dict[str, int]
    held_out: np.ndarray  # by sample code: all rows go to test
    n_held_out: int
    sizes: tuple[int, int, int]  # train, validation, test (without the held-out rows)


def merge_stores(
    stores: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    seed: int = DEFAULTS["seed"],
    fractions: Sequence[float] = DEFAULTS["fractions"],
    samples: Sequence[str] | None = DEFAULTS["samples"],
    test_samples: Sequence[str] = DEFAULTS["test_samples"],
    chunk_rows: int | None = DEFAULTS["chunk_rows"],
    memory_budget: int = DEFAULTS["memory_mb"] << 20,
) -> Path:
    """Merge k-mer stores into one shuffled dataset store with ``sample`` and ``split`` arrays.

    ``samples`` names each input (default: its ``sample`` attribute, else its file name);
    inputs that are datasets keep their per-row samples unless named here. Rows of
    ``test_samples`` form the test split (held-out samples); the others are split by
    ``fractions`` (train, validation, test) with exact, rounded sizes. Output order and
    split are a function of the inputs, ``seed`` and ``memory_budget`` (bytes of row data
    held at once, which sets the number of shuffle buckets).
    """
    if not stores:
        raise KmervaeError("merge needs at least one input store")
    fractions = _check_fractions(fractions)
    opened = _open_inputs(stores, out, samples)
    inputs = _name_inputs(opened, samples)
    n_total = sum(item.store.n for item in inputs)
    plan = _plan_split(inputs, test_samples, fractions, n_total)
    first = opened[0]
    bucket_sizes = _plan_shuffle(first, n_total, memory_budget)
    split_rng, bucket_rng, shuffle_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    split_dealer = ExactDealer(list(plan.sizes), split_rng)
    bucket_dealer = ExactDealer(bucket_sizes, bucket_rng)
    step = int(chunk_rows or first.chunk_rows)

    prepare_output(out, zarr_group(FORMAT))  # refuse a foreign output before spilling, not after
    spill_dir = temporary_sibling(Path(out))
    spill_dir.mkdir(parents=True)
    try:
        # a spilled block stays under blosc's 2 GB buffer limit
        spill = _Spill(spill_dir, len(bucket_sizes), flush_bytes=max(1, min(memory_budget // 2, 1 << 30)))
        _spill_inputs(spill, inputs, step, plan, split_dealer, bucket_dealer, n_total)
        _check_duplicates(spill, inputs)
        shuffle = {"buckets": bucket_sizes, "memory_budget": memory_budget}
        attrs = _merged_attrs(opened, inputs, plan, seed, fractions, test_samples, shuffle)
        _write_shuffled(out, first, step, attrs, spill, bucket_sizes, plan.sample_names, shuffle_rng)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    return Path(out)


def _open_inputs(stores, out, samples) -> list[KmerStore]:
    """Open the input stores; refuse a wrong number of names, mixed layouts and an output among them."""
    opened = [KmerStore(s) for s in stores]
    if samples is not None and len(samples) != len(opened):
        raise KmervaeError(f"{len(samples)} sample names given for {len(opened)} input stores")
    first = opened[0]
    for store in opened[1:]:
        if store.layout != first.layout or store.matrix_name != first.matrix_name:
            raise KmervaeError(
                f"{store.path}: holds {store.matrix_name} of {store.layout.describe()} but {first.path} "
                f"holds {first.matrix_name} of {first.layout.describe()}; "
                "merged stores need one layout and matrix kind"
            )
    if Path(out).resolve() in {s.path.resolve() for s in opened}:
        raise KmervaeError(f"{out}: the output would overwrite one of its input stores")
    return opened


def _name_inputs(opened: list[KmerStore], samples) -> list[_Input]:
    """Each input with its sample name (None: a dataset keeping its per-row samples) and row offset."""
    inputs, offset = [], 0
    for i, store in enumerate(opened):
        if samples is not None:
            name = str(samples[i])
        elif store.has("sample") and not store.attrs.get("sample"):
            name = None
        else:
            name = default_sample_name(store)
        inputs.append(_Input(store, name, offset))
        offset += store.n
    return inputs


def _plan_split(inputs: list[_Input], test_samples, fractions, n_total: int) -> _SplitPlan:
    """Code the inputs' samples, check the held-out ones exist and size the splits of the others."""
    per_sample: Counter = Counter()
    for item in inputs:
        per_sample.update(item.sample_counts())
    unknown = sorted(set(test_samples) - set(per_sample))
    if unknown:
        raise KmervaeError(
            f"test sample(s) {', '.join(unknown)} are not among the inputs' samples {sorted(per_sample)}"
        )
    sample_names = sorted(per_sample)
    sample_code = {name: code for code, name in enumerate(sample_names)}
    held_out = np.zeros(len(sample_names), dtype=bool)
    held_out[[sample_code[s] for s in test_samples]] = True
    n_held_out = sum(per_sample[s] for s in set(test_samples))
    sizes = split_sizes(n_total - n_held_out, fractions)
    return _SplitPlan(sample_names, sample_code, held_out, n_held_out, sizes)


def _plan_shuffle(first: KmerStore, n_total: int, memory_budget: int) -> np.ndarray:
    """The shuffle's bucket sizes; refuse a memory budget that would need too many buckets."""
    row_bytes = first.layout.width * first.matrix_dtype.itemsize + ROW_OVERHEAD_BYTES
    bucket_sizes = plan_buckets(n_total, row_bytes, memory_budget)
    if len(bucket_sizes) > MAX_BUCKETS:
        need = math.ceil(2 * row_bytes * n_total / MAX_BUCKETS / 2**20)
        raise KmervaeError(
            f"a memory budget of {memory_budget / 2**20:.1f} MiB is too small for {n_total} rows; "
            f"allow at least {need} MiB"
        )
    return bucket_sizes


def _spill_inputs(spill, inputs, step: int, plan: _SplitPlan, split_dealer, bucket_dealer, n_total: int):
    """Stream every input once, dealing each row a split and a bucket, and spill it to its bucket."""
    with progress("merge: spill to buckets", total=n_total, unit="rows") as bar:
        for item in inputs:
            for start, stop in item.store.chunks(step):
                ids = item.store.ids(start, stop)
                names = item.samples(start, stop)
                codes = np.fromiter((plan.sample_code[s] for s in names), dtype=np.int32, count=len(names))
                split = np.full(len(ids), TEST, dtype=np.int8)
                pool = ~plan.held_out[codes]
                split[pool] = split_dealer.take(int(pool.sum()))
                spill.add(
                    bucket_dealer.take(len(ids)),
                    ids,
                    item.store.lengths(start, stop),
                    codes,
                    split,
                    item.store.rows(start, stop),
                    row_hashes(names, ids),
                    np.arange(item.offset + start, item.offset + stop, dtype=np.int64),
                )
                bar.update(stop - start)
    spill.flush()


def _merged_attrs(opened, inputs, plan: _SplitPlan, seed, fractions, test_samples, shuffle) -> dict:
    """The merged store's attributes: its inputs' sources, its samples and the merge's provenance."""
    n_train, n_validation, n_test = plan.sizes
    bucket_sizes = shuffle["buckets"]
    common_min = {(s.attrs.get("provenance") or {}).get("min_length") for s in opened}
    provenance = {
        "stage": "merge",
        "seed": int(seed),
        "fractions": list(fractions),
        "test_samples": sorted(set(test_samples)),
        "split_sizes": {"train": n_train, "validation": n_validation, "test": n_test + plan.n_held_out},
        "inputs": [
            {"path": str(item.store.path), "sample": item.sample, "n": item.store.n} for item in inputs
        ],
        "shuffle": {
            "method": "bucketed",
            "buckets": len(bucket_sizes),
            "max_bucket_rows": int(bucket_sizes.max(initial=0)),
            "memory_budget": int(shuffle["memory_budget"]),
        },
    }
    if len(common_min) == 1 and None not in common_min:
        provenance["min_length"] = common_min.pop()
    sources = []
    for store in opened:
        for entry in store.attrs.get("sources") or []:
            if entry not in sources:
                sources.append(entry)
    return {
        "sources": sources,
        "samples": plan.sample_names,
        "split_names": list(SPLITS),
        "provenance": provenance,
    }


def _write_shuffled(out, first: KmerStore, step: int, attrs: dict, spill, bucket_sizes, sample_names, rng):
    """Read the buckets back one at a time, each in a uniformly random order, and append them to ``out``."""
    names_array = np.asarray(sample_names, dtype=object)
    n_total = int(bucket_sizes.sum())
    with StoreWriter(
        out,
        first.layout,
        first.matrix_name,
        step,
        attrs=attrs,
        extra=("sample", "split"),
        compressors=DATASET_COMPRESSOR,  # read every epoch: the fastest to decode
        counts_width=DATASET_COUNTS_WIDTH if first.matrix_name == "counts" else 32,
    ) as writer:
        appender = AlignedAppender(writer)
        with progress("merge: shuffle buckets", total=n_total, unit="rows") as bar:
            for b, size in enumerate(bucket_sizes):
                ids, lengths, codes, split, matrix = _read_bucket_shuffled(spill, b, int(size), first, rng)
                for a in range(0, len(ids), step):
                    sl = slice(a, a + step)
                    appender.append(
                        ids[sl], lengths[sl], matrix[sl], sample=names_array[codes[sl]], split=split[sl]
                    )
                bar.update(int(size))
        appender.flush()


def _read_bucket_shuffled(spill: _Spill, b: int, size: int, like: KmerStore, rng: np.random.Generator):
    """Read bucket ``b`` into arrays of its (known) size, split after split (training rows,
    then validation, then test), each spilled row at a uniformly random position among its
    split's. Grouping the splits keeps a dataset's validation rows in few chunks, so training
    streams validation without reading the training rows again."""
    edges = np.concatenate([[0], np.cumsum(spill.split_rows[b])])
    slots = [edges[s] + rng.permutation(edges[s + 1] - edges[s]) for s in range(len(SPLITS))]
    taken = np.zeros(len(SPLITS), dtype=np.int64)
    ids = np.empty(size, dtype=object)
    lengths = np.empty(size, dtype=np.int64)
    codes = np.empty(size, dtype=np.int32)
    split = np.empty(size, dtype=np.int8)
    matrix = np.empty((size, like.layout.width), dtype=like.matrix_dtype)
    filled = 0
    for block_ids, block_lengths, block_codes, block_split, packed in spill.blocks(spill.bucket_file(b), 5):
        block_matrix = np.frombuffer(SPILL_CODEC.decode(packed), dtype=matrix.dtype).reshape(
            len(block_ids), -1
        )
        dest = np.empty(len(block_ids), dtype=np.int64)
        for s in np.unique(block_split):
            sel = block_split == s
            dest[sel] = slots[s][taken[s] : taken[s] + int(sel.sum())]
            taken[s] += int(sel.sum())
        ids[dest], lengths[dest], codes[dest] = block_ids, block_lengths, block_codes
        split[dest], matrix[dest] = block_split, block_matrix
        filled += len(block_ids)
    if filled != size:  # the dealer fills every bucket exactly; anything else is a bug
        raise RuntimeError(f"bucket {b} holds {filled} rows, planned {size}")
    return ids, lengths, codes, split, matrix


def _check_duplicates(spill: _Spill, inputs: list[_Input]) -> None:
    """Raise on the earliest row whose (sample, id) pair was seen before.

    Equal hashes are confirmed by reading both IDs (a 64-bit collision is not a duplicate).
    """
    offsets = np.array([item.offset for item in inputs])

    def owner(row: int) -> _Input:
        return inputs[int(np.searchsorted(offsets, row, side="right")) - 1]

    earliest: tuple[int, int] | None = None  # (later row, earlier row) of the first duplicate
    for p in range(spill.n_buckets):
        parts = list(spill.blocks(spill.hash_file(p), 2))
        if not parts:
            continue
        hashes = np.concatenate([h for h, _ in parts])
        rows = np.concatenate([r for _, r in parts])
        order = np.lexsort((rows, hashes))
        hashes, rows = hashes[order], rows[order]
        candidates = np.nonzero(hashes[1:] == hashes[:-1])[0]
        for i in candidates[np.argsort(rows[candidates + 1], kind="stable")]:
            later, before = int(rows[i + 1]), int(rows[i])
            if earliest is not None and later >= earliest[0]:
                break
            if owner(later).describe_row(later) == owner(before).describe_row(before):
                earliest = (later, before)
                break
    if earliest is not None:
        later, before = earliest
        a, b = owner(before), owner(later)
        sample, record_id = b.describe_row(later)
        raise KmervaeError(
            f"{b.store.path}: record {later - b.offset + 1} ({record_id}) of sample {sample} duplicates "
            f"record {before - a.offset + 1} of {a.store.path}; "
            "give the inputs distinct sample names (--samples) or remove the duplicate"
        )

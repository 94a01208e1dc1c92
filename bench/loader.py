"""Rows/s of the training data loader alone and training samples/s, streaming vs in memory.

    PYTHONPATH=src .venv/bin/python bench/loader.py              # ~4 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python bench/loader.py --rows 8192 --datasets lz4-bit/16 --threads 1

Synthetic count rows of the default layout (1..6-mers, 2,772 columns; Poisson counts of
log-normal contig lengths around 5 kb, 1 % of the rows 150-400 kb long, whose 1-mer counts
need more than 16 bits), written once per dataset codec and counts width (16: counts
stored in 16 bits plus the wide ones, as ``kmervae merge`` writes datasets; 32: uint32, as
older datasets); 90 % training rows, the validation rows after the training rows of every
47,000 (as ``kmervae merge`` writes them).

* loader alone: one epoch of ``DatasetBatches.train_batches`` (read, decode, shuffle,
  collate; the transfer where the device is CUDA) with the model's CLR applied to every
  batch, per dataset codec/width and decoding threads; in memory: the loaded split, same
  batches.
* training: ``kmervae.train.train`` of the default model and of a tiny one (2772 → 16 → 4,
  loader-bound), 2 epochs, samples/s of the second epoch from ``history.tsv``.
* peak RSS of a child process streaming one epoch.

Machines are shared: read numbers relative to each other within one run, next to the
load average printed with them.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from zarr.codecs import BloscCodec

from kmervae.vae import config as cfg
from kmervae.data import DatasetBatches, default_read_threads
from kmervae.kmers import Layout
from kmervae.vae.files import build_model
from kmervae.io.store import StoreWriter
from kmervae.train import train

CODECS = {
    "zstd": "auto",  # zarr's default (zstd level 0 = 3)
    "lz4-bit": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),  # count's and merge's codec
    "blosclz-bit": BloscCodec(cname="blosclz", clevel=5, shuffle="bitshuffle"),
    "lz4-byte": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
}
#: dataset codec / counts width; lz4-bit/16 is what ``kmervae merge`` writes
DATASETS = ["zstd/32", "lz4-bit/32", "lz4-bit/16", "blosclz-bit/16", "lz4-byte/16"]
TINY = ["model.hidden=[16]", "model.latent=4"]
#: rows of one shuffle bucket of `kmervae merge` at its default 1 GiB budget (default layout)
MERGE_BUCKET_ROWS = 47_000


def synthetic_counts(n: int, seed: int = 0):
    layout = Layout()
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.normal(np.log(5000), 0.8, n)).astype(np.int64) + 1000
    long = rng.random(n) < 0.01  # long contigs: 1-mer counts above 65535
    lengths[long] = rng.integers(150_000, 400_000, int(long.sum()))
    counts = np.empty((n, layout.width), np.uint32)
    for g in layout.groups:
        w = rng.gamma(2.0, 0.5, size=(n, g.width))
        w /= w.sum(1, keepdims=True)
        counts[:, g.start : g.stop] = rng.poisson(w * (lengths[:, None] - g.k + 1))
    split = (rng.random(n) < 0.1).astype(np.int8)
    for a in range(0, n, MERGE_BUCKET_ROWS):  # as `kmervae merge` writes them: buckets split by split
        split[a : a + MERGE_BUCKET_ROWS].sort()
    return layout, lengths, counts, split


def write_store(path: Path, dataset: str, data, chunk_rows: int = 4096) -> float:
    """Write a dataset store (``codec/width``); the size of its counts relative to uint32."""
    layout, lengths, counts, split = data
    n = len(lengths)
    codec, width = dataset.split("/")
    with StoreWriter(
        path,
        layout,
        chunk_rows=chunk_rows,
        extra=("sample", "split"),
        compressors=CODECS[codec],
        counts_width=int(width),
    ) as w:
        w.append([f"r{i}" for i in range(n)], lengths, counts, sample=["s"] * n, split=split)
    files = [f for name in ("counts", "counts_high") for f in (path / name).rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / counts.nbytes


def decode_rows_per_s(path: Path, repeat: int = 5) -> float:
    """One thread decoding the store's chunks straight from their files (the best of ``repeat``)."""
    from kmervae.io.store import KmerStore

    store = KmerStore(path)
    out = np.empty((store.chunk_rows, store.layout.width), dtype=store.matrix_array.dtype)  # as stored
    best = 0.0
    for _ in range(repeat):
        began = time.perf_counter()
        for c in range(len(list(store.chunks()))):
            store.read_chunk_into(c, out)
        best = max(best, store.n / (time.perf_counter() - began))
    return best


def phase_profile(data, model, batch: int = 1024, buffer_rows: int = 65536) -> None:
    """Microseconds per row of each step of the streaming loader on the CPU, one thread,
    best of 5, for stored 32- and 16-bit counts: decode a chunk; widen 16-bit counts to
    uint32; copy a whole chunk into the shuffle buffer; gather a batch of random buffer
    rows (np.take); widen a gathered 16-bit batch to int32; the model's CLR of a batch."""
    import numcodecs

    layout, _, counts, _ = data
    chunk = np.ascontiguousarray(counts[:4096])
    rng = np.random.default_rng(0)

    def best(f, rows: int, repeat: int = 5) -> float:
        f()
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            f()
            times.append(time.perf_counter() - began)
        return min(times) / rows * 1e6

    print("\n| step (µs per row, 1 thread) | 32-bit counts | 16-bit counts |\n|---|---:|---:|")
    steps = {}
    for dtype in (np.uint32, np.uint16):
        stored = chunk.astype(dtype)
        codec = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE, typesize=stored.itemsize)
        packed, out = codec.encode(stored), np.empty_like(stored)
        wide = np.empty(stored.shape, np.uint32)
        buffer = np.resize(stored, (buffer_rows + 4096, stored.shape[1]))  # touched, as a warm buffer is
        index = rng.choice(buffer_rows, batch, replace=False)
        gathered = np.take(buffer, index, axis=0)
        clr_in = torch.from_numpy(gathered.astype(np.int32))
        steps.setdefault("decode a chunk (lz4, bit shuffle)", []).append(
            best(lambda: codec.decode(packed, out=out.reshape(-1).view(np.uint8)), 4096))
        steps.setdefault("widen the chunk to uint32", []).append(
            best(lambda: np.copyto(wide, stored), 4096) if dtype == np.uint16 else 0.0)
        steps.setdefault("copy the chunk into the buffer", []).append(
            best(lambda: buffer.__setitem__(slice(4096, 8192), stored), 4096))
        steps.setdefault("gather a batch (np.take)", []).append(
            best(lambda: np.take(buffer, index, axis=0), batch))
        steps.setdefault("widen the batch to int32", []).append(
            best(lambda: gathered.astype(np.int32), batch) if dtype == np.uint16 else 0.0)
        with torch.no_grad():
            steps.setdefault("CLR of the batch (model.transform)", []).append(
                best(lambda: model.transform(clr_in), batch))
    for name, (a, b) in steps.items():
        print(f"| {name} | {a:.2f} | {b:.2f} |")


def loader_rows_per_s(path: Path, in_memory: bool, threads: int, model, clr: bool, repeat: int = 3) -> float:
    """The best epoch of ``repeat`` (other jobs' bursts only ever slow an epoch down)."""
    data = DatasetBatches(path, Layout().ks, 1024, 42, 0, 65536, in_memory=in_memory, read_threads=threads)
    best = 0.0
    for epoch in range(repeat):
        rows, began = 0, time.perf_counter()
        with torch.no_grad():
            for batch in data.train_batches(epoch):
                if clr:
                    model.transform(batch)
                rows += len(batch)
        best = max(best, rows / (time.perf_counter() - began))
    return best


def train_samples_per_s(path: Path, out: Path, overrides: list[str], in_memory: bool) -> float:
    budget = "training.in_memory_budget_bytes=" + ("100000000000" if in_memory else "0")
    config = cfg.load(None, ["training.epochs=2", "loss.warmup_epochs=0", budget] + overrides)
    train(config, path, out, device="cpu")
    with open(out / "history.tsv") as fh:
        return float(list(csv.DictReader(fh, delimiter="\t"))[-1]["samples_per_s"])


def peak_rss_mb(path: Path, threads: int) -> float:
    code = (
        "import resource,sys\nfrom kmervae.data import DatasetBatches\nfrom kmervae.kmers import Layout\n"
        f"d=DatasetBatches(sys.argv[1], Layout().ks, 1024, 42, 0, 65536, read_threads={threads})\n"
        "for b in d.train_batches(0): b.float()\n"
        "for b in d.validation_batches(): pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=49152)
    parser.add_argument("--datasets", nargs="+", default=DATASETS, help="codec/width of the datasets")
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, default_read_threads()}))
    parser.add_argument("--train-rows", type=int, default=16384, help="rows of the training runs' dataset")
    parser.add_argument("--no-train", action="store_true", help="loader numbers only")
    parser.add_argument("--profile", action="store_true", help="also the loader's steps, µs per row")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for dataset in args.datasets:
        if dataset.split("/")[0] not in CODECS or dataset.split("/")[-1] not in ("16", "32"):
            parser.error(f"--datasets: {dataset!r} is not CODEC/WIDTH ({', '.join(CODECS)} / 16 or 32)")
    print(f"# {args.rows:,} rows x 2,772 counts, {os.cpu_count()} cores, load average {load}")
    print("#", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    model = build_model(cfg.load(None, []))
    torch.set_num_threads(1)  # the CLR in one thread: the cores are the decoding threads'
    print("# loader alone: torch in 1 thread (the CLR), decoding threads as listed; best epoch of 3")
    data = synthetic_counts(args.rows)
    if args.profile:
        phase_profile(data, model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(
            "\n| dataset codec/width | ratio | decode, 1 thread | threads | streaming rows/s | in memory "
            "| streaming + CLR | in memory + CLR |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in args.datasets:
            path = tmp / f"{name.replace('/', '-')}.zarr"
            ratio = 1 / write_store(path, name, data)
            decode = decode_rows_per_s(path)
            memory = [loader_rows_per_s(path, True, 1, model, clr) for clr in (False, True)]
            for threads in args.threads:
                streaming = [loader_rows_per_s(path, False, threads, model, clr) for clr in (False, True)]
                numbers = " | ".join(f"{v:,.0f}" for v in (streaming[0], memory[0], streaming[1], memory[1]))
                print(f"| {name} | {ratio:.2f} | {decode:,.0f} | {threads} | {numbers} |", flush=True)
        chosen = "lz4-bit/16" if "lz4-bit/16" in args.datasets else args.datasets[-1]  # merge's
        path = tmp / f"{chosen.replace('/', '-')}.zarr"
        print(f"\npeak RSS streaming one epoch + validation ({chosen}): "
              f"{peak_rss_mb(path, max(args.threads)):,.0f} MB")
        torch.set_num_threads(os.cpu_count() or 1)
        if not args.no_train:
            path = tmp / "train.zarr"
            k = args.train_rows
            split = np.sort((np.random.default_rng(1).random(k) < 0.1).astype(np.int8))
            write_store(path, chosen, (data[0], data[1][:k], data[2][:k], split))
            print(f"\n| model ({args.train_rows:,} rows, {chosen}) | streaming samples/s | in memory samples/s | ratio |")
            print("|---|---:|---:|---:|")
            for label, overrides in (("default", []), ("tiny 2772-16-4", TINY)):
                s = train_samples_per_s(path, tmp / f"s-{label}", overrides, False)
                m = train_samples_per_s(path, tmp / f"m-{label}", overrides, True)
                print(f"| {label} | {s:,.0f} | {m:,.0f} | {s / m:.2f} |", flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n# load average at the end {load}; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print("#", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

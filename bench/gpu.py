"""Training throughput on a CUDA machine: the default model, streaming vs in memory, fp32 vs
bf16, one GPU and data-parallel over all GPUs; samples/s, peak GPU memory, loader stall.

Run through ``bench/gpu.sh`` (it also starts the data-parallel run with torchrun). Parts:

    python bench/gpu.py make DIR --rows N          # a synthetic dataset store DIR/data.zarr
    python bench/gpu.py train DIR MODE PRECISION   # one 2-epoch run; prints one JSON line
    python bench/gpu.py report DIR                 # the table of every run under DIR

``--tiny`` (make) writes a few chunks and a small layout so the Python runs on CPU in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kmervae.vae import config as cfg
from kmervae.kmers import Layout
from kmervae.io.store import DATASET_COMPRESSOR, DATASET_COUNTS_WIDTH, StoreWriter
from kmervae.train import train


def make(out: Path, rows: int, tiny: bool) -> None:
    """Count-like rows (Poisson counts of log-normal contig lengths), 10 % validation. Each
    chunk is a row permutation of one of a few generated blocks: realistic to decode, quick to make."""
    layout = Layout((3, 2, 1)) if tiny else Layout()
    rng = np.random.default_rng(0)
    chunk = 4096
    blocks = []
    for _ in range(1 if tiny else 4):
        lengths = np.exp(rng.normal(np.log(5000), 0.8, chunk)).astype(np.int64) + 1000
        counts = np.empty((chunk, layout.width), np.uint32)
        for g in layout.groups:
            w = rng.gamma(2.0, 0.5, size=(chunk, g.width))
            w /= w.sum(1, keepdims=True)
            counts[:, g.start : g.stop] = rng.poisson(w * (lengths[:, None] - g.k + 1))
        blocks.append((lengths, counts))
    began = time.perf_counter()
    path = out / "data.zarr"
    writer = StoreWriter(  # a dataset as `kmervae merge` writes it: lz4/bit shuffle, 16-bit counts
        path,
        layout,
        chunk_rows=chunk,
        extra=("sample", "split"),
        compressors=DATASET_COMPRESSOR,
        counts_width=DATASET_COUNTS_WIDTH,
    )
    with writer as w:
        for a in range(0, rows, chunk):
            n = min(chunk, rows - a)
            lengths, counts = blocks[(a // chunk) % len(blocks)]
            order = rng.permutation(chunk)[:n]
            split = (rng.random(n) < 0.1).astype(np.int8)
            w.append([f"r{i}" for i in range(a, a + n)], lengths[order], counts[order], sample=["s"] * n, split=split)
    print(f"wrote {rows:,} rows x {layout.width} to {path} in {time.perf_counter() - began:.0f} s", flush=True)


def run(out: Path, mode: str, precision: str, tiny: bool) -> None:
    """One 2-epoch run of the default model (torchrun-aware); rank 0 prints its JSON line."""
    budget = 10**12 if mode == "memory" else 0
    overrides = ["training.epochs=2", "loss.warmup_epochs=0", f"training.precision={precision}"]
    overrides.append(f"training.in_memory_budget_bytes={budget}")
    if tiny:
        overrides += ["input.ks=[3, 2, 1]", "model.hidden=[16]", "model.latent=4", "training.batch_size=256"]
        overrides.append("training.shuffle_buffer_rows=2048")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    name = f"{mode}-{precision}-{world}gpu"
    model_dir = out / name
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(cfg.load(None, overrides), out / "data.zarr", model_dir, device="auto")
    if int(os.environ.get("RANK", "0")):
        return
    rows = (model_dir / "history.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    last = dict(zip(header, rows[-1].split("\t")))
    waits = re.findall(r"waited ([0-9.]+) s for the data loader", (model_dir / "train.log").read_text())
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    result = {
        "run": name,
        "samples_per_s": float(last["samples_per_s"]),
        "epoch_seconds": float(last["epoch_seconds"]),
        "loader_wait_s": float(waits[-1]) if waits else None,
        "gpu_memory_gib_rank0": round(memory, 2),
    }
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)


def report(out: Path) -> None:
    print("| run | samples/s | epoch s | loader stall s | peak GPU memory GiB (rank 0) |")
    print("|---|---:|---:|---:|---:|")
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        print(
            f"| {r['run']} | {r['samples_per_s']:,.0f} | {r['epoch_seconds']:.1f} | "
            f"{r['loader_wait_s']} | {r['gpu_memory_gib_rank0']} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["make", "train", "report"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("mode", nargs="?", choices=["streaming", "memory"])
    parser.add_argument("precision", nargs="?", choices=["fp32", "bf16"])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.part == "make":
        make(args.dir, args.rows, args.tiny)
    elif args.part == "train":
        run(args.dir, args.mode, args.precision, args.tiny or (args.dir / "tiny").exists())
    else:
        report(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

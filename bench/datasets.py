"""Dataset-stage benchmark: rows/s and peak memory of `kmervae select` and `kmervae merge`.

    .venv/bin/python bench/datasets.py                          # 3 inputs x 20,000 rows x 2772 counts
    .venv/bin/python bench/datasets.py --rows 100000 --memory-mb 128

Inputs are synthetic count stores with the real 6..1 layout, written like `kmervae count`
writes them (4096-row chunks, its codec). Each stage runs as its own `kmervae` process so
its peak RSS is its own; the point of the merge row is that peak memory follows
``--memory-mb`` (the shuffle's budget), not the dataset size. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kmervae.kmers import Layout
from kmervae.io.store import FAST_COMPRESSOR, KmerStore, StoreWriter


def synthetic_store(path: Path, n: int, sample: str, seed: int) -> None:
    """Poisson counts (small integers, like a few-kb contig's 6-mer counts) and log-normal lengths."""
    layout = Layout()
    rng = np.random.default_rng(seed)
    with StoreWriter(path, layout, attrs={"sample": sample}, compressors=FAST_COMPRESSOR) as writer:
        for a in range(0, n, 4096):
            m = min(4096, n - a)
            writer.append(
                [f"{sample}_{i}" for i in range(a, a + m)],
                np.clip(rng.lognormal(np.log(3000), 1.0, size=m), 500, 100_000).astype(np.int64),
                rng.poisson(1.5, size=(m, layout.width)).astype(np.uint32),
            )


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one kmervae process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kmervae", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows per input store (3 inputs)")
    parser.add_argument("--memory-mb", type=int, nargs="+", default=[64, 256], help="merge budgets to try")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="kmervae-bench-"))
    try:
        inputs = []
        for i, sample in enumerate(("sfe", "se", "refseq")):
            synthetic_store(scratch / f"{sample}.zarr", args.rows, sample, seed=i)
            inputs.append(str(scratch / f"{sample}.zarr"))
        gib = 3 * args.rows * Layout().width * 4 / 2**30
        rows = []
        seconds, peak = timed(["select", inputs[0], "--min-length", "2000", "-o", str(scratch / "sel.zarr")])
        rows.append(("select >= 2000", args.rows, KmerStore(scratch / "sel.zarr").n, "-", seconds, peak))
        for budget in args.memory_mb:
            out = scratch / f"merged{budget}.zarr"
            seconds, peak = timed(["merge", *inputs, "-o", str(out), "--memory-mb", str(budget)])
            buckets = KmerStore(out).attrs["provenance"]["shuffle"]["buckets"]
            rows.append((f"merge, budget {budget} MiB", 3 * args.rows, 3 * args.rows, buckets, seconds, peak))
            shutil.rmtree(out)
        load = os.getloadavg()
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; inputs: 3 x {args.rows:,} rows x 2772 uint32 "
            f"({gib:.2f} GiB uncompressed)\n"
        )
        print("| stage | rows in | rows out | buckets | seconds | rows/s | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|")
        for name, n_in, n_out, buckets, seconds, peak in rows:
            print(
                f"| {name} | {n_in:,} | {n_out:,} | {buckets} | {seconds:.1f} "
                f"| {n_in / seconds:,.0f} | {peak:,.0f} |"
            )
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

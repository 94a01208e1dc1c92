"""Spearman report speed at the paper's pool size: P = 50,000 contigs, 100 queries x K = 50.

    .venv/bin/python bench/spearman.py [--pool 50000] [--latent 384] [--bootstrap 10000] [--threads 2]

Writes a synthetic 6..1-mer store and embeddings of --pool rows into a temporary
directory (not timed), then times `kmervae.evaluate.spearman.spearman` end to end
(neighbours, CLR rows, statistics, 10,000 bootstrap resamples, figures).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from kmervae.embed import EmbeddingsWriter
from kmervae.evaluate.spearman import format_result, spearman
from kmervae.kmers import Layout
from kmervae.io.store import StoreWriter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--latent", type=int, default=384)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    layout = Layout()
    rng = np.random.default_rng(0)
    projection = rng.normal(size=(layout.width, args.latent)).astype(np.float32) / np.sqrt(layout.width)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        with (
            StoreWriter(tmp / "s.zarr", layout) as store,
            EmbeddingsWriter(
                tmp / "e.zarr", args.latent, attrs={"model_config_hash": "bench", "input_ks": list(layout.ks)}
            ) as emb,
        ):
            for a in range(0, args.pool, 4096):
                n = min(4096, args.pool - a)
                counts = rng.poisson(rng.gamma(2.0, 3.0, size=(1, layout.width)), size=(n, layout.width))
                ids = [f"c{i}" for i in range(a, a + n)]
                store.append(ids, np.full(n, 5000), counts)
                z = np.log1p(counts.astype(np.float32)) @ projection
                emb.append(ids, np.full(n, 5000), z)
        made = time.perf_counter() - t
        t = time.perf_counter()
        r = spearman(
            tmp / "e.zarr",
            tmp / "s.zarr",
            tmp / "out",
            pool=args.pool,
            queries=args.queries,
            k=args.k,
            bootstrap=args.bootstrap,
            threads=args.threads,
        )
        took = time.perf_counter() - t
    print(f"# synthetic data made in {made:.0f} s; machine {os.cpu_count()} cpus, load {os.getloadavg()}")
    print(format_result(r))
    print(
        f"spearman report, P={r['pool']}, latent {args.latent}, {r['queries']} queries x K={r['k']}, "
        f"{args.bootstrap} bootstrap resamples, {args.threads} threads: {took:.1f} s"
    )


if __name__ == "__main__":
    main()

"""Map benchmark: time and peak RSS of each phase of `kmervae evaluate map` at 100k-1M contigs.

    .venv/bin/python bench/map.py --n 100000,300000 --threads 2
    .venv/bin/python bench/map.py --n 1000000 --place 300000    # fit 300k, place the other 700k

The embeddings are synthetic clustered 384-d vectors (bench/index.py's generator: 2000
cluster centres in a 48-d subspace plus noise), cosine as the map's default. Each size
runs in a fresh process calling the map's own functions phase by phase, as
kmervae.evaluate.map.map_embeddings does: neighbours (FAISS), affinities and optimisation
(openTSNE), placement of the rest (with --place), clustering (HDBSCAN), map.tsv and the
figures. The peak RSS of a phase is the process's high-water mark reset before it
(/proc/self/clear_refs), so it includes what earlier phases still hold. CPU seconds (all
threads) say what the phase costs on a loaded machine, where wall time mostly says how
busy the machine was. The neighbours'
recall@k against exact search is measured on 500 rows. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# bench/hdbscan.py would shadow the hdbscan package the map imports: keep this folder off the path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    spec = importlib.util.spec_from_file_location("bench_index", HERE / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic(n, dim, seed)


def peak_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then runs on from the start
        pass


class Phases:
    def __init__(self):
        self.rows = []

    def run(self, name, fn, *args, **kwargs):
        reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        value = fn(*args, **kwargs)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.rows.append({"phase": name, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb()})
        print(json.dumps(self.rows[-1]), file=sys.stderr, flush=True)
        return value


def recall(knn, x: np.ndarray, seed: int, queries: int = 500) -> float:
    """Share of the exact k nearest (numpy brute force, 50 queries at a time) that FAISS found."""
    indices, _ = knn.build()
    rows = np.random.default_rng(seed).choice(len(x), size=min(queries, len(x)), replace=False)
    norms = (x.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    hits = 0
    for a in range(0, len(rows), 50):
        batch = rows[a : a + 50]
        d = norms[:, None] - 2 * (x @ x[batch].T)
        d[batch, np.arange(len(batch))] = np.inf
        exact = np.argpartition(d, knn.k, axis=0)[: knn.k]
        hits += sum(len(np.intersect1d(exact[:, j], indices[r])) for j, r in enumerate(batch))
    return hits / (len(rows) * knn.k)


def child(args) -> None:
    from kmervae.evaluate import map as emap
    from kmervae.evaluate import map_tsne
    from kmervae.evaluate.neighbours import write_tsv

    phases = Phases()
    z = synthetic(args.n, args.dim, args.seed)
    fitted = (
        np.arange(args.n)
        if not args.place
        else np.sort(np.random.default_rng(args.seed).choice(args.n, args.place, replace=False))
    )
    rest = np.setdiff1d(np.arange(args.n), fitted)
    x = phases.run("prepare (float32, normalised)", map_tsne.prepared, z[fitted], "cosine")
    knn = phases.run("neighbours (FAISS)", map_tsne.neighbours, x, args.perplexity, args.seed, args.threads)
    found = recall(knn, x, args.seed)
    aff = phases.run("affinities (openTSNE)", map_tsne.affinities, knn, args.perplexity)
    embedding = phases.run(
        "optimisation (openTSNE)",
        map_tsne.optimise,
        x,
        aff,
        args.n_iter,
        args.ee_iter,
        args.seed,
        args.threads,
    )
    del aff
    xy = np.empty((args.n, 2))
    if len(rest):
        step = map_tsne.PLACE_CHUNK
        chunks = (map_tsne.prepared(z[rest[a : a + step]], "cosine") for a in range(0, len(rest), step))
        xy[rest] = phases.run("placement (openTSNE transform)", map_tsne.place, embedding, chunks, len(rest))
    xy[fitted] = np.asarray(embedding)
    xy = phases.run("6-digit rounding", emap.as_written, xy)
    mcs, ms = emap.scaled_hdbscan_params(args.n, None, None)
    clusters = phases.run("clustering (HDBSCAN)", emap.cluster, xy, mcs, ms, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ids = np.array([f"c{i}" for i in range(args.n)])
        columns = (ids, xy[:, 0], xy[:, 1], clusters, np.full(args.n, 0.5))
        phases.run(
            "map.tsv", write_tsv, Path(tmp) / "map.tsv", ["id", "x", "y", "cluster", "gc"], zip(*columns)
        )
        gc = np.random.default_rng(0).uniform(0.3, 0.7, args.n)
        phases.run("figures (gc, cluster)", emap._plot, xy, clusters, gc, None, "genome", Path(tmp))
    print(
        json.dumps({"phases": phases.rows, "recall": found, "k": knn.k, "clusters": int(clusters.max() + 1)})
    )


def print_result(n: int, fitted: int, result: dict) -> None:
    """The table rows of one size: each phase, the total, then the neighbours' recall and clusters."""
    for row in result["phases"]:
        print(
            f"| {n:,} | {fitted:,} | {row['phase']} | {row['seconds']:.1f} | {row['cpu']:.1f} "
            f"| {row['peak_mb'] / 1024:.2f} |"
        )
    total = sum(row["seconds"] for row in result["phases"])
    cpu = sum(row["cpu"] for row in result["phases"])
    peak = max(row["peak_mb"] for row in result["phases"])
    print(f"| {n:,} | {fitted:,} | **total** | **{total:.1f}** | **{cpu:.1f}** | **{peak / 1024:.2f}** |")
    print(
        f"| {n:,} | {fitted:,} | neighbours recall@{result['k']} {result['recall']:.3f}, "
        f"{result['clusters']} clusters | | | |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000,300000", help="contigs, comma-separated sizes")
    parser.add_argument("--place", type=int, default=0, help="fit this many, place the rest (0 = fit all)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--n-iter", type=int, default=500)
    parser.add_argument("--ee-iter", type=int, default=250)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.n = int(args.n)
        return child(args)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {args.threads}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| n | fitted | phase | seconds | CPU seconds | peak RSS (GB) |")
    print("|---|---|---|---|---|---|")
    for n in (int(v) for v in args.n.split(",")):
        argv = [sys.executable, __file__, "--child", "--n", str(n), "--place", str(args.place)]
        for flag in ("dim", "threads", "perplexity", "n_iter", "ee_iter", "seed"):
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print_result(n, args.place or n, result)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Index benchmark: build time, memory, queries/s and recall@k of approximate vs exact FAISS indexes.

    .venv/bin/python bench/index.py                       # 1,000,000 x 384, synthetic clustered vectors
    .venv/bin/python bench/index.py --embeddings EMB.zarr # the rows of EMB.zarr tiled with noise up to --n
    .venv/bin/python bench/index.py --n 200000 --queries 500 --threads 2

The indexes are made by kmervae.index.make_index (what `kmervae index` ships); recall@k is
measured against the exact flat index on the same held-out queries. Target:
recall@50 >= 0.95 at >= 10x the exact index's queries/s. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import psutil

from kmervae.index import IndexParams, make_index, prepare


def synthetic(n: int, dim: int, seed: int, clusters: int = 2000, intrinsic: int = 48) -> np.ndarray:
    """Embedding-like vectors: cluster centres in a low-dimensional subspace, plus noise."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(intrinsic, dim)).astype(np.float32) / np.sqrt(intrinsic)
    centres = rng.normal(size=(clusters, intrinsic)).astype(np.float32) * 3
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(a + 100_000, n)
        label = rng.integers(0, clusters, size=b - a)
        local = centres[label] + rng.normal(size=(b - a, intrinsic)).astype(np.float32)
        out[a:b] = local @ basis + 0.1 * rng.normal(size=(b - a, dim)).astype(np.float32)
    return out


def tiled(path: str, n: int, seed: int) -> np.ndarray:
    """The rows of an embeddings store repeated with Gaussian noise (10 % of each column's std)."""
    from kmervae.embed import open_embeddings

    emb = open_embeddings(path)
    base = emb.z_mean()
    rng = np.random.default_rng(seed)
    scale = 0.1 * base.std(axis=0, keepdims=True)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(a + 100_000, n)
        rows = rng.integers(0, len(base), size=b - a)
        out[a:b] = base[rows] + scale * rng.normal(size=(b - a, base.shape[1])).astype(np.float32)
    return out


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def timed_search(index, queries, k):
    t = time.perf_counter()
    _, labels = index.search(queries, k)
    return labels, len(queries) / (time.perf_counter() - t)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeddings", help="tile this embeddings store with noise instead of synthetic vectors")
    ap.add_argument(
        "--clusters", type=int, default=2000, help="synthetic: cluster centres (1 = one Gaussian, hardest)"
    )
    ap.add_argument(
        "--intrinsic", type=int, default=48, help="synthetic: dimension of the subspace holding the signal"
    )
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128, 256])
    ap.add_argument("--ivf-nlist", type=int, default=1024)
    ap.add_argument("--ivf-nprobe", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32, 64])
    ap.add_argument("--kinds", default="flat,hnsw,ivf")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(args.threads)
    t = time.perf_counter()
    data = (
        tiled(args.embeddings, args.n + args.queries, args.seed)
        if args.embeddings
        else synthetic(args.n + args.queries, args.dim, args.seed, args.clusters, args.intrinsic)
    )
    queries = prepare(data[args.n :], args.metric)
    data = prepare(data[: args.n], args.metric)
    source = (
        f"tiled {args.embeddings}"
        if args.embeddings
        else f"synthetic: {args.clusters} clusters in {args.intrinsic}-d"
    )
    print(
        f"# data: {args.n:,} x {data.shape[1]} ({source}),"
        f" {args.queries} held-out queries, k={args.k}, {args.metric}; made in {time.perf_counter() - t:.0f} s"
    )
    print(
        f"# machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus,"
        f" faiss {faiss.__version__} with {args.threads} threads; load before: {os.getloadavg()}"
    )

    rows = []
    kinds = args.kinds.split(",")
    base = rss_mb()
    t = time.perf_counter()
    flat = make_index(data.shape[1], args.n, IndexParams(metric=args.metric, kind="flat"))
    flat.add(data)
    build, mem = time.perf_counter() - t, rss_mb() - base
    truth, exact_qps = timed_search(flat, queries, args.k)
    rows.append(("flat (exact)", "-", build, mem, exact_qps, 1.0))
    del flat

    if "hnsw" in kinds:
        base = rss_mb()
        t = time.perf_counter()
        params = IndexParams(
            metric=args.metric, kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction
        )
        hnsw = make_index(data.shape[1], args.n, params)
        hnsw.add(data)
        build, mem = time.perf_counter() - t, rss_mb() - base
        for ef in args.ef_search:
            hnsw.hnsw.efSearch = ef
            found, qps = timed_search(hnsw, queries, args.k)
            rows.append(
                (
                    "hnsw",
                    f"M={args.hnsw_m} efC={args.ef_construction} efSearch={ef}",
                    build,
                    mem,
                    qps,
                    recall(found, truth),
                )
            )
        del hnsw

    if "ivf" in kinds:
        base = rss_mb()
        t = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        train = data[np.sort(rng.choice(args.n, size=min(args.n, 64 * args.ivf_nlist), replace=False))]
        params = IndexParams(metric=args.metric, kind="ivf", ivf_nlist=args.ivf_nlist, seed=args.seed)
        ivf = make_index(data.shape[1], args.n, params, train)
        ivf.add(data)
        build, mem = time.perf_counter() - t, rss_mb() - base
        for nprobe in args.ivf_nprobe:
            ivf.nprobe = nprobe
            found, qps = timed_search(ivf, queries, args.k)
            rows.append(
                ("ivf-flat", f"nlist={args.ivf_nlist} nprobe={nprobe}", build, mem, qps, recall(found, truth))
            )

    print()
    print(
        f"| index | parameters | build (s) | memory (MB) | queries/s | speed-up vs exact | recall@{args.k} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind, params, build, mem, qps, rec in rows:
        print(
            f"| {kind} | {params} | {build:.1f} | {mem:.0f} | {qps:,.0f} | {qps / exact_qps:.1f}x | {rec:.3f} |"
        )
    print(f"\n# load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

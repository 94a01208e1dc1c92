"""Index benchmark: build time, peak memory, index size, queries/s and recall@k of every index kind.

    .venv/bin/python bench/index.py --n 200000 --queries 500 --threads 2   # synthetic clustered vectors
    .venv/bin/python bench/index.py --embeddings EMB.zarr --n 0            # a real store as it is
    .venv/bin/python bench/index.py --embeddings EMB.zarr --n 1000000      # its rows tiled with noise

Each index is built by kmervae.index.build_index from an embeddings store (what `kmervae
index` runs: seeded training sample, vectors added chunk by chunk) in a fresh process, and
searched by kmervae.index.LoadedIndex (what `kmervae query` runs: IVF-SQ8 / IVF-PQ re-ranked
exactly from the store) in another one, so each process's peak RSS is that step's own.
Recall@k is measured against the exact flat index on the same queries: held-out vectors
for synthetic or tiled data, or rows of the store (each left out of its own list) with
--n 0. Target: recall@50 >= 0.95. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from kmervae.index import IndexParams, plan_index


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


def write_store(path: Path, z: np.ndarray) -> None:
    from kmervae.embed import EmbeddingsWriter

    attrs = {"model_config_hash": "bench", "model_dir": "bench", "input": "bench/index.py"}
    with EmbeddingsWriter(path, z.shape[1], attrs=attrs) as w:
        for a in range(0, len(z), 65536):
            b = min(a + 65536, len(z))
            w.append([f"c{i:09d}" for i in range(a, b)], np.full(b - a, 1000), z[a:b])


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would include the parent it was spawned from)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, elsewhere bytes


def child_build(store: str, out: str, params: IndexParams, threads: int, conn) -> None:
    """Build one index in this (fresh) process; send back seconds, peak RSS, file size, plan."""
    from kmervae.index import build_index

    t = time.perf_counter()
    meta = build_index(store, out, params, threads=threads)
    conn.send((time.perf_counter() - t, peak_rss_mb(), os.path.getsize(out), meta["params"]))


def child_query(index_path: str, queries, exclude, k: int, settings, threads: int, conn) -> None:
    """Search the queries once per setting (efSearch / nprobe / rerank); send positions and rates."""
    from kmervae.index import LoadedIndex

    loaded = LoadedIndex(index_path, threads=threads)
    results = []
    for setting in settings:
        if "ef_search" in setting:
            loaded.index.hnsw.efSearch = setting["ef_search"]
        if "nprobe" in setting:
            loaded.index.nprobe = setting["nprobe"]
        if "rerank" in setting:
            loaded.rerank = setting["rerank"]
        t = time.perf_counter()
        pos, _ = loaded.search(queries, k, exclude=exclude)
        results.append((setting, pos, len(queries) / (time.perf_counter() - t)))
    conn.send((results, peak_rss_mb()))


def in_child(target, *args):
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, send))
    proc.start()
    out = recv.recv()
    proc.join()
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def describe(kind: str, plan: dict, setting: dict, args) -> str:
    if kind == "hnsw":
        return f"M={args.hnsw_m} efC={args.ef_construction} efSearch={setting['ef_search']}"
    if kind == "flat":
        return "-"
    text = f"nlist={plan['ivf_nlist']} nprobe={setting['nprobe']}"
    if kind == "ivf-pq":
        text += f" m={plan['pq_m']}"
    if kind in ("ivf-sq8", "ivf-pq"):
        text += f" rerank={setting['rerank']}" if setting["rerank"] else " no rerank"
    return text


def variants(args) -> list[tuple[str, IndexParams]]:
    common = dict(metric=args.metric, seed=args.seed, memory_gb=1024.0)
    out = []
    for kind in args.kinds.split(","):
        if kind == "hnsw":
            out.append(
                (
                    "hnsw",
                    IndexParams(
                        kind=kind, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, **common
                    ),
                )
            )
        elif kind == "ivf-pq":
            out += [
                (kind, IndexParams(kind=kind, ivf_nlist=args.ivf_nlist, pq_m=m, **common)) for m in args.pq_m
            ]
        elif kind != "flat":
            out.append((kind, IndexParams(kind=kind, ivf_nlist=args.ivf_nlist, **common)))
    return out


def settings_for(kind: str, plan: dict, args) -> list[dict]:
    if kind == "hnsw":
        return [{"ef_search": ef} for ef in args.ef_search]
    if kind == "ivf":
        return [{"nprobe": p} for p in args.ivf_nprobe or [plan["ivf_nprobe"]]]
    rerank = plan["rerank"]
    probes = args.ivf_nprobe or [plan["ivf_nprobe"]]
    return [{"nprobe": p, "rerank": rerank} for p in probes] + [
        {"nprobe": probes[len(probes) // 2], "rerank": 0}
    ]


def make_data(args, tmp: Path):
    """(store path, queries, exclude, description)."""
    if args.embeddings and args.n == 0:
        from kmervae.embed import open_embeddings

        emb = open_embeddings(args.embeddings)
        rows = np.sort(
            np.random.default_rng(args.seed).choice(emb.n, size=min(args.queries, emb.n), replace=False)
        )
        return (
            args.embeddings,
            emb.take(rows),
            rows,
            f"{args.embeddings} as it is ({emb.n:,} x {emb.latent_dim}), queries its own rows",
        )
    if args.embeddings:
        data, source = tiled(args.embeddings, args.n + args.queries, args.seed), f"tiled {args.embeddings}"
    else:
        data = synthetic(args.n + args.queries, args.dim, args.seed, args.clusters, args.intrinsic)
        source = f"synthetic: {args.clusters} clusters in {args.intrinsic}-d"
    store = tmp / "bench.zarr"
    write_store(store, data[: args.n])
    return (
        str(store),
        data[args.n :].copy(),
        None,
        f"{args.n:,} x {data.shape[1]} ({source}), held-out queries",
    )


def print_plans(dim: int, id_chars: int) -> None:
    """What `auto` picks at the scale of millions of contigs (no building)."""
    for n in (1_000_000, 13_000_000, 18_000_000):
        for gb in (8, 16, 32):
            p = plan_index(n, dim, IndexParams(memory_gb=gb), id_chars=id_chars)
            extra = f" m={p.pq_m}" if p.pq_m else ""
            print(
                f"# auto: {n:,} x {dim}, {id_chars}-char IDs, --memory-gb {gb}: {p.kind}{extra}"
                f" nlist={p.nlist} nprobe={p.nprobe} rerank={p.rerank},"
                f" about {p.estimated_bytes / 2**30:.2f} GB"
            )


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--n", type=int, default=200_000, help="vectors (0 with --embeddings: the store as it is)"
    )
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeddings", help="real embeddings: the store itself (--n 0) or tiled with noise")
    ap.add_argument("--clusters", type=int, default=2000, help="synthetic: cluster centres (1 = hardest)")
    ap.add_argument("--intrinsic", type=int, default=48, help="synthetic: dimension holding the signal")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=ints, default=[64, 128])
    ap.add_argument("--ivf-nlist", type=int, default=None, help="default: what kmervae index picks")
    ap.add_argument("--ivf-nprobe", type=ints, default=[16, 32, 64], help="'' = the index's default")
    ap.add_argument("--pq-m", type=ints, default=[192, 48])
    ap.add_argument("--kinds", default="flat,hnsw,ivf,ivf-sq8,ivf-pq")
    ap.add_argument("--seed", type=int, default=42)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    import faiss

    with tempfile.TemporaryDirectory(prefix="kmervae-bench-") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        store, queries, exclude, source = make_data(args, tmp)
        print(
            f"# data: {source}, {len(queries)} queries, k={args.k}, {args.metric};"
            f" made in {time.perf_counter() - t:.0f} s"
        )
        print(
            f"# machine: {platform.node()} {platform.processor() or platform.machine()},"
            f" {os.cpu_count()} cpus,"
            f" faiss {faiss.__version__} with {args.threads} threads; load before: {os.getloadavg()}"
        )
        flat = IndexParams(kind="flat", metric=args.metric, memory_gb=1024.0)
        build, build_rss, size, _ = in_child(child_build, store, str(tmp / "flat.faiss"), flat, args.threads)
        (res,), query_rss = in_child(
            child_query, str(tmp / "flat.faiss"), queries, exclude, args.k, [{}], args.threads
        )
        truth, exact_qps = res[1], res[2]
        rows = [("flat (exact)", "-", build, build_rss, query_rss, size, exact_qps, 1.0)]
        for i, (kind, params) in enumerate(variants(args)):
            path = str(tmp / f"{i}.faiss")
            build, build_rss, size, plan = in_child(child_build, store, path, params, args.threads)
            results, query_rss = in_child(
                child_query, path, queries, exclude, args.k, settings_for(kind, plan, args), args.threads
            )
            for setting, pos, qps in results:
                rows.append(
                    (
                        kind,
                        describe(kind, plan, setting, args),
                        build,
                        build_rss,
                        query_rss,
                        size,
                        qps,
                        recall(pos, truth),
                    )
                )
            os.unlink(path)
    print()
    print(
        "| index | parameters | build (s) | build peak RSS (MB) | query peak RSS (MB) | index (MB) |"
        f" queries/s | vs exact | recall@{args.k} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, text, build, brss, qrss, size, qps, rec in rows:
        print(
            f"| {kind} | {text} | {build:.1f} | {brss:.0f} | {qrss:.0f} | {size / 2**20:.0f} | {qps:,.0f} |"
            f" {qps / exact_qps:.1f}x | {rec:.3f} |"
        )
    print(f"\n# load after: {os.getloadavg()}")
    print_plans(args.dim, 30)


if __name__ == "__main__":
    main()

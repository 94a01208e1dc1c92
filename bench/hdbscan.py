"""HDBSCAN on 2-D maps: scikit-learn vs the hdbscan package vs fast_hdbscan, time and agreement.

    .venv/bin/python bench/hdbscan.py --n 100000,300000 --threads 2

The points are t-SNE-map-like: Gaussian blobs of varied size and spread (some elongated,
some touching), plus 5 % uniform background, rounded to the 6 significant digits map.tsv
holds. min_cluster_size / min_samples scale as `kmervae evaluate map` scales them
(1000 / 100 at 4.8 M points). Each implementation runs in this process, one after another;
labels are compared to scikit-learn's with the adjusted Rand index and for exact equality
up to relabelling (the same partition, noise included). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

# this file is named hdbscan.py: keep its folder off the import path so `import hdbscan` is the package
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def map_like(n: int, seed: int, blobs: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-60, 60, size=(blobs, 2))
    weights = rng.dirichlet(np.full(blobs, 0.7))
    counts = rng.multinomial(int(n * 0.95), weights)
    parts = []
    for c, m in zip(centres, counts):
        scale = rng.uniform(0.5, 4.0, size=2)
        angle = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        parts.append(c + (rng.normal(size=(m, 2)) * scale) @ rot.T)
    parts.append(rng.uniform(-70, 70, size=(n - counts.sum(), 2)))
    xy = np.concatenate(parts)[rng.permutation(n)]
    return np.array([float(f"{v:.6g}") for v in xy.ravel()]).reshape(xy.shape)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b are the same labelling up to renaming clusters (noise -1 stays noise)."""
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(np.unique(pairs[0])) == len(pairs[0]) == len(np.unique(pairs[1]))


def run_sklearn(xy, mcs, ms, threads):
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True).fit_predict(xy)


# scikit-learn's min_samples counts the point itself, the hdbscan package's and fast_hdbscan's
# do not: min_samples - 1 there is the same core distance (checked: hdbscan's exact prims_kdtree
# then gives scikit-learn's labels exactly)
def run_hdbscan(xy, mcs, ms, threads):
    import hdbscan

    return hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=ms - 1,
        algorithm="boruvka_kdtree",
        approx_min_span_tree=False,
        core_dist_n_jobs=threads,
    ).fit_predict(xy)


def run_fast(xy, mcs, ms, threads, reproducible=False):
    import fast_hdbscan

    return fast_hdbscan.HDBSCAN(
        min_cluster_size=mcs, min_samples=ms - 1, reproducible=reproducible
    ).fit_predict(xy)


def run_fast_reproducible(xy, mcs, ms, threads):
    return run_fast(xy, mcs, ms, threads, reproducible=True)


METHODS = {
    "sklearn": run_sklearn,
    "hdbscan boruvka_kdtree": run_hdbscan,
    "fast_hdbscan": run_fast,
    "fast_hdbscan reproducible": run_fast_reproducible,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000,300000", help="map sizes, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numba

    numba.set_num_threads(args.threads)
    from sklearn.metrics import adjusted_rand_score

    from kmervae.evaluate.map import scaled_hdbscan_params

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {args.threads}")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print(
        "| n | min_cluster_size | min_samples | method | seconds | clusters | noise | ARI vs sklearn | same partition |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    if "fast_hdbscan" in args.methods:  # numba compiles on first use: not timed
        run_fast(map_like(2000, args.seed), 10, 5, args.threads)
        run_fast(map_like(2000, args.seed), 10, 5, args.threads, reproducible=True)
    for n in (int(v) for v in args.n.split(",")):
        xy = map_like(n, args.seed)
        mcs, ms = scaled_hdbscan_params(n, None, None)
        reference = None
        for name in args.methods.split(","):
            start = time.perf_counter()
            labels = METHODS[name](xy, mcs, ms, args.threads)
            seconds = time.perf_counter() - start
            reference = labels if reference is None else reference
            ari = adjusted_rand_score(reference, labels)
            print(
                f"| {n:,} | {mcs} | {ms} | {name} | {seconds:.1f} | {labels.max() + 1} | "
                f"{np.mean(labels < 0):.1%} | {ari:.4f} | {same_partition(reference, labels)} |",
                flush=True,
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

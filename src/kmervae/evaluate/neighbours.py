"""Helpers every evaluation shares: which rows, exact neighbours, CLR rows, k-mer MSE.

Neighbours are exact: pool vectors are streamed in blocks (memory bounded by the block,
not the pool), candidates are ranked by a float32 matrix product, and the best
``k + margin`` candidates are re-measured in float64 before the final ranking, so
near-zero distances are accurate and ties are broken by pool position.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..embed import Embeddings
from ..errors import KmervaeError
from ..kmers import Layout, counts_to_clr
from ..options import Option
from ..io.store import SPLITS, KmerStore, take_rows

METRICS = ("euclidean", "cosine")
SPLIT_CHOICES = ("auto", "test", "validation", "train", "all")
DEFAULT_BLOCK = 8192
RERANK_MARGIN = 16
RERANK_BUDGET = 1 << 24  # floats re-measured at once (128 MB in float64)

# -- the options every report shares -------------------------------------------------------
SPLIT = Option(
    "split",
    "auto",
    help="rows to evaluate (auto: test if present, else validation, else all)",
    choices=SPLIT_CHOICES,
    workflow="evaluation.split",
)
SEED = Option("seed", 42, int, "seed of the sampled pool, queries and pairs", workflow="seed")
THREADS = Option("threads", None, int, "threads (default: all)")


# -- which rows ------------------------------------------------------------------------


def eligible_rows(emb: Embeddings, split: str = "auto") -> tuple[str, np.ndarray]:
    """Embedding rows of one split; ``auto`` = test if there are test rows, else validation, else all.

    Returns (the split used, row positions).
    """
    if split not in SPLIT_CHOICES:
        raise KmervaeError(f"unknown split {split!r} (use one of {', '.join(SPLIT_CHOICES)})")
    if split == "all" or not emb.has("split"):
        if split not in ("all", "auto"):
            if emb.attrs.get("split") == split:  # embeddings of one split of a dataset
                return split, np.arange(emb.n)
            raise KmervaeError(
                f"{emb.path}: the embeddings have no split column, so --split {split} cannot apply"
            )
        return "all", np.arange(emb.n)
    codes = (
        np.concatenate([emb.array("split", a, b) for a, b in emb.chunks(1 << 20)]) if emb.n else np.empty(0)
    )
    if split == "auto":
        for name in ("test", "validation"):
            rows = np.nonzero(codes == SPLITS.index(name))[0]
            if len(rows):
                return name, rows
        return "all", np.arange(emb.n)
    return split, np.nonzero(codes == SPLITS.index(split))[0]


def sample_rows(rows: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """A seeded sample of ``size`` rows (all when fewer or size is 0/None), sorted."""
    if not size or size >= len(rows):
        return np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=int(size), replace=False)).astype(np.int64)


def check_pool(pool_size: int, k: int, path) -> None:
    if pool_size == 0:
        raise KmervaeError(f"{path}: the pool of contigs is empty (check --split and the input)")
    if pool_size < k + 1:
        raise KmervaeError(
            f"{path}: a pool of {pool_size} contigs is smaller than K+1 = {k + 1} (lower --k or use more contigs)"
        )


def row_samples(emb: Embeddings, rows: np.ndarray) -> np.ndarray | None:
    """The ``sample`` of embedding rows (None when the embeddings have no sample column)."""
    if not emb.has("sample") or not len(rows):
        return None
    return np.asarray(take_rows(emb.group["sample"], np.asarray(rows), emb.chunk_rows)).astype(str)


def locate_in_store(
    store: KmerStore, ids: np.ndarray, source, samples: np.ndarray | None = None
) -> np.ndarray:
    """Store row of each contig (first occurrence), scanning the store's IDs chunk by chunk.

    With ``samples`` and a store that has a sample column, a contig is its (sample, id) pair, so
    IDs repeated across samples (``NODE_1`` of every assembly) find their own row; otherwise
    it is its ID. A contig that the store lacks is one error naming it: embeddings and store must match.
    """
    ids = np.asarray(ids).astype(str)
    by_sample = samples is not None and store.has("sample")
    keys = [(str(s), i) for s, i in zip(samples, ids)] if by_sample else list(ids)
    want = {key: n for n, key in enumerate(keys)}
    found = np.full(len(ids), -1, dtype=np.int64)
    for a, b in store.chunks(max(store.chunk_rows, 1 << 18)):
        block = store.ids(a, b)
        hit = np.nonzero(np.isin(block, ids))[0]
        block_samples = store.read("sample", a, b) if by_sample and len(hit) else None
        for h in hit:
            n = want.get((str(block_samples[h]), block[h]) if by_sample else block[h])
            if n is not None and found[n] < 0:
                found[n] = a + h
    missing = np.nonzero(found < 0)[0]
    if len(missing):
        m = int(missing[0])
        what = f"{samples[m]}:{ids[m]}" if by_sample else ids[m]
        raise KmervaeError(
            f"{source}: contig {what!r} is not in the k-mer store {store.path} "
            f"({len(missing)} of {len(ids)} pool IDs missing): use the store the embeddings were made from"
        )
    return found


def kmer_groups(emb: Embeddings, store: KmerStore) -> tuple[int, ...]:
    """The model's input groups (from the embeddings' attrs) when the store has them, else the store's."""
    ks = tuple(int(k) for k in emb.attrs.get("input_ks") or store.layout.ks)
    store.layout.columns_for(ks)
    return ks


def clr_rows(store: KmerStore, positions: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """CLR (float32) of the store rows at ``positions`` over groups ``ks``, in ``positions`` order."""
    return np.asarray(counts_to_clr(store.take(positions, ks=ks), Layout(tuple(ks))), dtype=np.float32)


def kmer_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise mean squared difference (float64)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.mean(diff * diff, axis=1)


# -- distances and neighbours ----------------------------------------------------------


def pair_distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distance (float64) between matching rows of a and b."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "euclidean":
        return np.sqrt(np.sum((a - b) ** 2, axis=-1))
    if metric == "cosine":
        na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
        return 1.0 - np.sum(a * b, axis=-1) / np.where(na * nb == 0, 1.0, na * nb)
    raise KmervaeError(f"unknown metric {metric!r} (use {' or '.join(METRICS)})")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def exact_knn(
    queries: np.ndarray,
    pool_blocks: Callable[[], object],
    k: int,
    metric: str = "euclidean",
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest pool rows of each query: (positions (q, k) int64, distances (q, k) float64).

    ``pool_blocks()`` yields (offset, block) pairs covering the pool in order; ``exclude``
    holds, per query, a pool position to leave out (itself) or -1. Ties go to the lower
    pool position.
    """
    if metric not in METRICS:
        raise KmervaeError(f"unknown metric {metric!r} (use {' or '.join(METRICS)})")
    q = np.asarray(queries, dtype=np.float32)
    nq = len(q)
    exclude = np.full(nq, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    cosine = metric == "cosine"
    q64 = _normalise(q.astype(np.float64)) if cosine else q.astype(np.float64)
    q32 = q64.astype(np.float32)
    width = k + RERANK_MARGIN
    best_pos = np.empty((nq, 0), dtype=np.int64)
    best_dist = np.empty((nq, 0), dtype=np.float64)
    for offset, block in pool_blocks():
        b64 = np.asarray(block, dtype=np.float64)
        if len(b64) == 0:
            continue
        if cosine:
            b64 = _normalise(b64)
        b32 = b64.astype(np.float32)
        b_sq = np.einsum("ij,ij->i", b32, b32)
        take = min(width, len(b64))
        # re-measuring (queries x candidates x width) floats at once is bounded by RERANK_BUDGET
        step = max(1, RERANK_BUDGET // (take * b64.shape[1]))
        cand_pos = np.empty((nq, take), dtype=np.int64)
        cand_dist = np.empty((nq, take), dtype=np.float64)
        for a in range(0, nq, step):
            sl = slice(a, min(a + step, nq))
            # ranking score in float32: -q.b for unit vectors, |b|^2 - 2 q.b for Euclidean
            score = -(q32[sl] @ b32.T) if cosine else b_sq[None, :] - 2.0 * (q32[sl] @ b32.T)
            own = exclude[sl] - offset
            inside = (own >= 0) & (own < len(b64))
            score[np.nonzero(inside)[0], own[inside]] = np.inf
            if take < len(b64):
                cand = np.argpartition(score, take - 1, axis=1)[:, :take]
            else:
                cand = np.broadcast_to(np.arange(len(b64)), score.shape).copy()
            gathered = b64[cand]  # (queries, take, d), exact distances in float64
            if cosine:
                d = 1.0 - np.einsum("qd,qtd->qt", q64[sl], gathered)
            else:
                diff = gathered - q64[sl, None, :]
                d = np.sqrt(np.einsum("qtd,qtd->qt", diff, diff))
            d[(offset + cand) == exclude[sl, None]] = np.inf
            cand_pos[sl], cand_dist[sl] = offset + cand, d
        pos = np.concatenate([best_pos, cand_pos], axis=1)
        dist = np.concatenate([best_dist, cand_dist], axis=1)
        keep = np.lexsort((pos, dist), axis=1)[:, :width]
        best_pos = np.take_along_axis(pos, keep, 1)
        best_dist = np.take_along_axis(dist, keep, 1)
    if best_pos.shape[1] < k:
        raise KmervaeError(f"only {best_pos.shape[1]} candidates for {k} neighbours")
    return best_pos[:, :k], best_dist[:, :k]


def blocks_of(vectors_at: Callable[[np.ndarray], np.ndarray], n: int, block: int = DEFAULT_BLOCK):
    """A ``pool_blocks`` callable over pool positions 0..n-1, reading ``vectors_at(positions)``."""

    def gen():
        for a in range(0, n, block):
            yield a, vectors_at(np.arange(a, min(a + block, n)))

    return gen


def knn_in_memory(queries, pool, k, metric="euclidean", exclude=None, block=DEFAULT_BLOCK):
    """exact_knn over an in-memory pool matrix."""
    return exact_knn(queries, blocks_of(lambda p: pool[p], len(pool), block), k, metric, exclude)


# -- outputs ---------------------------------------------------------------------------


def write_json(path: str | os.PathLike, data: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return Path(path)


def write_tsv(path: str | os.PathLike, header: list[str], rows) -> Path:
    """TSV with floats as repr-free %.6g (stable across runs)."""

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.6g}"
        return str(v)

    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(header) + "\n")
        fh.writelines("\t".join(fmt(v) for v in row) + "\n" for row in rows)
    return Path(path)


def limit_threads(threads: int | None):
    """Context manager capping BLAS/OpenMP threads (a no-op for None)."""
    from contextlib import nullcontext

    if not threads:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(int(threads))

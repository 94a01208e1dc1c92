"""The map's t-SNE at millions of points: FAISS neighbours, openTSNE affinities and optimisation.

openTSNE builds its own neighbour index (Annoy) silently; here FAISS finds the neighbours
(exact flat search up to :data:`EXACT_MAX` points, a seeded IVF index above), in float32,
query rows in chunks so progress shows. openTSNE turns them into the perplexity-based
affinities (sparse, k = 3 x perplexity per row, nothing O(n^2)) and optimises the map,
reporting every :data:`REPORT_EVERY` iterations. Cosine is the Euclidean distance of
L2-normalised rows (sqrt(2 - 2 cos), what openTSNE's Annoy measures for cosine).

:func:`place` adds points that were not fitted to a finished map with openTSNE's
``TSNEEmbedding.transform`` (its neighbours from the same FAISS index): each new point is
placed by its neighbours among the fitted ones, independently of the other new points.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..progress import progress

EXACT_MAX = 50_000  # exact flat search up to here; IVF above (exact costs n^2 d)
QUERY_CHUNK = 4096  # query rows per FAISS call (and per progress step)
IVF_POINTS_PER_LIST = 500  # nlist = n / this, at least 64
IVF_TRAIN_PER_LIST = 50  # k-means training points per list
IVF_NPROBE = 16
IVF_KMEANS_ITER = 10
REPORT_EVERY = 10  # t-SNE iterations between progress reports
PLACE_CHUNK = 100_000  # contigs placed per openTSNE transform call


def prepared(z: np.ndarray, metric: str) -> np.ndarray:
    """``z`` as C-contiguous float32; for cosine its rows scaled to unit length (zero rows stay 0).

    When ``z`` already is C-contiguous float32 it is reused, so cosine rows are scaled in place
    (the map passes rows freshly read from the store; 1 M x 384 is 1.5 GB not copied).
    """
    x = np.ascontiguousarray(z, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.divide(x, norms, out=x, where=norms > 0)
    return x


def _faiss(threads: int):
    from ..index import _faiss as load

    faiss = load()
    faiss.omp_set_num_threads(max(int(threads or 1), 1))
    return faiss


def build_index(x: np.ndarray, seed: int, threads: int):
    """An exact flat L2 index of ``x`` (n <= EXACT_MAX) or a seeded IVF-Flat index trained on a sample."""
    faiss = _faiss(threads)
    n, dim = x.shape
    if n <= EXACT_MAX:
        index = faiss.IndexFlatL2(dim)
    else:
        nlist = max(64, n // IVF_POINTS_PER_LIST)
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
        index.cp.seed = int(seed)
        index.cp.niter = IVF_KMEANS_ITER
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
        train = np.sort(
            np.random.default_rng(seed).choice(n, min(n, IVF_TRAIN_PER_LIST * nlist), replace=False)
        )
        with progress("t-SNE neighbours: IVF training", total=1, unit="index") as bar:
            index.train(x[train])
            bar.update(1)
        index.nprobe = IVF_NPROBE
    for a in range(0, n, 1_000_000):
        index.add(x[a : a + 1_000_000])
    return index


def search(index, q: np.ndarray, k: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest indexed rows of each row of ``q``: (int64 indices, float32 Euclidean distances)."""
    n = len(q)
    indices = np.empty((n, k), dtype=np.int64)
    squared = np.empty((n, k), dtype=np.float32)
    with progress(desc, total=n, unit="contigs") as bar:
        for a in range(0, n, QUERY_CHUNK):
            b = min(a + QUERY_CHUNK, n)
            squared[a:b], indices[a:b] = index.search(q[a:b], k)
            bar.update(b - a)
    missing = np.nonzero((indices < 0).any(axis=1))[0]
    if len(missing):  # IVF lists probed held fewer than k points: probe them all for those rows
        nprobe, index.nprobe = index.nprobe, index.nlist
        squared[missing], indices[missing] = index.search(q[missing], k)
        index.nprobe = nprobe
    return indices, np.sqrt(np.maximum(squared, 0), out=squared)


def without_self(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own index from its k + 1 neighbours (the last one if it is not among them)."""
    n, k1 = indices.shape
    own = indices == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    own[np.cumsum(own, axis=1) > 1] = False  # a row listed twice (never from FAISS) keeps one
    keep = ~own
    return indices[keep].reshape(n, k1 - 1), distances[keep].reshape(n, k1 - 1)


def _knn_index_class():
    from openTSNE.nearest_neighbors import KNNIndex

    class FaissNeighbours(KNNIndex):
        """openTSNE's neighbour interface over FAISS: ``build`` within the fitted rows, ``query`` new rows.

        ``data`` are the rows as :func:`prepared` leaves them (normalised for cosine), so the
        distance here is always Euclidean.
        """

        VALID_METRICS: ClassVar[list[str]] = ["euclidean"]
        found = None

        def build(self):
            if self.found is None:  # affinities() calls this first, so the phases report apart
                self.index = build_index(self.data, self.random_state, self.n_jobs)
                indices, distances = search(self.index, self.data, self.k + 1, "t-SNE neighbours")
                self.found = without_self(indices, distances)
            return self.found

        def query(self, query, k):
            return search(self.index, prepared(query, "euclidean"), k, "placing: neighbours")

    return FaissNeighbours


def neighbours(x: np.ndarray, perplexity: float, seed: int, threads: int):
    """The FAISS neighbour index of the prepared rows ``x``, built, with k = min(n - 1, 3 x perplexity)."""
    k = min(len(x) - 1, int(3 * perplexity))
    knn = _knn_index_class()(x, k, metric="euclidean", n_jobs=max(int(threads or 1), 1), random_state=seed)
    knn.build()
    return knn


def affinities(knn, perplexity: float):
    """openTSNE's perplexity-based affinities (sparse, symmetrised) from a built :func:`neighbours` index."""
    from openTSNE.affinity import PerplexityBasedNN

    with progress("t-SNE affinities", total=1, unit="matrix") as bar:
        aff = PerplexityBasedNN(perplexity=perplexity, knn_index=knn, n_jobs=knn.n_jobs)
        bar.update(1)
    return aff


class IterationProgress:
    """An openTSNE callback: advances a progress bar and shows the KL divergence."""

    def __init__(self, bar, every: int):
        self.bar, self.every, self.done = bar, every, 0

    def __call__(self, iteration, error, embedding) -> bool:
        self.bar.update(self.every)
        self.done += self.every
        self.bar.set_postfix_str(f"KL {error:.4f}")
        return False  # never stop early


def fit(x: np.ndarray, perplexity: float, n_iter: int, early_exaggeration_iter: int, seed: int, threads: int):
    """The fitted openTSNE map (a ``TSNEEmbedding``) of the prepared rows ``x``: PCA initialisation, seeded."""
    aff = affinities(neighbours(x, perplexity, seed, threads), perplexity)
    return optimise(x, aff, n_iter, early_exaggeration_iter, seed, threads)


def optimise(x: np.ndarray, aff, n_iter: int, early_exaggeration_iter: int, seed: int, threads: int):
    """openTSNE's optimisation of the map from ``aff`` (PCA of ``x`` as the start), with progress."""
    from openTSNE import TSNE

    threads = max(int(threads or 1), 1)
    total = int(n_iter) + int(early_exaggeration_iter)
    with progress("t-SNE optimisation", total=total, unit="iterations") as bar:
        callback = IterationProgress(bar, REPORT_EVERY)
        model = TSNE(
            n_iter=n_iter,
            early_exaggeration_iter=early_exaggeration_iter,
            n_jobs=threads,
            random_state=seed,
            callbacks=callback,
            callbacks_every_iters=REPORT_EVERY,
            verbose=False,
        )
        embedding = model.fit(x, affinities=aff)
        bar.update(total - callback.done)
    return embedding


def place(embedding, chunks, total: int) -> np.ndarray:
    """Coordinates of new rows on a fitted map: openTSNE's ``transform`` (seeded by the map) chunk by chunk.

    ``chunks`` yields prepared row blocks (as :func:`prepared` makes them); the result is
    float64, one row per new row, in order.
    """
    out = np.empty((total, 2), dtype=np.float64)
    done = 0
    # openTSNE's "auto" picks Barnes-Hut for a small chunk, which rebuilds the fitted map's
    # quad tree every iteration; the FFT grid is built once. The fit's progress callback stays out.
    embedding.gradient_descent_params.update(negative_gradient_method="fft", callbacks=None)
    with progress("placing the rest", total=total, unit="contigs", interval=30.0) as bar:
        for block in chunks:
            out[done : done + len(block)] = np.asarray(embedding.transform(block), dtype=np.float64)
            done += len(block)
            bar.update(len(block))
    return out

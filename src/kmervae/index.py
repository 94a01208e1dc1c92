"""FAISS indexes over embeddings, and deterministic nearest-neighbour queries.

An index ``INDEX.faiss`` comes with two sidecars written before it:
``INDEX.faiss.ids.tsv`` (header ``sample, id, length``, then the contig of FAISS row 0, 1, ...;
an older map with the single column ``id`` still reads, every sample "") and
``INDEX.faiss.json`` (metric, kind, parameters, n, latent_dim, model_config_hash, model_weights_hash,
the embeddings it was built from, and the ``calibration`` of its nearest-neighbour distances).
Loading checks all three agree. A contig is its (sample, ID) pair: assemblers name contigs
``NODE_1``, ``k141_1``, ... in every sample, so a bare ID can be ambiguous and ``sample:id`` names one.

Metrics: ``cosine`` indexes L2-normalised vectors with inner product and reports the
cosine distance 1 - cos; ``l2`` reports the Euclidean distance (FAISS' squared L2,
square-rooted). ``auto`` builds an exact flat index up to ``exact_max`` vectors; above
that, or when flat does not fit ``memory_gb``, the most accurate of IVF-flat, IVF-SQ8 and
IVF-PQ whose :func:`estimate_bytes` fits (:func:`plan_index`). IVF-SQ8 and IVF-PQ keep
only codes: their ``k * rerank`` best candidates are re-ranked with the exact vectors,
read chunk by chunk from the embeddings store the index was built from. Query results
are sorted by (distance, neighbour sample, neighbour ID), and the search widens until no
tie at the k-th distance can be cut off, so output does not depend on FAISS' internal order.
Distances are clipped at 0 (float32 rounding gives -1e-7 for identical vectors).

Calibration ("is anything in the index close?"): at build, a seeded sample of the indexed
vectors is queried against the index, each leaving itself out, and the quantiles of those
nearest-neighbour distances are stored. A query then reports its nearest distance, that
distance's quantile in the calibration distribution, and ``no_close_match`` when the
quantile is above ``no_match_quantile`` (default 0.99): its nearest neighbour is farther
than 99% of indexed contigs are from theirs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .io.atomic import FILE, atomic_path, prepare_output
from .embed import Embeddings, check_same_model
from .errors import KmervaeError
from .options import Option, defaults
from .progress import progress

log = logging.getLogger(__name__)

METRICS = ("cosine", "l2")
KINDS = ("auto", "flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq")
#: kinds whose FAISS codes are lossy: their candidates are re-ranked with the exact vectors
COMPRESSED = ("ivf-sq8", "ivf-pq")
IVF_KINDS = ("ivf", *COMPRESSED)
#: sub-vector widths tried by ``auto`` for IVF-PQ, finest (most accurate, largest) first
PQ_SUB_DIMS = (2, 4, 8, 16, 32)
PQ_NBITS = 8
#: re-rank factors: a compressed index re-ranks its ``k * rerank`` best candidates exactly
DEFAULT_RERANK = {"ivf-sq8": 4, "ivf-pq": 8}
#: queries per batch when re-ranking from the store: each batch reads every store chunk
#: holding a candidate once, so bigger batches share the reads
RERANK_QUERY_BATCH = 16384


@dataclass
class IndexParams:
    """Index choice and parameters (the config's ``index`` section maps onto these)."""

    metric: str = "cosine"
    kind: str = "auto"
    exact_max: int = 200_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int | None = None  # default: 4 * sqrt(n), at most n / 39
    ivf_nprobe: int | None = None  # default: nlist / 40, at least 16
    train_sample: int = 100_000  # at least 39 * nlist are used
    seed: int = 42
    memory_gb: float = 8.0
    pq_m: int | None = None  # default: the most sub-quantizers the memory budget allows
    rerank: int | None = None  # default: DEFAULT_RERANK of the kind
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise KmervaeError(f"unknown index metric {self.metric!r} (use {' or '.join(METRICS)})")
        if self.kind not in KINDS:
            raise KmervaeError(f"unknown index kind {self.kind!r} (use one of {', '.join(KINDS)})")
        if not self.memory_gb > 0:
            raise KmervaeError(f"the index memory budget must be above 0 GB, got {self.memory_gb}")
        for name in ("ivf_nlist", "ivf_nprobe", "pq_m"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KmervaeError(f"index parameter {name} must be at least 1, got {value}")
        if self.rerank is not None and self.rerank < 0:
            raise KmervaeError(f"the re-rank factor must be 0 (none) or more, got {self.rerank}")


@dataclass
class IndexPlan:
    """What ``build_index`` builds: the resolved kind and parameters, and its memory estimate."""

    kind: str
    nlist: int | None = None
    nprobe: int | None = None
    pq_m: int | None = None
    rerank: int = 0
    train_size: int = 0
    estimated_bytes: int = 0


def default_nlist(n: int) -> int:
    """4 sqrt(n) inverted lists, but at least 39 vectors per list (FAISS' k-means minimum)."""
    return max(1, min(int(4 * np.sqrt(max(n, 1))), max(n // 39, 1)))


def default_nprobe(nlist: int) -> int:
    """2.5 % of the lists, at least 16: the fraction that kept recall@50 >= 0.96 on real embeddings."""
    return min(nlist, max(16, -(-nlist // 40)))


def estimate_bytes(
    kind: str, n: int, dim: int, nlist: int = 0, pq_m: int = 0, id_chars: int = 0, hnsw_m: int = 32
) -> int:
    """Memory of a loaded index: the FAISS structure plus the ID list as `kmervae query` holds it.

    Per vector: flat 4d; HNSW 4d + 8M (level-0 links); IVF-flat 4d + 16 (list ID and the
    direct map); IVF-SQ8 d + 8; IVF-PQ m + 8 (8-bit codes). IVF adds 4 d nlist for the
    centroids (and PQ 4 d 256 for its codebooks). The ID list costs 4 L + 8 per vector
    (fixed-width text of the longest ID, L characters, and its sort order).
    """
    per_vector = {
        "flat": 4 * dim,
        "hnsw": 4 * dim + 8 * hnsw_m,
        "ivf": 4 * dim + 16,
        "ivf-sq8": dim + 8,
        "ivf-pq": (pq_m * PQ_NBITS) // 8 + 8,
    }[kind]
    fixed = 4 * dim * nlist if kind in IVF_KINDS else 0
    if kind == "ivf-pq":
        fixed += 4 * dim * 2**PQ_NBITS
    return int(n) * (per_vector + 4 * int(id_chars) + 8) + fixed


def _pq_choices(dim: int) -> list[int]:
    return [dim // s for s in PQ_SUB_DIMS if dim % s == 0 and dim // s >= 1]


def plan_index(n: int, dim: int, params: IndexParams, id_chars: int = 0) -> IndexPlan:
    """The kind and parameters for ``n`` vectors of width ``dim`` (no data needed).

    ``auto``: exact flat up to ``exact_max`` vectors if it fits ``memory_gb``; above that
    the most accurate of IVF-flat, IVF-SQ8, IVF-PQ (finest sub-quantizers first) whose
    ``estimate_bytes`` fits. An explicit kind is built whatever its size.
    """
    params.validate()
    budget = float(params.memory_gb) * 2**30
    nlist = int(params.ivf_nlist or default_nlist(n))

    def size(kind, m=0):
        return estimate_bytes(kind, n, dim, nlist, m, id_chars, params.hnsw_m)

    kind, pq_m = params.kind, params.pq_m
    if kind == "auto":
        if n <= params.exact_max and size("flat") <= budget:
            kind = "flat"
        else:
            kind = next((c for c in ("ivf", "ivf-sq8") if size(c) <= budget), "ivf-pq")
    if kind == "ivf-pq" and pq_m is None:
        choices = _pq_choices(dim)
        fits = [m for m in choices if size("ivf-pq", m) <= budget]
        if not fits and params.kind == "auto":
            raise KmervaeError(
                f"{n} vectors of width {dim} need at least {size('ivf-pq', choices[-1]) / 2**30:.3g} GB "
                f"as the smallest IVF-PQ index, above the memory budget of {params.memory_gb} GB: "
                "raise --memory-gb (index.memory_gb)"
            )
        pq_m = (fits or choices[-1:])[0]
    if kind == "ivf-pq" and dim % pq_m:
        raise KmervaeError(f"IVF-PQ needs the width {dim} to be a multiple of --pq-m, got {pq_m}")
    plan = IndexPlan(kind=kind, estimated_bytes=size(kind, pq_m or 0))
    if kind in IVF_KINDS:
        plan.nlist = nlist
        plan.nprobe = int(params.ivf_nprobe or default_nprobe(nlist))
        plan.train_size = min(n, max(int(params.train_sample), 39 * nlist))
    if kind == "ivf-pq":
        plan.pq_m = int(pq_m)
        plan.train_size = min(n, max(plan.train_size, 39 * 2**PQ_NBITS))
    if kind in COMPRESSED:
        plan.rerank = int(DEFAULT_RERANK[kind] if params.rerank is None else params.rerank)
    return plan


def sidecar_paths(index_path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(index_path)
    return p.with_name(p.name + ".ids.tsv"), p.with_name(p.name + ".json")


def _faiss():
    # faiss logs every CPU-variant it tries at INFO; keep the user's log for kmervae
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous, L2-normalised for cosine (zero vectors stay zero)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x /= np.where(norms == 0, 1.0, norms)
    return x


def to_distance(raw: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores → reported distances (cosine: 1 - ip, clipped at 0; l2: sqrt of squared L2)."""
    if metric == "cosine":
        return np.maximum(1.0 - raw, 0).astype(np.float32)
    return np.sqrt(np.maximum(raw, 0)).astype(np.float32)


def make_index(
    dim: int,
    n: int,
    params: IndexParams,
    train_vectors: np.ndarray | None = None,
    plan: IndexPlan | None = None,
):
    """An empty FAISS index for ``n`` vectors of width ``dim`` (IVF kinds trained on ``train_vectors``)."""
    faiss = _faiss()
    plan = plan or plan_index(n, dim, params)
    ip = params.metric == "cosine"
    faiss_metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
    if plan.kind == "flat":
        return faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
    if plan.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(params.hnsw_m), faiss_metric)
        index.hnsw.efConstruction = int(params.ef_construction)
        index.hnsw.efSearch = int(params.ef_search)
        return index
    nlist = plan.nlist
    quantizer = faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
    if plan.kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
    elif plan.kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss_metric
        )
    else:
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, int(plan.pq_m), PQ_NBITS, faiss_metric)
        index.pq.cp.seed = int(params.seed)
        # FAISS' k-means is slow in a sub-quantizer's few dimensions: 64 points per code word
        # (16,384) and 15 iterations train the codebooks well enough for a re-ranked index
        index.pq.cp.max_points_per_centroid = 64
        index.pq.cp.niter = 15
    index.cp.seed = int(params.seed)
    if train_vectors is None or len(train_vectors) < nlist:
        raise KmervaeError(f"an IVF index with {nlist} lists needs at least {nlist} training vectors")
    index.train(train_vectors)
    index.nprobe = int(plan.nprobe)
    return index


def _longest_id(emb: Embeddings, chunk_rows: int) -> int:
    """Characters of the longest ID (what the ID list costs in memory), read chunk by chunk."""
    return max((emb.ids(a, b).dtype.itemsize // 4 for a, b in emb.chunks(chunk_rows)), default=0)


def _train_sample(emb: Embeddings, plan: IndexPlan, params: IndexParams) -> np.ndarray:
    """``plan.train_size`` rows drawn with ``params.seed``, read chunk by chunk and prepared."""
    rng = np.random.default_rng(params.seed)
    rows = np.sort(rng.choice(emb.n, size=plan.train_size, replace=False))
    return prepare(emb.take(rows), params.metric)


def _plan_params(plan: IndexPlan, memory_gb: float) -> dict:
    """The resolved choice, as recorded in the sidecar's ``params``."""
    out = {"memory_gb": memory_gb, "estimated_bytes": plan.estimated_bytes}
    if plan.nlist is not None:
        out.update(ivf_nlist=plan.nlist, ivf_nprobe=plan.nprobe, train_size=plan.train_size)
    if plan.pq_m is not None:
        out.update(pq_m=plan.pq_m, pq_nbits=PQ_NBITS)
    if plan.kind in COMPRESSED:
        out["rerank"] = plan.rerank
    return out


def build_index(
    embeddings_path: str | os.PathLike,
    out: str | os.PathLike,
    params: IndexParams | None = None,
    threads: int | None = None,
    chunk_rows: int = 65536,
) -> dict:
    """Build and save an index over an embeddings store; returns the sidecar metadata.

    IVF kinds are trained on a seeded sample; vectors are added ``chunk_rows`` at a time
    from the store, so memory stays near the index's own size.
    """
    params = params or IndexParams()
    params.validate()
    for path in (out, *sidecar_paths(out)):
        prepare_output(path, FILE)  # refuse a directory in the way before building, not after
    faiss = _faiss()
    if threads:
        faiss.omp_set_num_threads(int(threads))
    emb = Embeddings(embeddings_path)
    if emb.n == 0:
        raise KmervaeError(f"{embeddings_path}: no embeddings to index")
    plan = plan_index(emb.n, emb.latent_dim, params, _longest_id(emb, chunk_rows))
    kind = plan.kind
    log.info(
        "index: %s of %d x %d, about %.2f GB (budget %s GB)%s",
        kind,
        emb.n,
        emb.latent_dim,
        plan.estimated_bytes / 2**30,
        params.memory_gb,
        f", nlist {plan.nlist}, nprobe {plan.nprobe}, trained on {plan.train_size}" if plan.nlist else "",
    )
    train = _train_sample(emb, plan, params) if kind in IVF_KINDS else None
    index = make_index(emb.latent_dim, emb.n, params, train, plan)
    del train
    with progress("index", total=emb.n, unit="vectors") as bar:
        for start, stop in emb.chunks(chunk_rows):
            index.add(prepare(emb.z_mean(start, stop), params.metric))
            bar.update(stop - start)
    meta = {
        "format": "kmervae-index",
        "format_version": 1,
        "metric": params.metric,
        "kind": kind,
        "params": {k: v for k, v in asdict(params).items() if k not in ("metric", "kind", "extra")},
        "n": int(index.ntotal),
        "latent_dim": emb.latent_dim,
        "model_config_hash": emb.model_config_hash,
        "model_weights_hash": emb.model_weights_hash,
        "embeddings": str(embeddings_path),
    }
    meta["params"].update(_plan_params(plan, params.memory_gb))
    meta["calibration"] = calibrate(index, emb, params.metric, params.seed, rerank=meta["params"].get("rerank") or 0)
    ids_path, json_path = sidecar_paths(out)
    write_id_map(ids_path, emb, chunk_rows)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    with atomic_path(out) as tmp:
        faiss.write_index(index, str(tmp))
    return meta


def write_id_map(ids_path: Path, emb: Embeddings, chunk_rows: int = 65536) -> None:
    """The ``.ids.tsv`` sidecar: header ``sample, id, length``, one contig per FAISS row."""
    with atomic_path(ids_path) as tmp, open(tmp, "w") as fh:
        fh.write("sample\tid\tlength\n")
        for start, stop in emb.chunks(chunk_rows):
            rows = zip(emb.samples(start, stop), emb.ids(start, stop), emb.lengths(start, stop))
            fh.writelines(f"{s}\t{i}\t{int(n)}\n" for s, i, n in rows)


#: quantile levels of the calibration: every percent, and 99.5% and 99.9%
CALIBRATION_LEVELS = tuple(sorted({*(i / 100 for i in range(101)), 0.995, 0.999}))
#: indexed vectors sampled (seeded) for the calibration
CALIBRATION_SAMPLE = 10_000
#: the quantiles shown by name in the sidecar
SHOWN_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def calibrate(
    index, emb: Embeddings, metric: str, seed: int, size: int = CALIBRATION_SAMPLE, rerank: int = 0
) -> dict | None:
    """Nearest-neighbour distances of a seeded sample of indexed vectors (each leaving itself
    out), as quantiles: ``levels`` and ``distances`` (``np.quantile``, linear) and the named
    ``quantiles`` 50/90/95/99/99.9. None for an index of one vector (no neighbour). A
    re-ranked index (``rerank`` > 0) is calibrated on exact distances of its best candidates,
    the distances its queries report."""
    n = int(index.ntotal)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(int(size), n), replace=False)).astype(np.int64)
    nearest = np.empty(len(rows), dtype=np.float64)
    for a in range(0, len(rows), 4096):
        part = rows[a : a + 4096]
        x = prepare(emb.take(part), metric)
        raw, labels = index.search(x, min(n, 2 + 2 * rerank))
        found = exact_distances(emb, x, labels, metric) if rerank else to_distance(raw, metric)
        dist = np.where(labels == part[:, None], np.inf, found)
        dist[labels < 0] = np.inf
        nearest[a : a + len(part)] = dist.min(axis=1)
    nearest = nearest[np.isfinite(nearest)]
    distances = np.quantile(nearest, CALIBRATION_LEVELS)
    return {
        "sample": int(len(rows)),
        "seed": int(seed),
        "levels": [float(q) for q in CALIBRATION_LEVELS],
        "distances": [float(d) for d in distances],
        "quantiles": {f"{100 * q:g}": float(np.quantile(nearest, q)) for q in SHOWN_QUANTILES},
    }


def _read_meta(json_path: Path) -> dict:
    """The ``.json`` sidecar, checked for what loading needs (metric and n)."""
    try:
        meta = json.loads(json_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KmervaeError(f"{json_path}: not valid JSON ({exc}); rebuild the index") from None
    if not isinstance(meta, dict) or meta.get("format") != "kmervae-index":
        raise KmervaeError(f"{json_path}: not the metadata of a kmervae index (no format 'kmervae-index')")
    if meta.get("metric") not in METRICS or not isinstance(meta.get("n"), int):
        raise KmervaeError(
            f"{json_path}: the index metadata has metric {meta.get('metric')!r} and n {meta.get('n')!r} "
            f"(need one of {', '.join(METRICS)} and a count); rebuild the index"
        )
    return meta


def _read_faiss(faiss, path: Path):
    """The FAISS index file; a truncated or foreign file is one error naming it."""
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:  # faiss reports every unreadable file as RuntimeError
        detail = re.search(r"\.cpp:\d+: (?:Error: '.*' failed: )?(.*)", str(exc))
        reason = detail.group(1).strip() if detail else "unreadable"
        if "read error" in reason:
            reason = "the file ends early"
        raise KmervaeError(
            f"{path}: not a readable FAISS index, truncated or damaged ({reason}); "
            "rebuild it with `kmervae index`"
        ) from None


def _read_ids(ids_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The ``.ids.tsv`` sidecar as (samples, ids, lengths or None), one row per FAISS row.

    Header ``sample, id, length`` (or ``sample, id``); an older map with the header ``id`` reads
    with every sample "" and no lengths."""
    try:
        lines = ids_path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise KmervaeError(f"{ids_path}: not a text ID list ({exc}); rebuild the index") from None
    if lines[-1] == "":
        lines.pop()
    header, body = lines[0], lines[1:]
    if header == "id":
        ids = np.array(body, dtype=object).astype(str)
        return np.full(len(ids), "", dtype=object).astype(str), ids, None
    if header not in ("sample\tid", "sample\tid\tlength"):
        raise KmervaeError(
            f"{ids_path}: line 1 should be the header 'sample<TAB>id<TAB>length' (or 'id'), "
            f"found {header[:40]!r}"
        )
    width = header.count("\t") + 1
    fields = [line.split("\t") for line in body]
    bad = next((n for n, f in enumerate(fields) if len(f) != width), None)
    if bad is not None:
        raise KmervaeError(
            f"{ids_path}: line {bad + 2} has {len(fields[bad])} fields, not {width}; rebuild the index"
        )
    columns = list(zip(*fields)) if fields else [()] * width
    samples = np.array(columns[0], dtype=object).astype(str)
    ids = np.array(columns[1], dtype=object).astype(str)
    lengths = np.array(columns[2], dtype=np.int64) if width == 3 else None
    return samples, ids, lengths


def contig_name(sample: str, contig_id: str) -> str:
    """``sample:id`` (the bare ID when the sample is unknown)."""
    return f"{sample}:{contig_id}" if sample else str(contig_id)


class LoadedIndex:
    """A FAISS index with its ID map and metadata; ``search`` returns ranked, tie-broken results."""

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        nprobe: int | None = None,
        rerank: int | None = None,
        rerank_from: str | os.PathLike | None = None,
    ):
        """``nprobe`` and ``rerank`` override the IVF lists searched and the re-rank factor of a
        compressed index (0: its approximate distances); ``rerank_from`` the embeddings store
        re-ranking reads (default: the one the index was built from, named in the sidecar)."""
        faiss = _faiss()
        if threads:
            faiss.omp_set_num_threads(int(threads))
        self.path = Path(path)
        ids_path, json_path = sidecar_paths(self.path)
        for p in (self.path, ids_path, json_path):
            if not p.exists():
                raise KmervaeError(
                    f"{p}: missing (an index is INDEX.faiss with .ids.tsv and .json beside it)"
                )
        self.meta = _read_meta(json_path)
        self.metric = self.meta["metric"]
        self.index = _read_faiss(faiss, self.path)
        self.samples, self.ids, self.lengths = _read_ids(ids_path)
        if not (self.index.ntotal == len(self.ids) == self.meta["n"]):
            raise KmervaeError(
                f"{self.path}: the index holds {self.index.ntotal} vectors but {ids_path} lists {len(self.ids)} "
                f"and {json_path} says {self.meta['n']}: rebuild the index"
            )
        self.dim = int(self.index.d)
        self.model_config_hash = self.meta.get("model_config_hash")
        self.model_weights_hash = self.meta.get("model_weights_hash")
        self.calibration = self.meta.get("calibration")
        self._order = None  # rows sorted by (ID, sample), for lookups by name
        if self.meta.get("kind") == "ivf":
            self.index.make_direct_map()
        self._setup_search(nprobe, rerank, rerank_from)

    def _setup_search(self, nprobe, rerank, rerank_from) -> None:
        self.kind = self.meta.get("kind")
        if nprobe is not None:
            if int(nprobe) < 1:
                raise KmervaeError(f"--nprobe must be at least 1, got {nprobe}")
            if hasattr(self.index, "nprobe"):
                self.index.nprobe = int(nprobe)
        if rerank is not None and int(rerank) < 0:
            raise KmervaeError(f"--rerank must be 0 (none) or more, got {rerank}")
        recorded = (self.meta.get("params") or {}).get("rerank", DEFAULT_RERANK.get(self.kind, 0))
        self.rerank = int(recorded if rerank is None else rerank) if self.kind in COMPRESSED else 0
        self._store_path = rerank_from if rerank_from is not None else self.meta.get("embeddings")
        self._store = None
        self._direct_map = self.kind not in COMPRESSED  # flat and HNSW reconstruct as they are
        #: queries per batch that `query_index` uses (re-ranking shares store reads per batch)
        self.query_batch = RERANK_QUERY_BATCH if self.rerank else 0

    def rerank_store(self) -> Embeddings:
        """The embeddings store re-ranking reads, checked to be the one the index holds."""
        if self._store is None:
            path, json_path = self._store_path, sidecar_paths(self.path)[1]
            if not path or not Path(path).exists():
                raise KmervaeError(
                    f"{self.path}: re-ranking reads the exact vectors from the embeddings store {path} "
                    f"(named in {json_path}), which is missing; give --rerank-from EMB.zarr, or --rerank 0 "
                    "for the index's approximate distances"
                )
            emb = Embeddings(path)
            same = emb.n == self.n and emb.latent_dim == self.dim
            same = same and (emb.model_config_hash or None) == (self.model_config_hash or None)
            same = same and (emb.model_weights_hash or None) == (self.model_weights_hash or None)
            if same:  # the ends of the ID list too: a cheap check of the row order
                same = list(emb.ids(0, 1)) == [self.ids[0]] and list(emb.ids(self.n - 1)) == [self.ids[-1]]
            if not same:
                raise KmervaeError(
                    f"{path}: not the embeddings {self.path} was built from ({emb.n} x {emb.latent_dim} "
                    f"vectors, the index {self.n} x {self.dim}, or other IDs or model); give --rerank-from "
                    "the store the index was built from"
                )
            self._store = emb
        return self._store

    @property
    def n(self) -> int:
        return int(self.index.ntotal)

    def _rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) of each ID in the rows sorted by (ID, sample): 8 bytes per row, no dict of IDs."""
        if self._order is None:
            self._order = np.lexsort((self.samples, self.ids))
        ids = np.asarray(ids, dtype=str)
        lo = np.searchsorted(self.ids, ids, side="left", sorter=self._order)
        return lo, np.searchsorted(self.ids, ids, side="right", sorter=self._order)

    def positions(self, queries) -> np.ndarray:
        """Row positions of contigs named ``sample:id`` or by a bare ID.

        ``sample:id`` is tried first (an ID may hold a colon); a bare ID must be in one sample
        only: in several it is one error listing them. An unknown contig is an error naming it.
        """
        queries = [str(q) for q in queries]
        if not queries:
            return np.empty(0, dtype=np.int64)
        parts = [q.partition(":") for q in queries]
        lo, hi = self._rows_of(queries)
        rest_lo, rest_hi = self._rows_of([rest if sep else "" for _, sep, rest in parts])
        out = np.empty(len(queries), dtype=np.int64)
        for n, (query, (sample, sep, _)) in enumerate(zip(queries, parts)):
            rows = self._order[rest_lo[n] : rest_hi[n]] if sep else ()
            named = [p for p in rows if self.samples[p] == sample]
            if named:
                out[n] = named[0]
                continue
            rows = self._order[lo[n] : hi[n]]
            if len(rows) == 0:
                raise KmervaeError(
                    f"{self.path}: query {query!r} is not in the index "
                    f"({self.n} contigs; name one as ID or SAMPLE:ID)"
                )
            if len(rows) > 1:
                samples = sorted({str(self.samples[p]) for p in rows})
                raise KmervaeError(
                    f"{self.path}: query ID {query!r} is ambiguous, in {len(samples)} samples "
                    f"({', '.join(repr(s) for s in samples[:10])}{', ...' if len(samples) > 10 else ''}): "
                    f"name one as SAMPLE:ID, e.g. {samples[0]}:{query}"
                )
            out[n] = rows[0]
        return out

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Stored (prepared) vectors at row positions; a re-ranked index reads them from its store."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.rerank:
            return prepare(self.rerank_store().take(positions), self.metric)
        if not self._direct_map:  # compressed codes without re-ranking: decoded, approximate
            self.index.make_direct_map()
            self._direct_map = True
        return (
            np.vstack([self.index.reconstruct(int(p)) for p in positions])
            if len(positions)
            else np.empty((0, self.dim), dtype=np.float32)
        )

    def vector_range(self, start: int, stop: int) -> np.ndarray:
        """Stored (prepared) vectors of rows [start, stop); a re-ranked index reads them from its store."""
        if self.rerank:
            return prepare(self.rerank_store().z_mean(int(start), int(stop)), self.metric)
        return np.asarray(self.index.reconstruct_n(int(start), int(stop - start)), dtype=np.float32)

    def check_queries(self, vectors: np.ndarray, source: str, model_config_hash: str | None = None) -> None:
        check_same_model(model_config_hash, source, self.model_config_hash, str(self.path))
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            width = vectors.shape[1] if vectors.ndim == 2 else vectors.shape
            raise KmervaeError(
                f"{source}: query vectors have width {width} but the index {self.path} has {self.dim}"
            )

    def search(self, vectors: np.ndarray, k: int, exclude: np.ndarray | None = None):
        """k nearest (positions, distances) per query, sorted by (distance, sample, ID).

        ``exclude`` gives, per query, an index row to leave out (the query itself), or -1.
        The FAISS search widens until the k-th distance is not tied with the last one
        returned, so ties are broken by (sample, ID), not by FAISS' order.
        """
        k = int(k)
        if k < 1:
            raise KmervaeError(f"k must be at least 1, got {k}")
        x = prepare(vectors, self.metric)
        if not self.rerank:
            return self._search(x, k, exclude)
        pos, _ = self._search(x, max(k, min(k * self.rerank, self.n)), exclude)
        return self._reranked(x, pos, k)

    def _reranked(self, x: np.ndarray, pos: np.ndarray, k: int):
        """The k best candidates by exact distance (read from the store), ties by (sample, ID)."""
        dist = exact_distances(self.rerank_store(), x, pos, self.metric)
        order = np.argsort(dist, axis=1, kind="stable")
        ranked = np.take_along_axis(dist, order, 1)
        tied = (ranked[:, 1:] == ranked[:, :-1]) & np.isfinite(ranked[:, 1:])
        for row in np.flatnonzero(tied.any(axis=1)):
            lab = np.maximum(pos[row], 0)
            order[row] = np.lexsort((self.ids[lab], self.samples[lab], dist[row]))
        order = order[:, :k]
        return np.take_along_axis(pos, order, 1), np.take_along_axis(dist, order, 1)

    def _search(self, x: np.ndarray, k: int, exclude: np.ndarray | None):
        """FAISS' k best per query by its own distances, ties by ID (widening as needed)."""
        nq = len(x)
        exclude = np.full(nq, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
        out_pos = np.full((nq, k), -1, dtype=np.int64)
        out_dist = np.full((nq, k), np.inf, dtype=np.float32)
        todo = np.arange(nq)
        width = min(k + 1 + 8, self.n)
        while len(todo):
            raw, labels = self.index.search(x[todo], width)
            keep = (labels >= 0) & (labels != exclude[todo, None])
            dist = np.where(keep, to_distance(raw, self.metric), np.inf)
            order = np.argsort(dist, axis=1, kind="stable")
            ranked = np.take_along_axis(dist, order, 1)
            count = keep.sum(axis=1)
            # complete when everything was returned, or when something farther than the k-th
            # neighbour was returned (so nothing unreturned can tie with it), or when an IVF
            # index ran out of vectors in the lists it probes (-1 labels)
            farthest = np.where(keep, dist, -np.inf).max(axis=1)
            beyond = (count > k) & (ranked[:, min(k, width) - 1] < farthest)
            complete = (width >= self.n) | (labels < 0).any(axis=1) | beyond
            top = min(k, width)
            head = ranked[:, : top + 1]
            tied = ((head[:, 1:] == head[:, :-1]) & np.isfinite(head[:, 1:])).any(axis=1)
            for row in np.flatnonzero(complete):
                q = todo[row]
                if tied[row]:  # equal distances: by (sample, ID), not in FAISS' order
                    lab = np.maximum(labels[row], 0)
                    order[row] = np.lexsort((self.ids[lab], self.samples[lab], dist[row]))
                n_found = min(top, int(count[row]))
                out_pos[q, :n_found] = labels[row, order[row, :n_found]]
                out_dist[q, :n_found] = dist[row, order[row, :n_found]]
            todo = todo[~complete]
            width = min(width * 2, self.n)
        return out_pos, out_dist

    def nearest_quantile(self, distances: np.ndarray) -> np.ndarray:
        """Quantile of each nearest distance in the calibration distribution (NaN without one)."""
        d = np.asarray(distances, dtype=np.float64)
        if not self.calibration:
            return np.full(d.shape, np.nan)
        levels, at = self.calibration["levels"], self.calibration["distances"]
        return np.where(np.isfinite(d), np.interp(d, at, levels, left=0.0, right=1.0), np.nan)

    def no_match_distance(self, quantile: float) -> float:
        """The calibration distance at ``quantile``: a nearest neighbour farther is no close match."""
        q = float(quantile)
        if not 0 < q < 1:
            raise KmervaeError(f"--no-match-quantile must be between 0 and 1 (exclusive), got {q}")
        if not self.calibration:
            return np.inf
        return float(np.interp(q, self.calibration["levels"], self.calibration["distances"]))


def exact_distances(emb: Embeddings, x: np.ndarray, pos: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances of prepared queries ``x`` to their candidate rows ``pos`` (-1: none, inf).

    From an uncompressed store (what `embed` writes) only the candidates' rows are read,
    through memory maps, 8,192 pairs at a time; from a compressed one, each chunk holding a
    candidate is decoded once. Memory is one step's rows (or one chunk) plus the distances,
    however large the store. (Reading 8 neighbouring chunks at once was no faster here and
    peaked 200 MB higher.)
    """
    nq, width = pos.shape
    out = np.full(nq * width, np.inf, dtype=np.float32)
    flat = pos.ravel()
    pairs = np.flatnonzero(flat >= 0)
    pairs = pairs[np.argsort(flat[pairs], kind="stable")]
    rows = flat[pairs]
    if emb.row_reader is not None:
        for s in range(0, len(rows), 8192):  # 8,192 pairs a step: gathers of 12 MB at d = 384
            e = min(s + 8192, len(rows))
            out[pairs[s:e]] = _distances(emb.row_reader(rows[s:e]), x[pairs[s:e] // width], metric)
        return out.reshape(nq, width)
    chunks, first = np.unique(rows // emb.chunk_rows, return_index=True)
    bounds = np.r_[first, len(rows)]
    for c, a, b in zip(chunks, bounds[:-1], bounds[1:]):
        lo = int(c) * emb.chunk_rows
        block = emb.z_mean(lo, lo + emb.chunk_rows)
        for s in range(a, b, 8192):  # 8,192 pairs a step: gathers of 12 MB at d = 384
            e = min(s + 8192, b)
            out[pairs[s:e]] = _distances(block[rows[s:e] - lo], x[pairs[s:e] // width], metric)
    return out.reshape(nq, width)


def _distances(v: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distances of raw vectors ``v`` to prepared queries ``q``."""
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", v, v))
        return np.maximum(1.0 - np.einsum("ij,ij->i", v, q) / np.where(norms == 0, 1.0, norms), 0)
    return np.sqrt(np.maximum(np.einsum("ij,ij->i", v - q, v - q), 0))


#: the first columns of neighbours.tsv; ``neighbour_length`` follows when the ID map has lengths,
#: ``query_label`` and ``neighbour_label`` with a labels table, and ``nearest_distance``,
#: ``nearest_quantile``, ``no_close_match`` when the index is calibrated
NEIGHBOUR_COLUMNS = ("query_sample", "query_id", "rank", "neighbour_sample", "neighbour_id", "distance")
MATCH_COLUMNS = ("nearest_distance", "nearest_quantile", "no_close_match")


def neighbour_columns(index: LoadedIndex, labelled: bool = False) -> list[str]:
    """The columns of a neighbours table from ``index`` (``labelled``: with a labels table)."""
    extra = ["neighbour_length"] if index.lengths is not None else []
    extra += ["query_label", "neighbour_label"] if labelled else []
    return [*NEIGHBOUR_COLUMNS, *extra, *(MATCH_COLUMNS if index.calibration else ())]


def neighbour_rows(index: LoadedIndex, batches, no_match_quantile: float = 0.99, label_of=None):
    """One tuple per neighbour (see :func:`neighbour_columns`) from batches of
    (query samples, query ids, positions, distances); ``label_of``: contig ID → label ("" unknown)."""
    lengths, calibrated = index.lengths, bool(index.calibration)
    far = index.no_match_distance(no_match_quantile)
    for q_samples, q_ids, positions, distances in batches:
        nearest = np.asarray(distances, dtype=np.float64)[:, 0] if len(distances) else np.empty(0)
        quantile = index.nearest_quantile(nearest)
        for n, (s, q, pos, dist) in enumerate(zip(q_samples, q_ids, positions, distances)):
            match = (float(nearest[n]), float(quantile[n]), bool(nearest[n] > far)) if calibrated else ()
            for rank, (p, d) in enumerate(zip(pos, dist), start=1):
                if p < 0:
                    break
                row = (str(s), str(q), rank, index.samples[p], index.ids[p], float(d))
                row += (int(lengths[p]),) if lengths is not None else ()
                if label_of is not None:
                    row += (label_of.get(str(q), ""), label_of.get(index.ids[p], ""))
                yield row + match


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.7g}"
    return str(value)


def write_neighbours(
    path: str | os.PathLike, index: LoadedIndex, batches, no_match_quantile: float = 0.99, label_of=None
) -> int:
    """neighbours.tsv (columns of :func:`neighbour_columns`, rank 1 = nearest), streamed from
    batches of (query samples, query ids, positions, distances). Returns the rows written."""
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(neighbour_columns(index, label_of is not None)) + "\n")
        for row in neighbour_rows(index, batches, no_match_quantile, label_of):
            fh.write("\t".join(_cell(v) for v in row) + "\n")
            rows += 1
    return rows


#: where the queries come from (one of them, besides --fasta and --embeddings of the command)
QUERY_SOURCES = (
    Option("ids_file", None, help="contigs in the index, one ID or SAMPLE:ID a line", metavar="FILE"),
    Option(
        "all",
        False,
        help="every contig of the index against the index (all-vs-all, a chunk of queries at a time; "
        "default off)",
        action="store_true",
        flag="--all",
    ),
)

#: the settings of :func:`query_index` and their CLI flags (``kmervae query``)
QUERY_OPTIONS = (
    Option("k", 50, int, "neighbours per query", flag="-k"),
    Option("nprobe", None, int, "IVF lists searched per query (default: the index's)"),
    Option("rerank", None, int, "IVF-SQ8/PQ re-rank factor (default: the index's; 0 = approximate)"),
    Option(
        "rerank_from", None, help="store to re-rank from (default: the one indexed)", metavar="EMB.zarr"
    ),
    Option("weights", "best", help="checkpoint of --model", choices=("best", "final")),
    Option("threads", None, int, "FAISS and embedding threads"),
    Option(
        "device",
        "auto",
        help="where --fasta queries are embedded (default: CUDA if present)",
        choices=("auto", "cpu", "cuda"),
    ),
    Option(
        "min_length",
        None,
        int,
        "skip --fasta queries shorter than BP (default: the model's training floor, the length its "
        "training data was selected at); 0 queries every contig",
        metavar="BP",
    ),
    Option(
        "no_match_quantile",
        0.99,
        float,
        "flag no_close_match when a query's nearest distance is above this quantile of the index's own "
        "nearest-neighbour distances",
        metavar="Q",
    ),
    Option(
        "labels",
        None,
        help="a labels table (contig_id, genome, ... as `kmervae chop` writes): adds query_label and "
        "neighbour_label, looked up by contig ID",
        metavar="LABELS.tsv",
    ),
    Option("label_column", "genome", help="the labels table's column to use"),
)
QUERY_DEFAULTS = defaults(QUERY_OPTIONS)


def read_ids_file(path: str | os.PathLike) -> list[str]:
    """Query names, one ``id`` or ``sample:id`` a line (blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KmervaeError(f"{path}: no such IDs file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise KmervaeError(f"{path}: not a text file of IDs ({exc})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise KmervaeError(f"{path}: no IDs in the file")
    return names


def _id_batches(index: LoadedIndex, names: list[str], k: int, batch_size: int):
    index.positions(names)  # every name resolves before any output
    for a in range(0, len(names), batch_size):
        pos = index.positions(names[a : a + batch_size])
        yield index.samples[pos], index.ids[pos], *index.search(index.vectors(pos), k, exclude=pos)


def _all_batches(index: LoadedIndex, k: int, batch_size: int):
    for a in range(0, index.n, batch_size):
        b = min(a + batch_size, index.n)
        pos = np.arange(a, b, dtype=np.int64)
        yield index.samples[a:b], index.ids[a:b], *index.search(index.vector_range(a, b), k, exclude=pos)


def _embedding_batches(index: LoadedIndex, embeddings, k: int, batch_size: int):
    emb = Embeddings(embeddings)
    if emb.latent_dim != index.dim:
        raise KmervaeError(
            f"{embeddings}: embeddings have width {emb.latent_dim} but the index {index.path} has {index.dim}"
        )
    check_same_model(
        emb.model_config_hash, str(embeddings), index.model_config_hash, str(index.path),
        emb.model_weights_hash, index.model_weights_hash,
    )  # fmt: skip
    for a, b in emb.chunks(batch_size):
        yield emb.samples(a, b), emb.ids(a, b), *index.search(emb.z_mean(a, b), k)


def fasta_sample(path: str | os.PathLike) -> str:
    """The sample of new contigs from a FASTA: its file name without FASTA and compression suffixes."""
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".xz", ".fasta", ".fna", ".fa", ".fas", ".contigs"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def _fasta_batches(index: LoadedIndex, fasta, model_dir, k: int, weights, device, threads, min_length):
    if model_dir is None:
        raise KmervaeError("--fasta needs --model MODEL_DIR (the model the index was built from)")
    from .count import count_chunks
    from .embed import to_device
    from .kmers import Layout
    from .lengths import LengthGuard
    from .vae.files import load_model

    model = to_device(load_model(model_dir, weights=weights), device)
    check_same_model(
        model.config_hash, f"model {model_dir}", index.model_config_hash, str(index.path),
        model.weights_hash, index.model_weights_hash,
    )  # fmt: skip
    layout = Layout(tuple(model.input_ks))
    guard = LengthGuard(model.training_lengths, min_length, str(fasta[0]), skip_by_default=True)
    for path in fasta:
        sample = fasta_sample(path)
        for chunk_ids, lengths, counts in count_chunks([Path(path)], layout=layout, threads=threads or 1):
            if not (keep := guard.keep(lengths)).any():
                continue
            chunk_ids, lengths, counts = chunk_ids[keep], lengths[keep], counts[keep]
            z = model.embed(counts, layout, lengths=lengths)
            index.check_queries(np.asarray(z), f"model {model_dir}")
            yield np.full(len(chunk_ids), sample, dtype=object), chunk_ids, *index.search(z, k)
    guard.report()


def _open_for_query(index_path, k, threads, self_excluded: bool, sources: int, no_match_quantile: float,
                    search: dict):  # fmt: skip
    """The loaded index and k capped at its size (a warning says so); ``search``: nprobe and re-ranking."""
    if sources != 1:
        raise KmervaeError("give exactly one of --ids, --ids-file, --all, --fasta or --embeddings")
    index = LoadedIndex(index_path, threads=threads, **search)
    index.no_match_distance(no_match_quantile)  # a bad quantile fails before any work
    if not index.calibration:
        log.warning("%s has no calibration of its distances (built by an older kmervae): rebuild it to "
                    "get nearest_quantile and no_close_match", index_path)  # fmt: skip
    if int(k) > index.n:
        most = index.n - 1 if self_excluded else index.n  # a query by ID is left out of its own neighbours
        log.warning(
            "-k %d is more than the %d vectors in %s: k capped at %d neighbours per query",
            k, index.n, index_path, most,
        )  # fmt: skip
        k = index.n
    return index, int(k)


def _query(index_path, k, ids, ids_file, all, fasta, model_dir, embeddings, weights, threads, batch_size,
           device, min_length, no_match_quantile, nprobe=None, rerank=None, rerank_from=None):  # fmt: skip
    """(the loaded index, the batches of its answers) for :func:`query_index` and :func:`neighbours`."""
    names = list(ids or []) + (read_ids_file(ids_file) if ids_file else [])
    sources = sum((bool(ids), ids_file is not None, bool(all), bool(fasta), embeddings is not None))
    by_id = bool(names) or bool(all)
    search = {"nprobe": nprobe, "rerank": rerank, "rerank_from": rerank_from}
    index, k = _open_for_query(index_path, k, threads, by_id, sources, no_match_quantile, search)
    batch_size = max(batch_size, index.query_batch)  # a re-ranked query reads the store once a batch
    if names:
        batches = _id_batches(index, names, k, batch_size)
    elif all:
        batches = _all_batches(index, k, batch_size)
    elif embeddings is not None:
        batches = _embedding_batches(index, embeddings, k, batch_size)
    else:
        batches = _fasta_batches(index, fasta, model_dir, k, weights, device, threads, min_length)
    return index, batches


def query_index(
    index_path: str | os.PathLike,
    out: str | os.PathLike,
    k: int = QUERY_DEFAULTS["k"],
    nprobe: int | None = QUERY_DEFAULTS["nprobe"],
    rerank: int | None = QUERY_DEFAULTS["rerank"],
    rerank_from: str | os.PathLike | None = QUERY_DEFAULTS["rerank_from"],
    ids: list[str] | None = None,
    fasta: list[str | os.PathLike] | None = None,
    model_dir: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    weights: str = QUERY_DEFAULTS["weights"],
    threads: int | None = QUERY_DEFAULTS["threads"],
    batch_size: int = 1024,
    device: str = QUERY_DEFAULTS["device"],
    min_length: int | None = QUERY_DEFAULTS["min_length"],
    no_match_quantile: float = QUERY_DEFAULTS["no_match_quantile"],
    labels: str | os.PathLike | None = QUERY_DEFAULTS["labels"],
    label_column: str = QUERY_DEFAULTS["label_column"],
    ids_file: str | os.PathLike | None = None,
    all: bool = False,
) -> int:
    """Write the k nearest neighbours of the queries to ``out`` (neighbours.tsv); returns the rows.

    Exactly one source: ``ids`` (``id`` or ``sample:id``; a bare ID in several samples is an
    error naming them), ``ids_file`` (one a line), ``all`` (every indexed contig, in chunks
    of ``batch_size`` queries), ``fasta`` or ``embeddings``. Queries by ID (and ``all``)
    leave the query itself out of its own neighbours (other contigs with identical vectors
    stay). FASTA queries are embedded first with ``model_dir``, which must be the model
    the index was built from; those shorter than ``min_length`` (default: its training
    floor, :mod:`kmervae.lengths`) are skipped; their sample is the FASTA's file name.
    With a calibrated index each row also carries its query's nearest distance, that
    distance's quantile among the index's own nearest-neighbour distances and
    ``no_close_match`` (the quantile is above ``no_match_quantile``). With ``labels`` each row
    has the query's and the neighbour's label (column ``label_column``; "" when unlisted).
    """
    label_of = _labels(labels, label_column)
    index, batches = _query(
        index_path, k, ids, ids_file, all, fasta, model_dir, embeddings, weights, threads, batch_size,
        device, min_length, no_match_quantile, nprobe, rerank, rerank_from,
    )  # fmt: skip
    return write_neighbours(out, index, batches, no_match_quantile, label_of)


def _labels(labels, label_column: str) -> dict | None:
    if labels is None:
        return None
    from .evaluate.retrieval import read_labels

    return read_labels(labels, label_column)


def neighbours(index_path: str | os.PathLike, ids: list[str] | None = None, k: int = 10, **kwargs):
    """The neighbours of :func:`query_index` as a pandas DataFrame (same columns, same sources).

    ``kmervae.neighbours("i.faiss", ids=["A:NODE_1"], k=5)``; ``embeddings=``, ``fasta=`` with
    ``model_dir=``, ``ids_file=`` or ``all=True`` instead of ``ids``. Held in memory: for all-vs-all
    of a large index write a file with :func:`query_index` instead."""
    import pandas as pd

    options = {**QUERY_DEFAULTS, "batch_size": 1024, "ids_file": None, "all": False, "fasta": None,
               "model_dir": None, "embeddings": None, **kwargs, "k": k}  # fmt: skip
    label_of = _labels(options.pop("labels"), options.pop("label_column"))
    index, batches = _query(index_path, ids=ids, **options)
    columns = neighbour_columns(index, label_of is not None)
    rows = neighbour_rows(index, batches, options["no_match_quantile"], label_of)
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    return frame.astype({"rank": "int64", "distance": "float64"})

"""FAISS indexes over embeddings, and deterministic nearest-neighbour queries.

An index ``INDEX.faiss`` comes with two sidecars written before it:
``INDEX.faiss.ids.tsv`` (header ``id``, then the ID of FAISS row 0, 1, ...) and
``INDEX.faiss.json`` (metric, kind, parameters, n, latent_dim, model_config_hash, model_weights_hash,
the embeddings it was built from). Loading checks all three agree.

Metrics: ``cosine`` indexes L2-normalised vectors with inner product and reports the
cosine distance 1 - cos; ``l2`` reports the Euclidean distance (FAISS' squared L2,
square-rooted). ``auto`` builds an exact flat index up to ``exact_max`` vectors and an
HNSW index above it. Query results are sorted by (distance, neighbour ID), and the
search widens until no tie at the k-th distance can be cut off, so output does not
depend on FAISS' internal order.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import FILE, atomic_path, prepare_output
from .embed import Embeddings, check_same_model
from .errors import KmervaeError
from .options import Option, defaults
from .progress import progress

log = logging.getLogger(__name__)

METRICS = ("cosine", "l2")
KINDS = ("auto", "flat", "hnsw", "ivf")


@dataclass
class IndexParams:
    """Index choice and parameters (the config's ``index`` section maps onto these)."""

    metric: str = "cosine"
    kind: str = "auto"
    exact_max: int = 200_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int | None = None  # default: 4 * sqrt(n)
    ivf_nprobe: int = 32
    train_sample: int = 100_000
    seed: int = 42
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise KmervaeError(f"unknown index metric {self.metric!r} (use {' or '.join(METRICS)})")
        if self.kind not in KINDS:
            raise KmervaeError(f"unknown index kind {self.kind!r} (use one of {', '.join(KINDS)})")


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
    """FAISS scores → reported distances (cosine: 1 - ip; l2: sqrt of squared L2)."""
    if metric == "cosine":
        return (1.0 - raw).astype(np.float32)
    return np.sqrt(np.maximum(raw, 0)).astype(np.float32)


def resolve_kind(params: IndexParams, n: int) -> str:
    if params.kind != "auto":
        return params.kind
    return "flat" if n <= params.exact_max else "hnsw"


def make_index(dim: int, n: int, params: IndexParams, train_vectors: np.ndarray | None = None):
    """An empty FAISS index for ``n`` vectors of width ``dim`` (IVF is trained on ``train_vectors``)."""
    faiss = _faiss()
    kind = resolve_kind(params, n)
    ip = params.metric == "cosine"
    faiss_metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
    if kind == "flat":
        return faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(params.hnsw_m), faiss_metric)
        index.hnsw.efConstruction = int(params.ef_construction)
        index.hnsw.efSearch = int(params.ef_search)
        return index
    nlist = int(params.ivf_nlist or max(1, min(int(4 * np.sqrt(max(n, 1))), max(n // 39, 1))))
    quantizer = faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
    index.cp.seed = int(params.seed)
    if train_vectors is None or len(train_vectors) < nlist:
        raise KmervaeError(f"an IVF index with {nlist} lists needs at least {nlist} training vectors")
    index.train(train_vectors)
    index.nprobe = int(params.ivf_nprobe)
    return index


def build_index(
    embeddings_path: str | os.PathLike,
    out: str | os.PathLike,
    params: IndexParams | None = None,
    threads: int | None = None,
    chunk_rows: int = 65536,
) -> dict:
    """Build and save an index over an embeddings store; returns the sidecar metadata."""
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
    kind = resolve_kind(params, emb.n)
    train = None
    if kind == "ivf":
        rng = np.random.default_rng(params.seed)
        size = min(emb.n, int(params.train_sample))
        train = prepare(emb.take(np.sort(rng.choice(emb.n, size=size, replace=False))), params.metric)
    index = make_index(emb.latent_dim, emb.n, params, train)
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
    if kind == "ivf":
        meta["params"]["ivf_nlist"] = int(index.nlist)
    ids_path, json_path = sidecar_paths(out)
    with atomic_path(ids_path) as tmp, open(tmp, "w") as fh:
        fh.write("id\n")
        for start, stop in emb.chunks(chunk_rows):
            fh.writelines(f"{i}\n" for i in emb.ids(start, stop))
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    with atomic_path(out) as tmp:
        faiss.write_index(index, str(tmp))
    return meta


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


def _read_ids(ids_path: Path) -> np.ndarray:
    """The ``.ids.tsv`` sidecar: header ``id``, then one ID per FAISS row."""
    try:
        lines = ids_path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise KmervaeError(f"{ids_path}: not a text ID list ({exc}); rebuild the index") from None
    if lines[0] != "id":
        raise KmervaeError(f"{ids_path}: line 1 should be the header 'id', found {lines[0][:40]!r}")
    if lines[-1] == "":
        lines.pop()
    return np.array(lines[1:], dtype=object).astype(str)


class LoadedIndex:
    """A FAISS index with its ID map and metadata; ``search`` returns ranked, tie-broken results."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
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
        self.ids = _read_ids(ids_path)
        if not (self.index.ntotal == len(self.ids) == self.meta["n"]):
            raise KmervaeError(
                f"{self.path}: the index holds {self.index.ntotal} vectors but {ids_path} lists {len(self.ids)} "
                f"and {json_path} says {self.meta['n']}: rebuild the index"
            )
        self.dim = int(self.index.d)
        self.model_config_hash = self.meta.get("model_config_hash")
        self.model_weights_hash = self.meta.get("model_weights_hash")
        self._position = None
        if self.meta.get("kind") == "ivf":
            self.index.make_direct_map()

    @property
    def n(self) -> int:
        return int(self.index.ntotal)

    def positions(self, query_ids) -> np.ndarray:
        """Row positions of IDs in the index; an unknown ID is an error naming it."""
        if self._position is None:
            self._position = {i: p for p, i in enumerate(self.ids)}
        out = []
        for q in query_ids:
            p = self._position.get(str(q))
            if p is None:
                raise KmervaeError(f"{self.path}: query ID {q!r} is not in the index ({self.n} IDs)")
            out.append(p)
        return np.asarray(out, dtype=np.int64)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Stored (prepared) vectors at row positions."""
        positions = np.asarray(positions, dtype=np.int64)
        return (
            np.vstack([self.index.reconstruct(int(p)) for p in positions])
            if len(positions)
            else np.empty((0, self.dim), dtype=np.float32)
        )

    def check_queries(self, vectors: np.ndarray, source: str, model_config_hash: str | None = None) -> None:
        check_same_model(model_config_hash, source, self.model_config_hash, str(self.path))
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            width = vectors.shape[1] if vectors.ndim == 2 else vectors.shape
            raise KmervaeError(
                f"{source}: query vectors have width {width} but the index {self.path} has {self.dim}"
            )

    def search(self, vectors: np.ndarray, k: int, exclude: np.ndarray | None = None):
        """k nearest (positions, distances) per query, sorted by (distance, ID).

        ``exclude`` gives, per query, an index row to leave out (the query itself), or -1.
        The FAISS search widens until the k-th distance is not tied with the last one
        returned, so ties are broken by ID, not by FAISS' order.
        """
        k = int(k)
        if k < 1:
            raise KmervaeError(f"k must be at least 1, got {k}")
        x = prepare(vectors, self.metric)
        nq = len(x)
        exclude = np.full(nq, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
        out_pos = np.full((nq, k), -1, dtype=np.int64)
        out_dist = np.full((nq, k), np.inf, dtype=np.float32)
        todo = np.arange(nq)
        width = min(k + 1 + 8, self.n)
        while len(todo):
            raw, labels = self.index.search(x[todo], width)
            dist = to_distance(raw, self.metric)
            again = []
            for row, q in enumerate(todo):
                keep = (labels[row] >= 0) & (labels[row] != exclude[q])
                pos, d = labels[row][keep], dist[row][keep]
                # complete when everything was returned, or when something farther than the
                # k-th neighbour was returned (so nothing unreturned can tie with it)
                complete = width >= self.n or (len(pos) > k and np.sort(d)[k - 1] < d.max())
                if not complete:
                    again.append(q)
                    continue
                order = np.lexsort((self.ids[pos], d))[: min(k, len(pos))]
                out_pos[q, : len(order)] = pos[order]
                out_dist[q, : len(order)] = d[order]
            todo = np.asarray(again, dtype=np.int64)
            width = min(width * 2, self.n)
        return out_pos, out_dist


def write_neighbours(path: str | os.PathLike, index: LoadedIndex, batches) -> int:
    """neighbours.tsv: query, rank (1 = nearest), neighbour, distance, from batches of
    (query_ids, positions, distances). Returns the number of rows written."""
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("query\trank\tneighbour\tdistance\n")
        for query_ids, positions, distances in batches:
            for q, pos, dist in zip(query_ids, positions, distances):
                for rank, (p, d) in enumerate(zip(pos, dist), start=1):
                    if p < 0:
                        break
                    fh.write(f"{q}\t{rank}\t{index.ids[p]}\t{float(d):.7g}\n")
                    rows += 1
    return rows


#: the settings of :func:`query_index` and their CLI flags (``kmervae query``)
QUERY_OPTIONS = (
    Option("k", 50, int, "neighbours per query", flag="-k"),
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
)
QUERY_DEFAULTS = defaults(QUERY_OPTIONS)


def query_index(
    index_path: str | os.PathLike,
    out: str | os.PathLike,
    k: int = QUERY_DEFAULTS["k"],
    ids: list[str] | None = None,
    fasta: list[str | os.PathLike] | None = None,
    model_dir: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    weights: str = QUERY_DEFAULTS["weights"],
    threads: int | None = QUERY_DEFAULTS["threads"],
    batch_size: int = 1024,
    device: str = QUERY_DEFAULTS["device"],
    min_length: int | None = QUERY_DEFAULTS["min_length"],
) -> int:
    """Write the k nearest neighbours of the queries (exactly one of ids, fasta, embeddings).

    Queries by ``ids`` leave the query itself out of its own neighbours (other contigs with
    identical vectors stay). FASTA queries are embedded first with ``model_dir``, which
    must be the model the index was built from; those shorter than ``min_length`` (default:
    its training floor, :mod:`kmervae.lengths`) are skipped. Returns the rows written.
    """
    if sum((bool(ids), bool(fasta), embeddings is not None)) != 1:
        raise KmervaeError("give exactly one of --ids, --fasta or --embeddings")
    index = LoadedIndex(index_path, threads=threads)
    if int(k) > index.n:
        most = index.n - 1 if ids else index.n  # a query by ID is left out of its own neighbours
        log.warning(
            "-k %d is more than the %d vectors in %s: k capped at %d neighbours per query",
            k,
            index.n,
            index_path,
            most,
        )
        k = index.n

    def batches():
        if ids:
            for a in range(0, len(ids), batch_size):
                chunk = list(ids[a : a + batch_size])
                pos = index.positions(chunk)
                yield chunk, *index.search(index.vectors(pos), k, exclude=pos)
        elif embeddings is not None:
            emb = Embeddings(embeddings)
            if emb.latent_dim != index.dim:
                raise KmervaeError(
                    f"{embeddings}: embeddings have width {emb.latent_dim} but the index {index_path} has {index.dim}"
                )
            check_same_model(
                emb.model_config_hash, str(embeddings), index.model_config_hash, str(index_path),
                emb.model_weights_hash, index.model_weights_hash,
            )
            for a, b in emb.chunks(batch_size):
                yield emb.ids(a, b), *index.search(emb.z_mean(a, b), k)
        else:
            if model_dir is None:
                raise KmervaeError("--fasta needs --model MODEL_DIR (the model the index was built from)")
            from .count import count_chunks
            from .embed import to_device
            from .kmers import Layout
            from .lengths import LengthGuard
            from .model import load_model

            model = to_device(load_model(model_dir, weights=weights), device)
            check_same_model(
                model.config_hash, f"model {model_dir}", index.model_config_hash, str(index_path),
                model.weights_hash, index.model_weights_hash,
            )
            layout = Layout(tuple(model.input_ks))
            guard = LengthGuard(model.training_lengths, min_length, str(fasta[0]), skip_by_default=True)
            for chunk_ids, lengths, counts in count_chunks(
                [Path(p) for p in fasta], layout=layout, threads=threads or 1
            ):
                if not (keep := guard.keep(lengths)).any():
                    continue
                chunk_ids, lengths, counts = chunk_ids[keep], lengths[keep], counts[keep]
                z = model.embed(counts, layout, lengths=lengths)
                index.check_queries(np.asarray(z), f"model {model_dir}")
                yield chunk_ids, *index.search(z, k)
            guard.report()

    return write_neighbours(out, index, batches())

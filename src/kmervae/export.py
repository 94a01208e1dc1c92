"""`kmervae export`: embeddings as TSV, Parquet, NumPy or AnnData ``.h5ad`` for other tools.

Every format carries each contig's ``z_mean`` with its ID, and the table formats (TSV,
Parquet, the ``obs`` of ``.h5ad``) its annotations, in the embeddings' row order:

``id``, ``length``, ``sample`` and ``split`` (when the embeddings have them), ``gc``
(GC fraction from the 1-mers of the k-mer store the embeddings came from), ``label``
(a column of a labels TSV), ``tsne_x``/``tsne_y``/``map_cluster`` (a ``map.tsv`` of
``kmervae evaluate map``; contigs outside the map's sample are empty/NaN), then
``z_0`` … ``z_{d-1}``.

- **TSV** and **Parquet** (one row group per chunk) and **NumPy** (``OUT.npy`` float32
  N x d plus ``OUT.ids.txt``, one ID per line) stream chunk by chunk: memory is bounded by
  the chunk, plus the labels and map tables when given.
- **h5ad** (AnnData's on-disk format, written with h5py; read by ``anndata.read_h5ad``,
  scanpy and the scverse tools): ``obs`` holds the annotations (index: the IDs, made
  unique with the sample when needed), ``obsm["X_vae"]`` the ``z_mean`` matrix,
  ``obsm["X_tsne"]`` the map's coordinates, ``obsp["vae_distances"]`` the neighbours of a
  ``kmervae query`` TSV (sparse, ``uns["vae_neighbors"]`` describes it), ``uns["kmervae"]``
  the provenance; ``X`` is left out (``use_rep="X_vae"``). It is written chunk by chunk
  too, but holds the set of IDs (for unique obs names) and the neighbour matrix in memory.

Every file is written to a temporary sibling and renamed into place once complete; bad
input leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from .io.atomic import atomic_path
from .embed import Embeddings
from .errors import KmervaeError
from .kmers import Layout, gc_fraction
from .io.store import SPLITS, KmerStore

log = logging.getLogger(__name__)

FORMATS = ("tsv", "parquet", "npy", "h5ad")
SUFFIXES = {".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".h5ad": "h5ad"}
DEFAULT_CHUNK_ROWS = 65536
#: a neighbours table of an older kmervae (contigs by bare ID)
NEIGHBOUR_COLUMNS = ["query", "rank", "neighbour", "distance"]
#: the first columns of a `kmervae query` table (contigs by sample and ID)
SAMPLE_NEIGHBOUR_COLUMNS = [
    "query_sample", "query_id", "rank", "neighbour_sample", "neighbour_id", "distance"
]  # fmt: skip


def format_for(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given, else from the output's suffix."""
    if fmt:
        if fmt not in FORMATS:
            raise KmervaeError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
        return fmt
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIXES:
        raise KmervaeError(
            f"{out}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
            f"use .tsv, .parquet, .npy or .h5ad, or --format"
        )
    return SUFFIXES[suffix]


def ids_path_for(npy: str | os.PathLike) -> Path:
    """``OUT.ids.txt`` beside ``OUT.npy``."""
    p = Path(npy)
    return p.with_name((p.name[: -len(p.suffix)] if p.suffix else p.name) + ".ids.txt")


def neighbours_path_for(out: str | os.PathLike) -> Path:
    """``OUT.neighbours.parquet`` beside ``OUT.parquet``."""
    p = Path(out)
    return p.with_name((p.name[: -len(p.suffix)] if p.suffix else p.name) + ".neighbours.parquet")


# -- annotation inputs -------------------------------------------------------------------


def read_map(path: str | os.PathLike) -> dict:
    """id → (x, y, cluster) from the map.tsv of ``kmervae evaluate map``; (sample, id) → (x, y, cluster)
    when the map has a sample column (IDs may repeat across samples)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise KmervaeError(f"{path}: no such map table")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"id": str, "sample": str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise KmervaeError(f"{path}: not a map table ({str(exc).splitlines()[0]})") from None
    for name in ("id", "x", "y", "cluster"):
        if name not in table.columns:
            raise KmervaeError(
                f"{path}: no column {name!r} (a map.tsv of `kmervae evaluate map` has id, x, y)"
            )
    try:
        x, y = table["x"].astype(np.float64).to_numpy(), table["y"].astype(np.float64).to_numpy()
        cluster = table["cluster"].astype(np.int64).to_numpy()
    except ValueError as exc:
        raise KmervaeError(f"{path}: x, y and cluster must be numbers ({exc})") from None
    keys = list(zip(table["sample"], table["id"])) if "sample" in table.columns else list(table["id"])
    dup = pd.Series(keys, dtype=object).duplicated().to_numpy()
    if dup.any():
        i = int(np.nonzero(dup)[0][0])
        raise KmervaeError(f"{path}: line {i + 2} repeats the contig {keys[i]!r}")
    return {key: (a, b, c) for key, a, b, c in zip(keys, x, y, cluster)}


class StoreGC:
    """GC fractions of embedding rows, walking the k-mer store they came from in order.

    Embeddings of a store keep its row order (all rows, or the rows of one split), so each
    chunk of embeddings is matched to the next store rows with the same (ID, sample):
    one pass over the store, memory bounded by its chunk. Rows that are not a
    subsequence of the store's rows are an error naming the first one.
    """

    def __init__(self, path: str | os.PathLike, chunk_rows: int):
        self.store = KmerStore(path)
        if 1 not in self.store.layout.ks:
            raise KmervaeError(f"{path}: the store has no 1-mer group, so GC cannot be computed")
        self.step = max(int(chunk_rows), self.store.chunk_rows)
        self.cols = self.store.layout.columns_for((1,))
        self.start, self.pos = 0, 0
        self.keys, self.gc = [], np.empty(0)

    def _load(self) -> bool:
        a = self.start
        if a >= self.store.n:
            return False
        b = min(a + self.step, self.store.n)
        ids = self.store.ids(a, b)
        samples = self.store.read("sample", a, b) if self.store.has("sample") else None
        self.keys = list(zip(ids, samples)) if samples is not None else [(i, None) for i in ids]
        block = self.store.rows(a, b)[:, self.cols]
        self.gc = gc_fraction(block, Layout((1,))).astype(np.float64)
        self.start, self.pos = b, 0
        return True

    def take(self, ids: np.ndarray, samples: np.ndarray | None, source, first_row: int = 0) -> np.ndarray:
        out = np.empty(len(ids), dtype=np.float64)
        use_sample = samples is not None and self.store.has("sample")
        for n, record_id in enumerate(ids):
            want = (record_id, samples[n] if use_sample else None)
            while True:
                if self.pos >= len(self.keys) and not self._load():
                    raise KmervaeError(
                        f"{source}: contig {record_id!r} (row {first_row + n + 1}) is not in the k-mer store "
                        f"{self.store.path} in the embeddings' order: give --store the store the embeddings "
                        "came from, or --no-gc"
                    )
                key = self.keys[self.pos]
                self.pos += 1
                if key[0] == want[0] and (not use_sample or key[1] == want[1]):
                    out[n] = self.gc[self.pos - 1]
                    break
        return out


def _default_store(emb: Embeddings) -> str | None:
    """The k-mer store the embeddings record as their input, when it is still there."""
    source = emb.attrs.get("input")
    if (
        not isinstance(source, str)
        or "input_sha256" in emb.attrs
        or not (Path(source) / "zarr.json").is_file()
    ):
        return None
    try:
        return source if 1 in KmerStore(source).layout.ks else None
    except KmervaeError:
        return None


class Annotations:
    """The per-row columns of a chunk: id, length, sample, split, gc, label, map."""

    def __init__(
        self, emb: Embeddings, store=None, labels=None, label_column="genome", map_tsv=None, chunk=0
    ):
        from .evaluate.retrieval import read_labels

        self.emb = emb
        self.labels = read_labels(labels, label_column) if labels is not None else None
        self.map = read_map(map_tsv) if map_tsv is not None else None
        self.map_path = map_tsv
        self.gc = StoreGC(store, chunk or DEFAULT_CHUNK_ROWS) if store is not None else None
        self.columns = ["id", "length"] + [c for c in ("sample", "split") if emb.has(c)]
        self.columns += ["gc"] if self.gc else []
        self.columns += ["label"] if self.labels is not None else []
        self.columns += ["tsne_x", "tsne_y", "map_cluster"] if self.map is not None else []
        self.mapped = 0

    def block(self, a: int, b: int) -> dict[str, np.ndarray]:
        emb, ids = self.emb, self.emb.ids(a, b)
        out = {"id": ids, "length": emb.lengths(a, b).astype(np.int64)}
        if emb.has("sample"):
            out["sample"] = emb.array("sample", a, b)
        if emb.has("split"):
            codes = emb.array("split", a, b)
            out["split"] = np.array([SPLITS[c] if 0 <= c < len(SPLITS) else "" for c in codes], dtype=object)
        if self.gc:
            out["gc"] = self.gc.take(ids, out.get("sample"), emb.path, a)
        if self.labels is not None:
            out["label"] = np.array([self.labels.get(i, "") for i in ids], dtype=object)
        if self.map is not None:
            by_sample = bool(self.map) and isinstance(next(iter(self.map)), tuple)
            keys = list(zip(emb.samples(a, b).tolist(), ids.tolist())) if by_sample else ids
            hits = [self.map.get(key) for key in keys]
            self.mapped += sum(h is not None for h in hits)
            out["tsne_x"] = np.array([h[0] if h else np.nan for h in hits])
            out["tsne_y"] = np.array([h[1] if h else np.nan for h in hits])
            out["map_cluster"] = np.array([str(h[2]) if h else "" for h in hits], dtype=object)
        return out

    def check_map_covered(self) -> None:
        """Every contig of the map must be one of the embeddings' (same embeddings, same IDs)."""
        if self.map is not None and self.mapped < len(self.map):
            raise KmervaeError(
                f"{self.map_path}: {len(self.map) - self.mapped} of its {len(self.map)} contigs are not in "
                f"{self.emb.path}; use the map of these embeddings"
            )


# -- writers -------------------------------------------------------------------------------


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.9g}"
    return str(value)


def write_tsv(emb: Embeddings, ann: Annotations, out: Path, chunk_rows: int) -> None:
    """Header, then one row per contig: annotations, then z_mean as %.9g (float32 round-trips)."""
    z_columns = [f"z_{j}" for j in range(emb.latent_dim)]
    with atomic_path(out) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(ann.columns + z_columns) + "\n")
        for a, b in emb.chunks(chunk_rows):
            cols = ann.block(a, b)
            buf = io.StringIO()
            np.savetxt(buf, emb.z_mean(a, b), fmt="%.9g", delimiter="\t")
            z_lines = buf.getvalue().splitlines()
            for i, z_line in enumerate(z_lines):
                fh.write("\t".join(_cell(cols[c][i]) for c in ann.columns) + "\t" + z_line + "\n")
        ann.check_map_covered()


def _arrow_schema(ann: Annotations, width: int):
    import pyarrow as pa

    kinds = {"length": pa.int64(), "gc": pa.float64(), "tsne_x": pa.float64(), "tsne_y": pa.float64()}
    fields = [pa.field(c, kinds.get(c, pa.string())) for c in ann.columns]
    return pa.schema(fields + [pa.field(f"z_{j}", pa.float32()) for j in range(width)])


def write_parquet(emb: Embeddings, ann: Annotations, out: Path, chunk_rows: int, neighbours=None) -> list:
    """One row group per chunk; missing labels, splits and map clusters are nulls. With
    ``neighbours``, ``OUT.neighbours.parquet`` too; both files appear together or not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(ann, emb.latent_dim)
    nullable = [c for c in ann.columns if schema.field(c).type == pa.string() and c not in ("id", "sample")]
    files = [out]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if neighbours is not None:
            files.append(neighbours_path_for(out))
            side = stack.enter_context(atomic_path(files[1]))
            write_neighbours_parquet(Path(neighbours), side, emb, chunk_rows)
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for a, b in emb.chunks(chunk_rows):
                cols = ann.block(a, b)
                data = {
                    c: [None if v == "" else v for v in cols[c]] if c in nullable else cols[c] for c in cols
                }
                z = emb.z_mean(a, b)
                data.update({f"z_{j}": z[:, j] for j in range(emb.latent_dim)})
                writer.write_table(pa.Table.from_pydict(data, schema=schema))
            if emb.n == 0:
                writer.write_table(schema.empty_table())
        ann.check_map_covered()
    return files


def write_npy(emb: Embeddings, out: Path, chunk_rows: int) -> Path:
    """``OUT.npy`` (float32 N x d, filled chunk by chunk through a memory map) and ``OUT.ids.txt``."""
    ids_path = ids_path_for(out)
    with atomic_path(ids_path) as ids_tmp, atomic_path(out) as tmp:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(emb.n, emb.latent_dim))
        with open(ids_tmp, "w") as fh:
            for a, b in emb.chunks(chunk_rows):
                matrix[a:b] = emb.z_mean(a, b)
                fh.writelines(f"{i}\n" for i in emb.ids(a, b))
        matrix.flush()
        del matrix
    return ids_path


def _contig_keys(emb: Embeddings, a: int, b: int, by_sample: bool) -> list[str]:
    """How a neighbours table names the embeddings' rows [a, b): ``sample<TAB>id``, or the bare ID."""
    ids = emb.ids(a, b).tolist()
    if not by_sample:
        return ids
    return [f"{s}\t{i}" for s, i in zip(emb.samples(a, b).tolist(), ids)]


#: Parquet types of the columns of a `kmervae query` table
NEIGHBOUR_TYPES = {
    "query": "string", "rank": "int32", "neighbour": "string", "distance": "float32",
    "query_sample": "string", "query_id": "string", "neighbour_sample": "string", "neighbour_id": "string",
    "neighbour_length": "int64", "query_label": "string", "neighbour_label": "string",
    "nearest_distance": "float32", "nearest_quantile": "float32", "no_close_match": "bool_",
}  # fmt: skip


def write_neighbours_parquet(path: Path, out: Path, emb: Embeddings, chunk_rows: int) -> None:
    """A `kmervae query` TSV as Parquet (its columns) at ``out``, chunk by chunk; every contig
    must be one of the embeddings' (their set of contigs is held in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    header, by_sample = _neighbour_header(path)
    known = {key for a, b in emb.chunks(chunk_rows) for key in _contig_keys(emb, a, b, by_sample)}
    schema = pa.schema([(c, getattr(pa, NEIGHBOUR_TYPES[c])()) for c in header])
    with pq.ParquetWriter(str(out), schema) as writer:
        line = 1
        for table in _neighbour_chunks(path, chunk_rows):
            for column in ("query", "neighbour"):
                _check_known(_keys_of(table, column, by_sample), known, path, column, line)
            line += len(table)
            writer.write_table(pa.Table.from_pandas(table[header], schema=schema, preserve_index=False))


def _keys_of(table, column: str, by_sample: bool):
    """A neighbours chunk's ``query`` or ``neighbour`` contigs as keys of :func:`_contig_keys`."""
    if not by_sample:
        return table[column]
    return (table[f"{column}_sample"] + "\t" + table[f"{column}_id"]).reset_index(drop=True)


def _check_known(values, known, path: Path, column: str, line: int) -> None:
    """Line ``line`` + 1 is the first of ``values``; an ID outside ``known`` is an error naming its line."""
    hit = np.fromiter((v in known for v in values), dtype=bool, count=len(values))
    if not hit.all():
        bad = int(np.argmin(hit))
        shown = str(values.iloc[bad]).replace("\t", ":")
        raise KmervaeError(f"{path}: line {line + bad + 1}: {column} {shown!r} is not in the embeddings")


def _neighbour_header(path: Path) -> tuple[list[str], bool]:
    """The columns of a `kmervae query` table and whether it names contigs by (sample, id)."""
    if not path.is_file():
        raise KmervaeError(f"{path}: no such neighbours table")
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
    typed = set(header) <= set(NEIGHBOUR_TYPES)
    if header[: len(SAMPLE_NEIGHBOUR_COLUMNS)] == SAMPLE_NEIGHBOUR_COLUMNS and typed:
        return header, True
    if header != NEIGHBOUR_COLUMNS:
        raise KmervaeError(
            f"{path}: line 1 should be {' '.join(SAMPLE_NEIGHBOUR_COLUMNS)} ... (a `kmervae query` table), "
            f"found {' '.join(header)[:60]!r}"
        )
    return header, False


def _neighbour_chunks(path: Path, chunk_rows: int):
    """The neighbours TSV of `kmervae query` in pandas chunks, header and types checked."""
    import pandas as pd

    header, _ = _neighbour_header(path)
    types = {c: (str if NEIGHBOUR_TYPES[c] in ("string", "bool_") else NEIGHBOUR_TYPES[c]) for c in header}
    reader = pd.read_csv(path, sep="\t", dtype=types, keep_default_na=False, chunksize=chunk_rows)
    try:
        for table in reader:
            if "no_close_match" in table:
                table["no_close_match"] = table["no_close_match"].map({"true": True, "false": False})
            yield table
    except (ValueError, pd.errors.ParserError) as exc:
        raise KmervaeError(f"{path}: not a neighbours table ({str(exc).splitlines()[0]})") from None


def _neighbour_matrix(path: Path, emb: Embeddings, chunk_rows: int):
    """Sparse N x N distances (row = query, column = neighbour, placed by contig) and the largest rank."""
    from scipy import sparse

    _, by_sample = _neighbour_header(path)
    position: dict = {}
    for a, b in emb.chunks(chunk_rows):
        for p, i in enumerate(_contig_keys(emb, a, b, by_sample), start=a):
            if position.setdefault(i, p) != p:
                raise KmervaeError(
                    f"{emb.path}: lists {i.replace(chr(9), ':')!r} twice, so the neighbours of {path} "
                    "cannot be placed"
                )
    ids_n = emb.n
    rows, cols, dist, k, line = [], [], [], 0, 1
    for table in _neighbour_chunks(path, chunk_rows):
        for column, out in (("query", rows), ("neighbour", cols)):
            keys = _keys_of(table, column, by_sample)
            _check_known(keys, position, path, column, line)
            out.append(np.fromiter((position[i] for i in keys), dtype=np.int64, count=len(table)))
        dist.append(table["distance"].to_numpy(np.float32))
        k = max(k, int(table["rank"].max()) if len(table) else 0)
        line += len(table)
    cat = lambda parts, kind: np.concatenate(parts) if parts else np.empty(0, kind)  # noqa: E731
    matrix = sparse.csr_matrix(
        (cat(dist, np.float32), (cat(rows, np.int64), cat(cols, np.int64))), shape=(ids_n, ids_n)
    )
    return matrix, k


def _name_mode(emb: Embeddings, chunk_rows: int) -> str:
    """How obs names are made: the IDs when unique, else sample/ID when that is unique, else ID-row."""
    seen: set = set()
    for a, b in emb.chunks(chunk_rows):
        ids = emb.ids(a, b).tolist()
        seen.update(ids)
        if len(seen) < b:
            break
    else:
        return "id"
    if emb.has("sample"):
        pairs = {
            (s, i)
            for a, b in emb.chunks(chunk_rows)
            for s, i in zip(emb.array("sample", a, b), emb.ids(a, b))
        }
        if len(pairs) == emb.n:
            return "sample/id"
    return "id-row"


def _obs_names(mode: str, cols: dict, first_row: int) -> list[str]:
    if mode == "id":
        return [str(i) for i in cols["id"]]
    if mode == "sample/id":
        return [f"{s}/{i}" for s, i in zip(cols["sample"], cols["id"])]
    return [f"{i}-{first_row + n}" for n, i in enumerate(cols["id"])]


def provenance(emb: Embeddings) -> dict:
    """``uns["kmervae"]``: where the embeddings came from (no None values: h5ad has no null)."""
    from .version import __version__
    from .info import WEIGHTS_HASH_KEYS

    keys = (
        "model_dir",
        "model_config_hash",
        *WEIGHTS_HASH_KEYS,
        "latent_dim",
        "input",
        "split",
        "tool_version",
    )
    out = {k: emb.attrs[k] for k in keys if emb.attrs.get(k) is not None}
    return {**out, "embeddings": str(emb.path), "exported_by": f"kmervae {__version__}"}


# -- h5ad, written with h5py in AnnData's on-disk format (read by anndata.read_h5ad) ------------


def _enc(obj, kind: str, version: str):
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version
    return obj


def _h5_strings(group, name: str, n: int = 0, data=None):
    import h5py

    text = h5py.string_dtype("utf-8")
    if data is not None:
        return _enc(
            group.create_dataset(name, data=np.array(data, dtype=object), dtype=text), "string-array", "0.2.0"
        )
    return _enc(group.create_dataset(name, shape=(n,), dtype=text), "string-array", "0.2.0")


def _h5_dict(group, name: str, mapping: dict):
    """A nested dict of strings, numbers and lists (``uns``)."""
    import h5py

    g = _enc(group.create_group(name), "dict", "0.1.0")
    for key, value in mapping.items():
        if isinstance(value, dict):
            _h5_dict(g, key, value)
        elif isinstance(value, str):
            _enc(g.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8")), "string", "0.2.0")
        elif isinstance(value, (bool, int, float, np.number)):
            _enc(g.create_dataset(key, data=np.array(value)), "numeric-scalar", "0.2.0")
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            _h5_strings(g, key, data=list(value))
        elif isinstance(value, (list, tuple)):
            _enc(g.create_dataset(key, data=np.asarray(value)), "array", "0.2.0")
        else:
            _enc(g.create_dataset(key, data=str(value), dtype=h5py.string_dtype("utf-8")), "string", "0.2.0")
    return g


class _Categorical:
    """An obs column stored as codes into a fixed list of categories (missing: code -1)."""

    def __init__(self, obs, name: str, categories: list[str], n: int):
        g = _enc(obs.create_group(name), "categorical", "0.2.0")
        g.attrs["ordered"] = False
        self.codes = _enc(g.create_dataset("codes", shape=(n,), dtype=np.int32), "array", "0.2.0")
        _h5_strings(g, "categories", data=categories)
        self.lookup = {c: i for i, c in enumerate(categories)}

    def write(self, a: int, b: int, values) -> None:
        self.codes[a:b] = np.array([self.lookup.get(str(v), -1) if v != "" else -1 for v in values], np.int32)


def _categories(emb: Embeddings, ann: Annotations, name: str, chunk_rows: int) -> list[str]:
    if name == "split":
        return list(SPLITS)
    if name == "sample":
        return sorted({s for a, b in emb.chunks(chunk_rows) for s in emb.array("sample", a, b).tolist()})
    if name == "label":
        return sorted({v for v in ann.labels.values() if v != ""})
    return [str(c) for c in sorted({c for _, _, c in ann.map.values()})]


def write_h5ad(emb: Embeddings, ann: Annotations, out: Path, chunk_rows: int, neighbours=None) -> None:
    """AnnData: obs annotations, obsm X_vae (and X_tsne), obsp vae_distances; X left out.

    Written chunk by chunk straight into HDF5 datasets; in memory are the set of IDs (to
    make obs names unique), the category lists and, with ``neighbours``, their matrix."""
    import h5py

    n, mode = emb.n, _name_mode(emb, chunk_rows)
    matrix = _neighbour_matrix(Path(neighbours), emb, chunk_rows) if neighbours is not None else None
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        _enc(f, "anndata", "0.1.0")
        obs = _enc(f.create_group("obs"), "dataframe", "0.2.0")
        obs.attrs["_index"] = "_index"
        names = [c for c in ann.columns if c not in ("tsne_x", "tsne_y")]
        obs.attrs["column-order"] = np.array(names, dtype=object)
        index, ids = _h5_strings(obs, "_index", n), _h5_strings(obs, "id", n)
        length = _enc(obs.create_dataset("length", shape=(n,), dtype=np.int64), "array", "0.2.0")
        gc = (
            _enc(obs.create_dataset("gc", shape=(n,), dtype=np.float64), "array", "0.2.0")
            if "gc" in names
            else None
        )
        cats = {
            c: _Categorical(obs, c, _categories(emb, ann, c, chunk_rows), n)
            for c in ("sample", "split", "label", "map_cluster")
            if c in names
        }
        var = _enc(f.create_group("var"), "dataframe", "0.2.0")
        var.attrs["_index"], var.attrs["column-order"] = "_index", np.array([], dtype=h5py.string_dtype())
        _h5_strings(var, "_index", 0)
        groups = {
            g: _enc(f.create_group(g), "dict", "0.1.0") for g in ("obsm", "obsp", "varm", "varp", "layers")
        }
        z = _enc(
            groups["obsm"].create_dataset("X_vae", shape=(n, emb.latent_dim), dtype=np.float32),
            "array",
            "0.2.0",
        )
        xy = None
        if "tsne_x" in ann.columns:
            xy = _enc(
                groups["obsm"].create_dataset("X_tsne", shape=(n, 2), dtype=np.float64), "array", "0.2.0"
            )
        for a, b in emb.chunks(chunk_rows):
            cols = ann.block(a, b)
            index[a:b] = np.array(_obs_names(mode, cols, a), dtype=object)
            ids[a:b], length[a:b] = np.array([str(i) for i in cols["id"]], dtype=object), cols["length"]
            z[a:b] = emb.z_mean(a, b)
            if gc is not None:
                gc[a:b] = cols["gc"]
            for c, column in cats.items():
                column.write(a, b, cols[c])
            if xy is not None:
                xy[a:b] = np.column_stack([cols["tsne_x"], cols["tsne_y"]])
        ann.check_map_covered()
        uns = {"kmervae": provenance(emb)}
        if matrix is not None:
            g = _enc(groups["obsp"].create_group("vae_distances"), "csr_matrix", "0.1.0")
            g.attrs["shape"] = matrix[0].shape
            for part in ("data", "indices", "indptr"):
                g.create_dataset(part, data=getattr(matrix[0], part))
            uns["vae_neighbors"] = {
                "distances_key": "vae_distances",
                "params": {"n_neighbors": matrix[1], "method": "kmervae query", "source": str(neighbours)},
            }
        _h5_dict(f, "uns", uns)


def export_embeddings(
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str | None = None,
    *,
    store: str | os.PathLike | None = None,
    gc: bool = True,
    labels: str | os.PathLike | None = None,
    label_column: str = "genome",
    map_tsv: str | os.PathLike | None = None,
    neighbours: str | os.PathLike | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict:
    """Write ``embeddings`` as ``out`` in ``fmt`` (default: from the suffix); return what was written.

    GC comes from ``store``, else from the k-mer store the embeddings record as their
    input when it is still there (``gc=False``: none). ``neighbours`` (a `kmervae query`
    TSV) goes into ``obsp`` of an h5ad, or beside a Parquet file as ``OUT.neighbours.parquet``.
    """
    fmt = format_for(out, fmt)
    out = Path(out)
    if int(chunk_rows) < 1:
        raise KmervaeError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    emb = Embeddings(embeddings)
    if fmt == "npy" and (store or labels or map_tsv or neighbours):
        raise KmervaeError(
            f"{out}: .npy holds the z_mean matrix and its IDs only; "
            "for --store, --labels, --map or --neighbours export .tsv, .parquet or .h5ad"
        )
    if fmt == "tsv" and neighbours:
        raise KmervaeError(
            f"{neighbours}: the neighbours table is TSV already; --neighbours needs .parquet or .h5ad"
        )
    for given in (labels, map_tsv, neighbours):
        if given is not None and Path(given).resolve() == out.resolve():
            raise KmervaeError(f"{out}: the output would overwrite the input {given}")
    files = [out]
    if fmt == "npy":
        files.insert(0, write_npy(emb, out, chunk_rows))
        return {"format": fmt, "files": [str(f) for f in files], "rows": emb.n, "width": emb.latent_dim}
    if store is None and gc:
        store = _default_store(emb)
        if store is not None:
            log.info("GC from %s (the store the embeddings came from; --no-gc leaves it out)", store)
    ann = Annotations(emb, store if gc else None, labels, label_column, map_tsv, chunk_rows)
    if fmt == "tsv":
        write_tsv(emb, ann, out, chunk_rows)
    elif fmt == "parquet":
        files = write_parquet(emb, ann, out, chunk_rows, neighbours)
    else:
        write_h5ad(emb, ann, out, chunk_rows, neighbours)
    return {
        "format": fmt,
        "files": [str(f) for f in files],
        "rows": emb.n,
        "width": emb.latent_dim,
        "columns": ann.columns,
    }

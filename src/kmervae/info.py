"""`kmervae info`: a short summary of any kmervae output, read without loading it whole.

:func:`describe` returns a plain dict (JSON-ready, what ``--json`` prints); :func:`render`
turns it into the text the CLI prints. It recognises

- k-mer stores and datasets: rows, layout, lengths, splits, samples, sources, provenance;
- embeddings stores: model (name, config hash), rows, width, source, split and sample counts;
- model directories (``kmervae train``): config name and hash, architecture, parameters
  counted from the weight file's safetensors header, training data, epochs, best epoch;
- FAISS indexes (``kmervae index``): kind, metric, vectors, model, file sizes;
- report folders (``kmervae evaluate``), or a tree of them: each report's headline numbers;
- any other zarr group: its format, arrays and attributes.

Everything is read chunk by chunk or from headers and sidecars: no model is built, no
index is loaded. Other kinds of outputs register a describer in :data:`DESCRIBERS`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import KmervaeError
from .select import read_optional
from .io.store import FORMAT as STORE_FORMAT
from .io.store import SPLITS, KmerStore

LENGTH_THRESHOLDS = (1000, 2000, 3000, 4000, 5000)
#: rows read at once for the summaries (ids/lengths/sample/split only, never the matrix)
SUMMARY_ROWS = 1 << 20
#: keys under which a hash of the model's weights may be recorded (read when present)
WEIGHTS_HASH_KEYS = ("weights_sha256", "model_weights_sha256", "model_hash", "weights_hash")
#: state-dict entries that are buffers, not trained parameters (BatchNorm statistics)
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
#: report JSON files `kmervae evaluate` writes, in the order they are shown
REPORT_FILES = ("spearman", "baselines", "count_distance", "retrieval", "map")
#: index parameters that matter for each kind (the sidecar records all of them)
INDEX_PARAMS = {"hnsw": ("hnsw_m", "ef_construction", "ef_search"), "ivf": ("ivf_nlist", "ivf_nprobe")}
WHAT_INFO_READS = (
    "a k-mer store, embeddings store, model directory, FAISS index (.faiss with its sidecars) "
    "or report folder"
)


def _weights_hash(mapping: dict) -> str | None:
    return next((str(mapping[k]) for k in WEIGHTS_HASH_KEYS if mapping.get(k)), None)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise KmervaeError(f"{path}: not valid JSON ({exc}); is it a {what}?") from None
    if not isinstance(data, dict):
        raise KmervaeError(f"{path}: not a {what} (a JSON {type(data).__name__}, not an object)")
    return data


# -- k-mer stores ------------------------------------------------------------------------


def describe_store(path: str | os.PathLike) -> dict:
    """Counts, layout, length summary, split x sample table, sources and provenance of a k-mer store."""
    store = KmerStore(path)
    info = {
        "path": str(store.path),
        "kind": "k-mer store",
        "n": store.n,
        "matrix": store.matrix_name,
        "layout": store.layout.describe(),
        "columns": store.layout.width,
        "chunk_rows": store.chunk_rows,
        "format_version": store.attrs.get("format_version"),
        "tool_version": store.attrs.get("tool_version"),
    }
    if store.attrs.get("sample"):
        info["sample"] = store.attrs["sample"]
    lengths = {"min": None, "mean": None, "max": None, **{f">={t}": 0 for t in LENGTH_THRESHOLDS}}
    total, per_sample_split = 0, Counter()
    names = store.split_names()
    for start, stop in store.chunks(max(store.chunk_rows, SUMMARY_ROWS)):
        block = store.lengths(start, stop)
        if len(block):
            lengths["min"] = (
                int(block.min()) if lengths["min"] is None else min(lengths["min"], int(block.min()))
            )
            lengths["max"] = (
                int(block.max()) if lengths["max"] is None else max(lengths["max"], int(block.max()))
            )
            total += int(block.sum())
            for t in LENGTH_THRESHOLDS:
                lengths[f">={t}"] += int((block >= t).sum())
        samples = (
            read_optional(store, "sample", start, stop) if store.has("sample") else np.full(stop - start, "")
        )
        splits = store.array("split")[start:stop] if store.has("split") else np.full(stop - start, -1)
        per_sample_split.update(zip(samples.tolist(), splits.tolist()))
    if store.n:
        lengths["mean"] = round(total / store.n, 1)
    info["lengths"] = lengths
    if store.has("split"):
        info["splits"] = {
            name: sum(c for (_, code), c in per_sample_split.items() if code == i)
            for i, name in enumerate(names)
        }
    if store.has("sample"):
        info["samples"] = {
            sample: {name: per_sample_split.get((sample, i), 0) for i, name in enumerate(names)}
            if store.has("split")
            else sum(c for (s, _), c in per_sample_split.items() if s == sample)
            for sample in sorted({s for s, _ in per_sample_split})
        }
    info["sources"] = store.attrs.get("sources") or []
    info["provenance"] = store.attrs.get("provenance") or {}
    return info


def _counts_1d(read, n: int, chunk: int = SUMMARY_ROWS) -> Counter:
    """Value counts of a 1-D array read ``chunk`` rows at a time."""
    counts = Counter()
    for a in range(0, n, chunk):
        counts.update(read(a, min(a + chunk, n)).tolist())
    return counts


def _length_summary(read, n: int) -> dict:
    lo, hi, total = None, None, 0
    for a in range(0, n, SUMMARY_ROWS):
        block = read(a, min(a + SUMMARY_ROWS, n))
        if len(block):
            lo = int(block.min()) if lo is None else min(lo, int(block.min()))
            hi = int(block.max()) if hi is None else max(hi, int(block.max()))
            total += int(block.sum())
    return {"min": lo, "mean": round(total / n, 1) if n else None, "max": hi}


# -- embeddings --------------------------------------------------------------------------


def describe_embeddings(path: str | os.PathLike) -> dict:
    """Model (name, config hash), rows, width, source, split and sample counts of an embeddings store."""
    from .embed import Embeddings

    emb = Embeddings(path)
    a = emb.attrs
    model_dir = str(a.get("model_dir") or "")
    source_attrs = a.get("input_attrs") or {}
    info = {
        "path": str(emb.path),
        "kind": "embeddings",
        "n": emb.n,
        "width": emb.latent_dim,
        "chunk_rows": emb.chunk_rows,
        "format_version": a.get("format_version"),
        "tool_version": a.get("tool_version"),
        "model": {
            "name": Path(model_dir).name or None,
            "dir": model_dir or None,
            "config_hash": a.get("model_config_hash"),
            "weights_hash": _weights_hash(a),
            "input_ks": a.get("input_ks"),
        },
        "source": {
            "path": a.get("input"),
            "kind": "FASTA" if "input_sha256" in a else "k-mer store",
            "n": source_attrs.get("n"),
            "split": a.get("split"),
        },
        "lengths": _length_summary(emb.lengths, emb.n),
    }
    if "input_sha256" in a:
        info["source"]["files"] = a["input_sha256"]
    if emb.has("split"):
        codes = _counts_1d(lambda s, e: emb.array("split", s, e), emb.n)
        names = list(SPLITS)
        info["splits"] = {
            (names[c] if 0 <= c < len(names) else str(c)): codes.get(c, 0)
            for c in sorted(set(range(len(names))) | set(codes))
        }
    if emb.has("sample"):
        info["samples"] = dict(sorted(_counts_1d(lambda s, e: emb.array("sample", s, e), emb.n).items()))
    return info


def describe_zarr_group(path: str | os.PathLike) -> dict:
    """Format, arrays (shape, dtype) and attributes of any other zarr group."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a group"
        raise KmervaeError(f"{path}: not a zarr store ({exc})") from None
    attrs = dict(group.attrs)
    return {
        "path": str(path),
        "kind": attrs.get("format", "zarr group"),
        "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in group.arrays()},
        "attrs": attrs,
    }


# -- model directories -------------------------------------------------------------------


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes; ``__metadata__``)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        length = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if length < 2 or length > size - 8:
            raise KmervaeError(
                f"{path}: not a safetensors file (header length {length} of a {size}-byte file)"
            )
        try:
            header = json.loads(fh.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise KmervaeError(f"{path}: not a safetensors file (header is not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise KmervaeError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def describe_weights(path: Path) -> dict:
    """Parameters and tensors of a weight file, counted from its header (no tensor is read)."""
    header = safetensors_header(path)
    meta = header.pop("__metadata__", None) or {}
    parameters = elements = 0
    for name, spec in header.items():
        count = math.prod(spec.get("shape", ())) if isinstance(spec, dict) else 0
        elements += count
        if not name.endswith(BUFFER_SUFFIXES):
            parameters += count
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "tensors": len(header),
        "parameters": parameters,
        "elements": elements,
        "config_hash": meta.get("config_hash"),
        "weights_hash": _weights_hash(meta),
        "training_lengths": _training_lengths(meta, path),
    }


def _training_lengths(meta: dict, path: Path) -> dict | None:
    """The training split's length summary a weight file records (kmervae.lengths), or None."""
    from .lengths import METADATA_KEY, from_metadata

    text = meta.get(METADATA_KEY)
    try:
        return from_metadata(text, str(path)) if text is not None else None
    except KmervaeError:
        return None


def read_history(path: Path) -> list[dict]:
    """history.tsv rows as dicts of floats (``epoch`` as int, ``best`` as bool)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for number, row in enumerate(rows, start=2):
        try:
            parsed = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            parsed["epoch"], parsed["best"] = int(parsed["epoch"]), bool(parsed.get("best", 0))
        except (KeyError, ValueError) as exc:
            raise KmervaeError(f"{path}: line {number} is not a training history row ({exc})") from None
        out.append(parsed)
    return out


_DATA_LINE = re.compile(r" INFO (.+): ([\d,]+) training and ([\d,]+) validation rows, (\d+) columns")


def training_data_from_log(path: Path) -> dict | None:
    """The dataset of the last run in train.log (path, training and validation rows, columns)."""
    found = None
    with open(path, errors="replace") as fh:
        for line in fh:
            m = _DATA_LINE.search(line)
            if m:
                found = {
                    "path": m.group(1),
                    "train_rows": int(m.group(2).replace(",", "")),
                    "validation_rows": int(m.group(3).replace(",", "")),
                    "columns": int(m.group(4)),
                }
    return found


def _architecture(config: dict) -> dict:
    model, inputs = config.get("model") or {}, config.get("input") or {}
    return {
        "architecture": model.get("architecture", "flat"),
        "input_ks": inputs.get("ks"),
        "hidden": model.get("hidden"),
        "latent": model.get("latent"),
        "beta": (config.get("loss") or {}).get("beta"),
    }


def describe_model(path: str | os.PathLike) -> dict:
    """Config name and hash, parameters, training data, epochs and best epoch of a model directory."""
    import yaml

    from .vae.config import config_hash

    path = Path(path)
    config_path = path / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise KmervaeError(f"{config_path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(config, dict):
        raise KmervaeError(f"{config_path}: not a model config (a mapping of sections)")
    info = {
        "path": str(path),
        "kind": "model directory",
        "name": path.resolve().name,
        "config_hash": config_hash(config),
        "model": _architecture(config),
        "weights": {},
        "problems": [],
    }
    for name in ("best", "final"):
        if (path / f"{name}.safetensors").is_file():
            w = describe_weights(path / f"{name}.safetensors")
            info["weights"][name] = w
            if w["config_hash"] and w["config_hash"] != info["config_hash"]:
                info["problems"].append(
                    f"{w['file']} was saved with config {w['config_hash']}, "
                    f"config.yaml is {info['config_hash']}"
                )
    first = next(iter(info["weights"].values()), None)
    info["parameters"] = first["parameters"] if first else None
    info["weights_hash"] = first["weights_hash"] if first else None
    info["training"] = _training_summary(path, config)
    checkpoint = path / "checkpoint.pt"
    info["checkpoint"] = {"bytes": checkpoint.stat().st_size} if checkpoint.is_file() else None
    return info


def _training_summary(path: Path, config: dict) -> dict:
    planned = (config.get("training") or {}).get("epochs")
    out = {
        "data": None,
        "epochs": 0,
        "epochs_planned": planned,
        "finished": (path / "final.safetensors").is_file(),
    }
    if (path / "train.log").is_file():
        out["data"] = training_data_from_log(path / "train.log")
    if (path / "history.tsv").is_file():
        history = read_history(path / "history.tsv")
        if history:
            last = history[-1]
            out["epochs"] = last["epoch"]
            out["last"] = {k: last[k] for k in ("train_loss", "val_loss") if k in last}
            best = [r for r in history if r["best"]]
            if best:
                out["best_epoch"], out["best_val_loss"] = best[-1]["epoch"], best[-1].get("val_loss")
    return out


def _is_model_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and any(
        (path / name).exists()
        for name in ("best.safetensors", "final.safetensors", "checkpoint.pt", "history.tsv")
    )


# -- FAISS indexes -----------------------------------------------------------------------


def _index_file(path: Path) -> Path | None:
    """The .faiss file when ``path`` is an index or one of its sidecars, else None."""
    for suffix in (".json", ".ids.tsv"):
        if path.name.endswith(suffix) and path.name != suffix:
            base = path.with_name(path.name[: -len(suffix)])
            if base.is_file() and base.with_name(base.name + ".json").is_file():
                return base
    if path.is_file() and path.with_name(path.name + ".json").is_file():
        return path
    return None


def _count_lines(path: Path, block: int = 1 << 20) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def describe_index(path: str | os.PathLike) -> dict:
    """Kind, metric, vectors, model and file sizes of an index, from its sidecars (not loaded)."""
    from .index import _read_meta, sidecar_paths

    index_path = _index_file(Path(path))
    ids_path, json_path = sidecar_paths(index_path)
    meta = _read_meta(json_path)
    size = index_path.stat().st_size
    info = {
        "path": str(index_path),
        "kind": "FAISS index",
        "index_kind": meta.get("kind"),
        "metric": meta["metric"],
        "n": meta["n"],
        "width": meta.get("latent_dim"),
        "params": meta.get("params") or {},
        "model_config_hash": meta.get("model_config_hash"),
        "weights_hash": _weights_hash(meta),
        "embeddings": meta.get("embeddings"),
        "bytes": size,
        "memory_bytes": size,
        "ids": None,
        #: quantiles of the index's own nearest-neighbour distances (None: built before calibration)
        "nearest_quantiles": (meta.get("calibration") or {}).get("quantiles"),
        "problems": [],
    }
    if ids_path.is_file():
        info["ids"] = max(_count_lines(ids_path) - 1, 0)
        if info["ids"] != meta["n"]:
            info["problems"].append(
                f"{ids_path.name} lists {info['ids']} IDs but the metadata says {meta['n']}"
            )
    else:
        info["problems"].append(f"{ids_path.name} is missing")
    return info


# -- report folders ----------------------------------------------------------------------


def _need(data: dict, path: Path, *keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise KmervaeError(f"{path}: no {key!r} entry; not a report `kmervae evaluate` wrote")
        data = data[key]
    return data


def _headline(name: str, data: dict, path: Path) -> dict:
    """The numbers a report is read for, checked to be there."""
    if name == "spearman":
        keys = ("spearman", "spearman_ci95", "pearson", "pearson_ci95", "pool", "queries", "k", "metric")
        out = {k: _need(data, path, k) for k in keys}
        return {**out, "mse_top1": data.get("mse_top", {}).get("1"), "mse_random": data.get("mse_random")}
    if name == "baselines":
        rows = _need(data, path, "rows")
        return {
            "pool": data.get("pool"),
            "rows": [
                {k: _need(r, path, k) for k in ("method", "width", "spearman", "spearman_ci95")} for r in rows
            ],
        }
    if name == "count_distance":
        fits = _need(data, path, "fits")
        return {
            "sample": _need(data, path, "sample"),
            "metric": _need(data, path, "metric"),
            "nn_median": _need(data, path, "nn_distance", "median"),
            "fits": [{k: _need(f, path, k) for k in ("range", "slope", "intercept", "r2")} for f in fits],
            "bimodality": {
                m: _need(data, path, "pairwise", m, "bimodality") for m in ("euclidean", "cosine")
            },
        }
    if name == "retrieval":
        rows = _need(data, path, "rows")
        return {
            **{k: _need(data, path, k) for k in ("pool", "queries", "label_column", "metric")},
            "precision": {f"{r['method']}@{r['k']}": r["precision"] for r in rows},
        }
    keys = ("n", "clusters", "noise_fraction", "perplexity", "metric")
    return {k: _need(data, path, k) for k in keys}


def _report_folder(path: Path) -> dict:
    reports = {}
    for name in REPORT_FILES:
        json_path = path / f"{name}.json"
        if json_path.is_file():
            data = _read_json(json_path, f"{name} report")
            reports[name] = {
                **_headline(name, data, json_path),
                "split": data.get("split"),
                "model_config_hash": data.get("model_config_hash"),
            }
    return reports


def _report_dirs(path: Path, depth: int = 3) -> list[Path]:
    """``path`` itself if it holds reports, else report folders up to ``depth`` levels below it."""
    if any((path / f"{n}.json").is_file() for n in REPORT_FILES):
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    return [
        d for sub in sorted(p for p in path.iterdir() if p.is_dir()) for d in _report_dirs(sub, depth - 1)
    ]


def describe_reports(path: str | os.PathLike) -> dict:
    """Headline numbers of every report in a report folder or a tree of them."""
    path = Path(path)
    folders = []
    for folder in _report_dirs(path):
        rel = folder.relative_to(path).as_posix()
        folders.append({"folder": rel if rel != "." else "", "reports": _report_folder(folder)})
    return {"path": str(path), "kind": "report folder", "folders": folders}


# -- dispatch ------------------------------------------------------------------------------


def _zarr_format(path: Path) -> str | None:
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("attributes", {}).get("format")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def _is_kmer_store(path: Path) -> bool:
    return _zarr_format(path) == STORE_FORMAT


def _is_embeddings(path: Path) -> bool:
    from .embed import FORMAT

    return _zarr_format(path) == FORMAT


#: (test, describer) pairs tried in order; other stages may append theirs
DESCRIBERS: list[tuple[Callable[[Path], bool], Callable[[Path], dict]]] = [
    (_is_kmer_store, describe_store),
    (_is_embeddings, describe_embeddings),
    (lambda p: (p / "zarr.json").is_file(), describe_zarr_group),
    (_is_model_dir, describe_model),
    (lambda p: _index_file(p) is not None, describe_index),
    (lambda p: bool(_report_dirs(p)), describe_reports),
]


def describe(path: str | os.PathLike) -> dict:
    """A dict describing the kmervae output at ``path``."""
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such file or directory")
    for test, describer in DESCRIBERS:
        if test(path):
            return describer(path)
    what = "directory" if path.is_dir() else "file"
    raise KmervaeError(f"{path}: this {what} is not {WHAT_INFO_READS}")


# -- text ----------------------------------------------------------------------------------


def _counts_line(counts: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _short(h: str | None, n: int = 16) -> str:
    return "-" if not h else (h if len(h) <= n else h[:n] + "…")


def _chunks_line(info: dict) -> str:
    return (
        f"  chunks     {info['chunk_rows']} rows; "
        f"format v{info['format_version']}, kmervae {info['tool_version']}"
    )


def _render_store(info: dict) -> list[str]:
    lines = [
        f"  rows       {info['n']:,}",
        f"  matrix     {info['matrix']} ({info['columns']} columns: {info['layout']})",
        _chunks_line(info),
    ]
    if "sample" in info:
        lines.append(f"  sample     {info['sample']}")
    ln = info["lengths"]
    if info["n"]:
        at_least = ", ".join(f"{k} {v:,}" for k, v in ln.items() if k.startswith(">="))
        lines.append(f"  lengths    min {ln['min']:,}, mean {ln['mean']:,}, max {ln['max']:,}; {at_least}")
    if "splits" in info:
        lines.append("  splits     " + _counts_line(info["splits"]))
    if "samples" in info:
        lines.append(f"  samples    {len(info['samples'])}")
        for sample, counts in info["samples"].items():
            detail = _counts_line(counts) if isinstance(counts, dict) else f"{counts:,}"
            lines.append(f"    {sample}: {detail}")
    if info["sources"]:
        lines.append(f"  sources    {len(info['sources'])}")
        for entry in info["sources"]:
            records = f", {entry['records']:,} records" if "records" in entry else ""
            digest = f", sha256 {entry['sha256'][:12]}…" if "sha256" in entry else ""
            lines.append(f"    {entry.get('path')}{records}{digest}")
    if info["provenance"]:
        lines.append("  provenance")
        for key, value in info["provenance"].items():
            lines.append(f"    {key}: {json.dumps(value, default=str)}")
    return lines


def _render_embeddings(info: dict) -> list[str]:
    m, src, ln = info["model"], info["source"], info["lengths"]
    weights = f", weights {_short(m['weights_hash'])}" if m["weights_hash"] else ""
    lines = [
        f"  rows       {info['n']:,} x {info['width']} (z_mean, float32)",
        f"  model      {m['name'] or '-'} (config {_short(m['config_hash'])}{weights}), "
        f"dir {m['dir'] or '-'}",
    ]
    if m.get("input_ks"):
        lines.append("  reads      " + "+".join(f"{k}-mers" for k in m["input_ks"]))
    n_src = f", {src['n']:,} rows" if src.get("n") is not None else ""
    only = f"; split {src['split']} only" if src.get("split") else ""
    lines.append(f"  source     {src['kind']} {src['path']}{n_src}{only}")
    if info["n"]:
        lines.append(f"  lengths    min {ln['min']:,}, mean {ln['mean']:,}, max {ln['max']:,}")
    if "splits" in info:
        lines.append("  splits     " + _counts_line(info["splits"]))
    if "samples" in info:
        lines.append(f"  samples    {len(info['samples'])}: " + _counts_line(info["samples"]))
    lines.append(_chunks_line(info))
    return lines


def _render_model(info: dict) -> list[str]:
    a, t = info["model"], info["training"]
    ks = "+".join(f"{k}-mers" for k in a["input_ks"] or [])
    hidden = " → ".join(str(h) for h in a["hidden"] or [])
    params = f"{info['parameters']:,}" if info["parameters"] is not None else "- (no weight file)"
    lines = [
        f"  config     {info['name']} (hash {info['config_hash']})",
        f"  model      {a['architecture']}: {ks} → {hidden} → latent {a['latent']}; β {a['beta']}",
        f"  parameters {params}"
        + (f"; weights {_short(info['weights_hash'])}" if info["weights_hash"] else ""),
    ]
    for name, w in info["weights"].items():
        lines.append(f"    {w['file']}: {w['tensors']} tensors, {human_bytes(w['bytes'])}")
    d = t["data"]
    if d:
        lines.append(
            f"  data       {d['path']}: {d['train_rows']:,} training, "
            f"{d['validation_rows']:,} validation rows"
        )
    lengths = next((w["training_lengths"] for w in info["weights"].values() if w["training_lengths"]), None)
    if lengths:
        from .lengths import describe

        lines.append(f"  lengths    trained on {describe(lengths)}")
    state = "finished" if t["finished"] else "not finished"
    lines.append(f"  epochs     {t['epochs']} of {t['epochs_planned']} ({state})")
    if "best_epoch" in t:
        lines.append(f"  best       epoch {t['best_epoch']}, validation loss {t['best_val_loss']:.6g}")
    if "last" in t and "val_loss" in t["last"]:
        lines.append(
            f"  last       train loss {t['last'].get('train_loss', float('nan')):.6g}, "
            f"validation loss {t['last']['val_loss']:.6g}"
        )
    if info["checkpoint"]:
        lines.append(f"  checkpoint checkpoint.pt, {human_bytes(info['checkpoint']['bytes'])}")
    return lines


def _render_index(info: dict) -> list[str]:
    shown = INDEX_PARAMS.get(info["index_kind"], ())
    params = ", ".join(f"{k} {info['params'][k]}" for k in shown if info["params"].get(k) is not None)
    weights = f", weights {_short(info['weights_hash'])}" if info["weights_hash"] else ""
    return [
        f"  index      {info['index_kind']}, {info['metric']}" + (f"; {params}" if params else ""),
        f"  vectors    {info['n']:,} x {info['width']}"
        + (f"; {info['ids']:,} IDs" if info["ids"] is not None else ""),
        f"  model      config {_short(info['model_config_hash'])}{weights}",
        f"  built from {info['embeddings']}",
        f"  memory     {human_bytes(info['memory_bytes'])} (the .faiss file)",
    ] + _render_calibration(info.get("nearest_quantiles"))


def _render_calibration(quantiles: dict | None) -> list[str]:
    if not quantiles:
        return ["  nearest    not calibrated (rebuild the index for no_close_match)"]
    shown = ", ".join(f"{name}% {value:.4g}" for name, value in quantiles.items())
    return [f"  nearest    neighbour distance quantiles: {shown}"]


def _ci(value: float, ci: list) -> str:
    lo, hi = ci
    return (
        f"{value:.3f} (95% CI {lo:.3f} to {hi:.3f})"
        if not (math.isnan(lo) or math.isnan(hi))
        else f"{value:.3f}"
    )


def _render_report(name: str, r: dict) -> list[str]:
    if name == "spearman":
        return [
            f"spearman   Spearman {_ci(r['spearman'], r['spearman_ci95'])}, "
            f"Pearson {_ci(r['pearson'], r['pearson_ci95'])}; "
            f"pool {r['pool']:,}, {r['queries']} queries x K={r['k']} ({r['metric']})"
        ]
    if name == "baselines":
        return [f"baselines  pool {r['pool']:,}"] + [
            f"  {row['method']:<9}{row['width']:>5}  Spearman {_ci(row['spearman'], row['spearman_ci95'])}"
            for row in r["rows"]
        ]
    if name == "count_distance":
        out = [
            f"count      nearest-neighbour {r['metric']} distance median {r['nn_median']:.4g} "
            f"over {r['sample']:,}; "
            f"bimodality euclidean {r['bimodality']['euclidean']:.3f}, cosine {r['bimodality']['cosine']:.3f}"
        ]
        return out + [
            f"  fit {f['range'][0]:g}-{f['range'][1]:g}: slope {f['slope']:.4g}, R² {f['r2']:.3f}"
            for f in r["fits"]
        ]
    if name == "retrieval":
        methods = dict.fromkeys(key.rsplit("@", 1)[0] for key in r["precision"])
        out = [
            f"retrieval  precision@k, same {r['label_column']}; pool {r['pool']:,}, {r['queries']} queries"
        ]
        for m in methods:
            values = ", ".join(
                f"P@{key.rsplit('@', 1)[1]} {v:.3f}"
                for key, v in r["precision"].items()
                if key.rsplit("@", 1)[0] == m
            )
            out.append(f"  {m:<9}{values}")
        return out
    return [
        f"map        {r['n']:,} contigs, {r['clusters']} clusters, {r['noise_fraction']:.1%} noise "
        f"(perplexity {r['perplexity']:g}, {r['metric']})"
    ]


def _render_reports(info: dict) -> list[str]:
    lines = []
    for folder in info["folders"]:
        indent = "  "
        if folder["folder"]:
            lines.append(f"  {folder['folder']}/")
            indent = "    "
        for name, r in folder["reports"].items():
            lines += [indent + line for line in _render_report(name, r)]
    return lines


def _render_zarr(info: dict) -> list[str]:
    lines = [
        f"  array {n:<12} {s['dtype']:<10} {'x'.join(map(str, s['shape']))}"
        for n, s in info["arrays"].items()
    ]
    return lines + [f"  {k}: {json.dumps(v, default=str)}" for k, v in info.get("attrs", {}).items()]


RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "k-mer store": _render_store,
    "embeddings": _render_embeddings,
    "model directory": _render_model,
    "FAISS index": _render_index,
    "report folder": _render_reports,
}


def _finite(value):
    """NaN and infinities as None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(info: dict) -> str:
    """The description as strict JSON (what ``--json`` prints)."""
    return json.dumps(_finite(info), indent=2, default=str, allow_nan=False)


def render(info: dict) -> str:
    """The text `kmervae info` prints: a header line, then aligned key/value lines."""
    lines = [f"{info['path']}: {info['kind']}"]
    lines += RENDERERS.get(info["kind"], _render_zarr)(info)
    lines += [f"  warning: {p}" for p in info.get("problems", [])]
    return "\n".join(lines)

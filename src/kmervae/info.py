"""`kmervae info`: what a store holds and where it came from, read chunk by chunk.

:func:`describe` returns a plain dict (JSON-ready); :func:`render` turns it into the text
the CLI prints. k-mer stores get the full picture (rows, layout, lengths, splits,
samples, sources, provenance); any other zarr group (embeddings…) gets its format,
arrays and attributes. Other kinds of outputs register a describer in :data:`DESCRIBERS`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import KmervaeError
from .select import read_optional
from .store import FORMAT as STORE_FORMAT
from .store import KmerStore

LENGTH_THRESHOLDS = (1000, 2000, 3000, 4000, 5000)
#: rows read at once for the summaries (ids/lengths/sample/split only, never the matrix)
SUMMARY_ROWS = 1 << 20


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


def describe_zarr_group(path: str | os.PathLike) -> dict:
    """Format, arrays (shape, dtype) and attributes of any zarr group, e.g. an embeddings store."""
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


def _is_kmer_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("attributes", {}).get("format") == STORE_FORMAT
    except ValueError:
        return False


#: (test, describer) pairs tried in order; other stages may append theirs
DESCRIBERS: list[tuple[Callable[[Path], bool], Callable[[Path], dict]]] = [
    (_is_kmer_store, describe_store),
    (lambda p: (p / "zarr.json").is_file(), describe_zarr_group),
]


def describe(path: str | os.PathLike) -> dict:
    """A dict describing the store (or other kmervae output) at ``path``."""
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such file or directory")
    for test, describer in DESCRIBERS:
        if test(path):
            return describer(path)
    raise KmervaeError(
        f"{path}: not a kmervae store (no zarr.json); info describes k-mer stores and zarr outputs"
    )


def render(info: dict) -> str:
    """The text `kmervae info` prints: aligned key/value lines and small tables."""
    lines = [f"{info['path']}: {info['kind']}"]
    if info["kind"] != "k-mer store":
        for name, spec in info.get("arrays", {}).items():
            lines.append(f"  array {name:<12} {spec['dtype']:<10} {'x'.join(map(str, spec['shape']))}")
        for key, value in info.get("attrs", {}).items():
            lines.append(f"  {key}: {json.dumps(value, default=str)}")
        return "\n".join(lines)
    lines.append(f"  rows       {info['n']:,}")
    lines.append(f"  matrix     {info['matrix']} ({info['columns']} columns: {info['layout']})")
    lines.append(
        f"  chunks     {info['chunk_rows']} rows; "
        f"format v{info['format_version']}, kmervae {info['tool_version']}"
    )
    if "sample" in info:
        lines.append(f"  sample     {info['sample']}")
    ln = info["lengths"]
    if info["n"]:
        at_least = ", ".join(f"{k} {v:,}" for k, v in ln.items() if k.startswith(">="))
        lines.append(f"  lengths    min {ln['min']:,}, mean {ln['mean']:,}, max {ln['max']:,}; {at_least}")
    if "splits" in info:
        lines.append("  splits     " + ", ".join(f"{k} {v:,}" for k, v in info["splits"].items()))
    if "samples" in info:
        lines.append(f"  samples    {len(info['samples'])}")
        for sample, counts in info["samples"].items():
            detail = (
                ", ".join(f"{k} {v:,}" for k, v in counts.items())
                if isinstance(counts, dict)
                else f"{counts:,}"
            )
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
    return "\n".join(lines)

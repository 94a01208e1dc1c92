"""Small random k-mer stores for the select/merge/legacy/info tests (no counting needed)."""

from __future__ import annotations

import numpy as np

from kmervae.kmers import Layout
from kmervae.io.store import StoreWriter

SMALL = Layout.parse("2..1")


def make_store(
    path,
    n,
    *,
    sample=None,
    prefix="r",
    seed=0,
    chunk_rows=16,
    layout=SMALL,
    matrix="counts",
    extra_arrays=None,
    append_rows=13,
    wide=0,
):
    """Write a store of ``n`` random rows (IDs ``prefix0..``) in uneven appends; return its arrays.

    ``wide``: that many random counts are above 16 bits (65,536 up to the uint32 maximum)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"{prefix}{i}" for i in range(n)])
    lengths = rng.integers(500, 8000, size=n)
    if matrix == "counts":
        rows = rng.integers(0, 50, size=(n, layout.width)).astype(np.uint32)
        at = rng.choice(rows.size, size=wide, replace=False)
        rows.reshape(-1)[at] = rng.integers(1 << 16, 1 << 32, size=wide, dtype=np.uint64)
    else:
        rows = rng.random((n, layout.width), dtype=np.float32)
    extra_arrays = extra_arrays or {}
    attrs = {"sample": sample} if sample else {}
    with StoreWriter(
        path, layout, matrix, chunk_rows=chunk_rows, attrs=attrs, extra=tuple(extra_arrays)
    ) as w:
        for a in range(0, n, append_rows):
            b = min(a + append_rows, n)
            w.append(ids[a:b], lengths[a:b], rows[a:b], **{k: v[a:b] for k, v in extra_arrays.items()})
    return {"id": ids, "length": lengths, "rows": rows, **extra_arrays}

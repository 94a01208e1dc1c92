"""The zarr store: round trip, atomic publication, format checks."""

import numpy as np
import pytest

from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.store import KmerStore, StoreWriter


def write_store(path, n=10, chunk_rows=4, layout=Layout.parse("2..1"), extra=()):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 9, size=(n, layout.width)).astype(np.uint32)
    ids = [f"r{i}" for i in range(n)]
    with StoreWriter(path, layout, chunk_rows=chunk_rows, extra=extra) as w:
        for a in range(0, n, 3):
            kw = {"sample": ["s"] * len(ids[a : a + 3]), "split": [0] * len(ids[a : a + 3])} if extra else {}
            w.append(ids[a : a + 3], np.arange(a, min(a + 3, n)) * 100, counts[a : a + 3], **kw)
    return ids, counts


def test_round_trip(tmp_path):
    path = tmp_path / "s.zarr"
    ids, counts = write_store(path)
    s = KmerStore(path)
    assert s.n == 10 and s.layout.ks == (2, 1)
    assert list(s.ids()) == ids
    np.testing.assert_array_equal(s.rows(), counts)
    np.testing.assert_array_equal(s.lengths(), np.arange(10) * 100)
    idx = np.array([9, 0, 5, 5, 2])
    np.testing.assert_array_equal(s.take(idx), counts[idx])
    np.testing.assert_array_equal(s.rows(2, 7, ks=(1,)), counts[2:7, -2:])
    assert list(s.chunks()) == [(0, 4), (4, 8), (8, 10)]


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with StoreWriter(path, Layout.parse("1")) as w:
            w.append(["a"], [1], np.ones((1, 2)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_not_a_store_is_a_clear_error(tmp_path):
    with pytest.raises(KmervaeError, match="no such"):
        KmerStore(tmp_path / "missing.zarr")
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(KmervaeError):
        KmerStore(tmp_path / "x.zarr")


def test_split_index(tmp_path):
    path = tmp_path / "d.zarr"
    write_store(path, extra=("sample", "split"))
    s = KmerStore(path)
    assert len(s.split_index("train")) == 10
    assert len(s.split_index("validation")) == 0


def test_directly_encoded_chunks_are_the_bytes_zarr_writes(tmp_path):
    """Chunk-aligned appends are encoded by StoreWriter itself; zarr's own pipeline is the oracle."""
    import zarr

    from kmervae.store import FAST_COMPRESSOR

    layout = Layout.parse("3..1")
    counts = np.random.default_rng(2).poisson(3, size=(23, layout.width)).astype(np.uint32)
    ids = [f"r{i}" for i in range(23)]
    paths = {}
    for name, direct in (("direct", True), ("zarr", False)):
        paths[name] = tmp_path / f"{name}.zarr"
        with StoreWriter(paths[name], layout, chunk_rows=8, compressors=FAST_COMPRESSOR) as w:
            assert w._encoder is not None  # FAST_COMPRESSOR on a local store: direct path
            if not direct:
                w._encoder = None
            # aligned (two whole chunks), aligned partial (padded edge chunk), then unaligned
            for a, b in ((0, 16), (16, 19), (19, 23)):
                w.append(ids[a:b], np.arange(a, b), counts[a:b])
    files = sorted(p.relative_to(paths["zarr"]) for p in (paths["zarr"] / "counts").rglob("*") if p.is_file())
    assert len(files) == 4  # zarr.json + 3 chunks
    for f in files:
        assert (paths["direct"] / f).read_bytes() == (paths["zarr"] / f).read_bytes()
    np.testing.assert_array_equal(zarr.open_array(str(paths["direct"] / "counts"), mode="r")[:], counts)
    assert list(KmerStore(paths["direct"]).ids()) == ids

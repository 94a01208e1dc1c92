"""The zarr store: round trip, atomic publication, format checks."""

import numpy as np
import pytest

from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.io.store import KmerStore, StoreWriter


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

    from kmervae.io.store import FAST_COMPRESSOR

    layout = Layout.parse("3..1")
    n = 23
    counts = np.random.default_rng(2).poisson(3, size=(n, layout.width)).astype(np.uint32)
    ids = [f"r{i}" * (i % 4 + 1) for i in range(n)]
    lengths = np.where(np.arange(n) < 8, 0, np.arange(n) * 7)  # first chunk all fill: zarr skips it
    samples, splits = [f"s{i % 3}" for i in range(n)], np.arange(n) % 3
    paths = {}
    for name, compressors in (("fast", FAST_COMPRESSOR), ("default", "auto")):
        for direct in (True, False):
            path = paths[name, direct] = tmp_path / f"{name}-{direct}.zarr"
            with StoreWriter(
                path, layout, chunk_rows=8, compressors=compressors, extra=("sample", "split")
            ) as w:
                assert all(w._encoders.values())  # local store, replayable codecs: direct path
                if not direct:
                    w._encoders = dict.fromkeys(w._encoders)
                # aligned (two whole chunks), aligned partial (padded edge chunk), then unaligned
                for a, b in ((0, 16), (16, 19), (19, 23)):
                    w.append(ids[a:b], lengths[a:b], counts[a:b], sample=samples[a:b], split=splits[a:b])
        direct, by_zarr = paths[name, True], paths[name, False]
        files = sorted(p.relative_to(by_zarr) for p in by_zarr.rglob("*") if p.is_file())
        assert sorted(p.relative_to(direct) for p in direct.rglob("*") if p.is_file()) == files
        assert len([f for f in files if f.parts[0] == "counts"]) == 4  # zarr.json + 3 chunks
        assert len([f for f in files if f.parts[0] == "length"]) == 3  # the all-zero chunk skipped
        for f in files:
            assert (direct / f).read_bytes() == (by_zarr / f).read_bytes(), f
        np.testing.assert_array_equal(zarr.open_array(str(direct / "counts"), mode="r")[:], counts)
        store = KmerStore(direct)
        assert list(store.ids()) == ids and list(store.read("sample")) == samples
        np.testing.assert_array_equal(store.lengths(), lengths)
        np.testing.assert_array_equal(store.read("split"), splits)


def test_append_padded_writes_the_same_store_without_a_copy(tmp_path):
    from kmervae.io.store import FAST_COMPRESSOR

    layout = Layout.parse("2..1")
    counts = np.random.default_rng(3).integers(0, 50, size=(11, layout.width)).astype(np.uint32)
    ids = [f"r{i}" for i in range(11)]
    chunk = np.zeros((8, layout.width), dtype=np.uint32)
    chunk[:3] = counts[8:]
    paths = [tmp_path / "padded.zarr", tmp_path / "plain.zarr"]
    for path in paths:
        with StoreWriter(path, layout, chunk_rows=8, compressors=FAST_COMPRESSOR) as w:
            w.append(ids[:8], np.arange(8), counts[:8])
            if path.name == "padded.zarr":
                with pytest.raises(ValueError, match="zero after row 2"):
                    w.append_padded(ids[8:10], np.arange(8, 10), chunk)  # row 2 is not zero
                w.append_padded(ids[8:], np.arange(8, 11), chunk)
            else:
                w._encoders = dict.fromkeys(w._encoders)  # zarr writes the edge chunk
                w.append(ids[8:], np.arange(8, 11), counts[8:])
    files = sorted(p.relative_to(paths[1]) for p in paths[1].rglob("*") if p.is_file())
    for f in files:
        assert (paths[0] / f).read_bytes() == (paths[1] / f).read_bytes(), f
    np.testing.assert_array_equal(KmerStore(paths[0]).rows(), counts)


def _write_embeddings(path, n=10, chunk_rows=4):
    from kmervae.embed import EmbeddingsWriter

    z = np.random.default_rng(2).normal(size=(n, 3)).astype(np.float32)
    with EmbeddingsWriter(path, 3, attrs={"model_config_hash": "m"}, chunk_rows=chunk_rows) as w:
        w.append([f"r{i}" for i in range(n)], np.full(n, 1000), z)


@pytest.mark.parametrize(
    "kind, array, chunk, rows",
    [
        ("k-mer store", "counts", "c/1/0", "4-7"),
        ("k-mer store", "id", "c/2", "8-9"),
        ("dataset", "sample", "c/1", "4-7"),
        ("embeddings", "z_mean", "c/1/0", "4-7"),
    ],
)
def test_corrupt_chunk_is_one_line_naming_store_array_and_chunk(tmp_path, capsys, kind, array, chunk, rows):
    store = tmp_path / "s.zarr"
    if kind == "embeddings":
        _write_embeddings(store)
        out = tmp_path / "out" / "i.faiss"
        argv = ["index", str(store), "-o", str(out)]
    else:
        write_store(store, extra=("sample", "split") if kind == "dataset" else ())
        out = tmp_path / "out" / "sel.zarr"
        argv = ["select", str(store), "--min-length", "0", "-o", str(out)]
    chunk_file = store / array / chunk
    chunk_file.write_bytes(bytes(range(256))[: chunk_file.stat().st_size])  # same size, other bytes
    from kmervae.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(
        f"kmervae: error: {store}: array {array!r}, chunk {chunk} (rows {rows}) cannot be read ("
    )
    assert err.rstrip().endswith("the store is damaged, write it again")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_damaged_array_metadata_is_one_line_naming_store_and_array(tmp_path, capsys):
    from kmervae.cli import main

    store = tmp_path / "s.zarr"
    write_store(store)
    meta = store / "length" / "zarr.json"
    meta.write_text(meta.read_text()[:40])  # cut short: no longer JSON
    out = tmp_path / "out" / "sel.zarr"
    assert main(["select", str(store), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(
        f"kmervae: error: {store}: the metadata of array 'length' (length/zarr.json) cannot be read ("
    )
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert KmerStore(store).has("id") and not KmerStore(store).has("split")  # other members still open


@pytest.mark.parametrize(
    "codec", ["auto", None, "lz4-bit", "dataset"], ids=["zstd", "uncompressed", "lz4-bit", "dataset"]
)
def test_read_chunk_into_gives_the_rows_zarr_reads(tmp_path, codec):
    from zarr.codecs import BloscCodec

    from kmervae.io.store import DATASET_COMPRESSOR

    compressors = {"lz4-bit": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"), "dataset": DATASET_COMPRESSOR}
    layout = Layout.parse("3..1")
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 70_000, size=(11, layout.width)).astype(np.uint32)  # beyond 16 bits too
    path = tmp_path / "s.zarr"
    with StoreWriter(path, layout, chunk_rows=4, compressors=compressors.get(codec, codec)) as w:
        w.append([f"r{i}" for i in range(11)], np.full(11, 100), counts)
    store = KmerStore(path)
    assert store._decoder is not None  # read straight from the chunk files
    out = np.zeros((4, layout.width), np.uint32)
    for c, (lo, hi) in enumerate(store.chunks()):
        assert store.read_chunk_into(c, out) == hi - lo
        np.testing.assert_array_equal(out[: hi - lo], counts[lo:hi])


def test_read_chunk_into_names_a_damaged_chunk(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path)
    chunk_file = path / "counts" / "c/1/0"
    chunk_file.write_bytes(bytes(range(256))[: chunk_file.stat().st_size])
    store = KmerStore(path)
    with pytest.raises(KmervaeError, match=r"array 'counts', chunk c/1/0 \(rows 4-7\) cannot be read"):
        store.read_chunk_into(1, np.zeros((4, store.layout.width), np.uint32))


def test_mapped_row_reader_gives_the_rows_zarr_reads(tmp_path):
    import zarr
    from zarr.codecs import Crc32cCodec

    from kmervae.io.store import mapped_row_reader

    rng = np.random.default_rng(8)
    values = rng.normal(size=(45, 7)).astype(np.float32)
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    plain = group.create_array(
        "plain", shape=values.shape, dtype=np.float32, chunks=(8, 7), compressors=[Crc32cCodec()]
    )
    packed = group.create_array("packed", shape=values.shape, dtype=np.float32, chunks=(8, 7))
    plain[:] = values
    packed[:] = values
    assert mapped_row_reader(packed) is None  # compressed chunks are decoded whole, by zarr
    take = mapped_row_reader(plain)
    rows = np.r_[44, 0, rng.integers(0, 45, size=30), 44, 7, 8]  # unsorted, repeated, the short last chunk
    np.testing.assert_array_equal(take(rows), values[rows])
    assert take(np.array([], dtype=np.int64)).shape == (0, 7)
    with pytest.raises(IndexError):
        take(np.array([45]))
    chunk = tmp_path / "g.zarr" / "plain" / "c" / "2" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(KmervaeError, match=r"c/2/0: damaged chunk \(100 bytes, expected 228\)"):
        mapped_row_reader(plain)(np.array([17]))

"""Legacy .npy + ids.txt: lossless round trips for the frequencies, one-line errors."""

import numpy as np
import pytest
from store_factory import make_store

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.io.legacy import export_legacy, import_legacy
from kmervae.io.store import KmerStore, StoreWriter


def group_frequencies_oracle(counts, layout):
    """Frequencies computed group by group in float64 (independent of kmers.frequencies)."""
    out = np.zeros(counts.shape)
    for g in layout.groups:
        block = counts[:, g.start : g.stop].astype(np.float64)
        total = block.sum(axis=1, keepdims=True)
        out[:, g.start : g.stop] = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
    return out


def test_counts_export_then_round_trip_is_bit_identical(tmp_path):
    layout = Layout()  # the real 2772-column layout of the legacy data
    data = make_store(tmp_path / "s.zarr", 45, layout=layout, chunk_rows=16)
    data["rows"][3] = 0  # an all-zero row must stay zero
    with StoreWriter(tmp_path / "s.zarr", layout, chunk_rows=16) as w:
        w.append(data["id"], data["length"], data["rows"])
    npy, ids = export_legacy(tmp_path / "s.zarr", tmp_path / "a.npy", tmp_path / "a_ids.txt")
    legacy = np.load(npy)
    assert legacy.dtype == np.float32 and legacy.shape == (45, 2773)
    np.testing.assert_array_equal(legacy[:, 0], data["length"])
    np.testing.assert_allclose(
        legacy[:, 1:], group_frequencies_oracle(data["rows"], layout), rtol=1e-6, atol=1e-9
    )
    assert ids.read_text().splitlines() == list(data["id"])

    store = import_legacy(npy, ids, tmp_path / "imported.zarr", layout, chunk_rows=7)
    s = KmerStore(store)
    assert s.matrix_name == "freq" and s.n == 45 and s.chunk_rows == 7
    np.testing.assert_array_equal(s.rows(), legacy[:, 1:])  # bit for bit
    np.testing.assert_array_equal(s.lengths(), data["length"])
    export_legacy(store, tmp_path / "b.npy", tmp_path / "b_ids.txt")
    assert np.load(tmp_path / "b.npy").tobytes() == legacy.tobytes()
    assert (tmp_path / "b_ids.txt").read_text() == ids.read_text()


def test_import_keeps_arbitrary_float32_values_exactly(tmp_path):
    layout = Layout.parse("3..1")
    rng = np.random.default_rng(4)
    legacy = rng.random((30, 1 + layout.width), dtype=np.float32)  # not normalised: must still be kept as is
    legacy[:, 0] = rng.integers(1000, 10**6, size=30)
    np.save(tmp_path / "x.npy", legacy)
    (tmp_path / "x.txt").write_text("".join(f"contig {i}\n" for i in range(30)))  # IDs may hold spaces
    assert (
        main(
            [
                "import-legacy",
                str(tmp_path / "x.npy"),
                str(tmp_path / "x.txt"),
                "-o",
                str(tmp_path / "x.zarr"),
                "--groups",
                "3..1",
                "--sample",
                "sfe",
            ]
        )
        == 0
    )
    s = KmerStore(tmp_path / "x.zarr")
    assert s.attrs["sample"] == "sfe" and s.ids()[29] == "contig 29"
    assert (
        main(
            [
                "export-legacy",
                str(tmp_path / "x.zarr"),
                "-o",
                str(tmp_path / "y.npy"),
                "--ids",
                str(tmp_path / "y.txt"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "y.npy").tobytes() == legacy.tobytes()
    assert (tmp_path / "y.txt").read_text() == (tmp_path / "x.txt").read_text()


@pytest.mark.parametrize(
    "problem, message",
    [
        ("columns", r"shape \(5, 44\), expected N x 45"),
        ("fewer_ids", r"x\.txt: 4 IDs but .* has 5 rows"),
        ("more_ids", r"x\.txt: more IDs than the 5 rows .*line 6: c5"),
        ("empty_id", r"x\.txt: line 3 is empty"),
        ("nan", r"x\.npy: row 4 \(c3\): not a finite"),
        ("float64", "dtype float64, expected float32"),
    ],
)
def test_bad_legacy_input_is_one_clear_error(tmp_path, problem, message):
    layout = Layout.parse("3..1")
    legacy = np.ones((5, 1 + layout.width), dtype=np.float32)
    ids = [f"c{i}" for i in range(5)]
    if problem == "columns":
        legacy = legacy[:, :-1]
    elif problem == "fewer_ids":
        ids = ids[:4]
    elif problem == "more_ids":
        ids.append("c5")
    elif problem == "empty_id":
        ids[2] = ""
    elif problem == "nan":
        legacy[3, 7] = np.nan
    elif problem == "float64":
        legacy = legacy.astype(np.float64)
    np.save(tmp_path / "x.npy", legacy)
    (tmp_path / "x.txt").write_text("".join(f"{i}\n" for i in ids))
    with pytest.raises(KmervaeError, match=message):
        import_legacy(tmp_path / "x.npy", tmp_path / "x.txt", tmp_path / "o.zarr", layout, chunk_rows=2)
    assert not (tmp_path / "o.zarr").exists() and not list(tmp_path.glob(".o.zarr*"))


@pytest.mark.parametrize(
    "ids, shown",
    [
        (["c0", "c1", "c2", "c3", "c1"], "ID 'c1' is listed on lines 2 and 5"),
        # two duplicated IDs: the one whose second line comes first is named, with all its lines
        (["a", "b", "a", "b", "c", "a"], "ID 'a' is listed on lines 1, 3 and 6"),
    ],
)
def test_duplicate_ids_are_refused_at_import(tmp_path, capsys, ids, shown):
    layout = Layout.parse("3..1")
    np.save(tmp_path / "x.npy", np.ones((len(ids), 1 + layout.width), dtype=np.float32))
    (tmp_path / "x.txt").write_text("".join(f"{i}\n" for i in ids))
    out = tmp_path / "out" / "o.zarr"
    argv = [
        "import-legacy",
        str(tmp_path / "x.npy"),
        str(tmp_path / "x.txt"),
        "-o",
        str(out),
        "--groups",
        "3..1",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"kmervae: error: {tmp_path / 'x.txt'}: {shown}; ids.txt needs one unique ID per row\n"
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))

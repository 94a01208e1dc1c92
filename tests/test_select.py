"""select: rows at or above a length threshold, streamed, attributes and dataset arrays kept."""

import numpy as np
import pytest
from store_factory import make_store

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.select import select_min_length
from kmervae.io.store import KmerStore


@pytest.mark.parametrize("matrix", ["counts", "freq"])
def test_select_keeps_exactly_the_long_rows(tmp_path, matrix):
    data = make_store(tmp_path / "s.zarr", 157, sample="aquatic", matrix=matrix)
    out = select_min_length(tmp_path / "s.zarr", tmp_path / "s.min3000.zarr", 3000, chunk_rows=10)
    keep = data["length"] >= 3000  # oracle: a plain boolean mask over the whole input
    s = KmerStore(out)
    assert s.matrix_name == matrix and s.chunk_rows == 10 and s.n == keep.sum() > 0
    np.testing.assert_array_equal(s.ids(), data["id"][keep])
    np.testing.assert_array_equal(s.lengths(), data["length"][keep])
    np.testing.assert_array_equal(s.rows(), data["rows"][keep])
    assert s.attrs["sample"] == "aquatic" and s.attrs["n"] == keep.sum()
    assert s.attrs["provenance"]["min_length"] == 3000


def test_select_twice_keeps_the_larger_threshold_and_dataset_arrays(tmp_path):
    extra = {"sample": np.array(["a", "b"] * 30), "split": np.tile(np.array([0, 1, 2], dtype=np.int8), 20)}
    data = make_store(tmp_path / "d.zarr", 60, extra_arrays=extra)
    select_min_length(tmp_path / "d.zarr", tmp_path / "d5.zarr", 5000)
    out = select_min_length(tmp_path / "d5.zarr", tmp_path / "d2.zarr", 2000)
    keep = data["length"] >= 5000
    s = KmerStore(out)
    assert s.attrs["provenance"]["min_length"] == 5000
    np.testing.assert_array_equal(
        np.asarray(s.array("sample")[:], dtype=object).astype(str), extra["sample"][keep]
    )
    np.testing.assert_array_equal(s.array("split")[:], extra["split"][keep])


def test_select_nothing_left_and_cli(tmp_path, capsys):
    make_store(tmp_path / "s.zarr", 20)
    assert (
        main(["select", str(tmp_path / "s.zarr"), "--min-length", "100000", "-o", str(tmp_path / "e.zarr")])
        == 0
    )
    assert KmerStore(tmp_path / "e.zarr").n == 0 and "kept 0 of 20" in capsys.readouterr().out
    with pytest.raises(KmervaeError, match="overwrite"):
        select_min_length(tmp_path / "s.zarr", tmp_path / "s.zarr", 10)
    assert (
        main(["select", str(tmp_path / "missing.zarr"), "--min-length", "1", "-o", str(tmp_path / "x.zarr")])
        == 2
    )


def test_select_above_every_length_warns_and_writes_an_empty_store(tmp_path, caplog):
    data = make_store(tmp_path / "s.zarr", 20)
    longest = int(data["length"].max())
    out = tmp_path / "e.zarr"
    with caplog.at_level("WARNING", logger="kmervae.select"):
        assert (
            main(["select", str(tmp_path / "s.zarr"), "--min-length", str(longest + 1), "-o", str(out)]) == 0
        )
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{out}: no row of {tmp_path / 's.zarr'} (20 rows, longest {longest} bp) "
        f"has length >= {longest + 1}: wrote an empty store"
    ]
    assert KmerStore(out).n == 0
    caplog.clear()
    with caplog.at_level("WARNING", logger="kmervae.select"):
        select_min_length(tmp_path / "s.zarr", tmp_path / "one.zarr", longest)
    assert KmerStore(tmp_path / "one.zarr").n == (data["length"] == longest).sum()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # a row kept: no warning


def test_select_listed_ids(tmp_path, capsys):
    data = make_store(tmp_path / "s.zarr", 90)
    (tmp_path / "ids.txt").write_text("# wanted\nr5\nr17\n\nr60\nr89\nnot_there\n")
    argv = ["select", str(tmp_path / "s.zarr"), "--ids", str(tmp_path / "ids.txt"), "--min-length", "2000"]
    code = main([*argv, "-o", str(tmp_path / "sub.zarr")])
    s = KmerStore(tmp_path / "sub.zarr")
    keep = np.isin(data["id"], ["r5", "r17", "r60", "r89"]) & (data["length"] >= 2000)
    assert code == 0 and s.n == keep.sum() and "listed in" in capsys.readouterr().out
    np.testing.assert_array_equal(s.ids(), data["id"][keep])
    np.testing.assert_array_equal(s.rows(), data["rows"][keep])
    assert s.attrs["provenance"]["selected_ids"]["listed"] == 5

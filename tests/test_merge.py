"""merge: out-of-core seeded shuffle, exact splits, held-out samples, clear errors."""

import numpy as np
import pytest
from store_factory import make_store

from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.merge import ExactDealer, merge_stores, plan_buckets, split_sizes
from kmervae.io.store import KmerStore


def read_all(path):
    s = KmerStore(path)
    return {
        "id": s.ids(),
        "sample": np.asarray(s.array("sample")[:], dtype=object).astype(str),
        "split": s.array("split")[:],
        "length": s.lengths(),
        "rows": s.rows(),
        "store": s,
    }


@pytest.fixture
def two_samples(tmp_path):
    a = make_store(tmp_path / "aquatic.zarr", 700, sample="aquatic", seed=1, chunk_rows=64, append_rows=100)
    b = make_store(
        tmp_path / "terrestrial.min1000.zarr", 500, seed=2, chunk_rows=64, append_rows=100
    )  # sample from the file name
    return tmp_path, a, b


def expected_rows(inputs):
    """(sample, id) -> (length, row) from the inputs: the oracle the merged rows must match."""
    return {
        (sample, i): (length, tuple(row))
        for sample, data in inputs
        for i, length, row in zip(data["id"], data["length"], data["rows"])
    }


def test_merge_preserves_every_row_and_splits_exactly(two_samples):
    tmp, a, b = two_samples
    out = merge_stores(
        [tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"],
        tmp / "d.zarr",
        seed=3,
        fractions=(0.8, 0.15, 0.05),
        chunk_rows=32,
    )
    got = read_all(out)
    oracle = expected_rows([("aquatic", a), ("terrestrial", b)])
    merged = {
        (s, i): (length, tuple(row))
        for s, i, length, row in zip(got["sample"], got["id"], got["length"], got["rows"])
    }
    assert len(got["id"]) == 1200 and merged == oracle  # same multiset: no loss, no duplicate
    sizes = np.bincount(got["split"], minlength=3)
    assert tuple(sizes) == (1200 - 180 - 60, 180, 60) == split_sizes(1200, (0.8, 0.15, 0.05))
    assert got["store"].attrs["provenance"]["split_sizes"] == {"train": 960, "validation": 180, "test": 60}
    assert got["store"].attrs["samples"] == ["aquatic", "terrestrial"]
    # shuffled: the first input's rows are spread over the whole output, not concentrated at the start
    positions = np.nonzero(got["sample"] == "aquatic")[0]
    assert abs(positions.mean() - 1199 / 2) < 60


def test_merged_counts_are_16_bit_with_the_wide_counts_kept_exactly(tmp_path):
    a = make_store(tmp_path / "a.zarr", 300, sample="a", seed=4, chunk_rows=64, append_rows=70, wide=25)
    b = make_store(tmp_path / "b.zarr", 200, sample="b", prefix="q", seed=5, chunk_rows=64)
    out = merge_stores([tmp_path / "a.zarr", tmp_path / "b.zarr"], tmp_path / "d.zarr", seed=1, chunk_rows=32)
    got = read_all(out)
    store = got["store"]
    assert store.attrs["format_version"] == 2 and store.matrix_array.dtype == np.uint16
    assert len(store.array("counts_high")[:]) == 25  # only the wide counts are kept apart
    merged = {
        (s, i): (length, tuple(row))
        for s, i, length, row in zip(got["sample"], got["id"], got["length"], got["rows"])
    }
    assert merged == expected_rows([("a", a), ("b", b)])
    # a 16-bit dataset merges again (read as uint32 counts) into the same rows
    again = read_all(merge_stores([out], tmp_path / "e.zarr", seed=2, chunk_rows=48, samples=["d"]))
    assert sorted(map(tuple, again["rows"])) == sorted(map(tuple, got["rows"]))
    # and a selection from it keeps the 16 bits and the wide counts
    from kmervae.select import select_min_length

    kept = got["length"] >= 3000
    selected = KmerStore(select_min_length(out, tmp_path / "f.zarr", 3000))
    assert selected.matrix_array.dtype == np.uint16 and selected.attrs["format_version"] == 2
    np.testing.assert_array_equal(selected.rows(), got["rows"][kept])


def test_no_sample_is_concentrated_in_validation(tmp_path):
    make_store(tmp_path / "x.zarr", 2000, sample="x", seed=1, chunk_rows=512, append_rows=500)
    make_store(tmp_path / "y.zarr", 2000, sample="y", seed=2, chunk_rows=512, append_rows=500)
    got = read_all(
        merge_stores([tmp_path / "x.zarr", tmp_path / "y.zarr"], tmp_path / "d.zarr", fractions=(0.8, 0.2))
    )
    for sample in ("x", "y"):
        share = np.mean(got["split"][got["sample"] == sample] == 1)
        assert abs(share - 0.2) < 0.04  # 4 binomial standard deviations


def test_seed_determines_the_output_and_chunking_does_not(two_samples):
    tmp, _, _ = two_samples
    inputs = [tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"]
    first = read_all(merge_stores(inputs, tmp / "a.zarr", seed=7, chunk_rows=48))
    again = read_all(merge_stores(inputs, tmp / "b.zarr", seed=7, chunk_rows=200))
    other = read_all(merge_stores(inputs, tmp / "c.zarr", seed=8, chunk_rows=48))
    for key in ("id", "sample", "split", "length"):
        np.testing.assert_array_equal(first[key], again[key])
    np.testing.assert_array_equal(first["rows"], again["rows"])
    assert not np.array_equal(first["id"], other["id"])
    by_id = lambda got: got["split"][np.argsort(got["id"])]  # noqa: E731 (each bucket is written split by split)
    assert not np.array_equal(by_id(first), by_id(other))


def test_each_bucket_is_written_split_by_split_in_random_order(two_samples):
    tmp, _, _ = two_samples
    inputs = [tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"]
    budget = 1 << 19
    out = merge_stores(inputs, tmp / "g.zarr", fractions=(0.7, 0.2, 0.1), chunk_rows=48, memory_budget=budget)
    got = read_all(out)
    row_bytes = got["rows"].shape[1] * got["rows"].dtype.itemsize + 256
    edges = np.cumsum([0, *plan_buckets(1200, row_bytes, budget)])
    assert len(edges) > 2  # several buckets
    assert KmerStore(out).attrs["provenance"]["shuffle"]["buckets"] == len(edges) - 1
    for a, b in zip(edges[:-1], edges[1:]):
        split = got["split"][a:b]
        assert np.all(np.diff(split) >= 0)  # training, then validation, then test rows
        assert set(split.tolist()) == {0, 1, 2}
        for code in (0, 1):  # within a split, not in input order
            number = np.array([int(i[1:]) for i in got["id"][a:b][split == code]])
            assert abs(np.corrcoef(number, np.arange(len(number)))[0, 1]) < 0.5


def test_small_memory_budget_uses_bounded_buckets(two_samples):
    tmp, a, b = two_samples
    layout = Layout.parse("2..1")
    row_bytes = layout.width * 4 + 256
    budget = 100 * 2 * row_bytes  # 100 rows per bucket -> 12 buckets for 1200 rows
    out = merge_stores(
        [tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"], tmp / "d.zarr", memory_budget=budget
    )
    got = read_all(out)
    shuffle = got["store"].attrs["provenance"]["shuffle"]
    assert shuffle["buckets"] == 12 and shuffle["max_bucket_rows"] * 2 * row_bytes <= budget
    merged = {(s, i): tuple(row) for s, i, row in zip(got["sample"], got["id"], got["rows"])}
    assert merged == {k: v[1] for k, v in expected_rows([("aquatic", a), ("terrestrial", b)]).items()}
    assert not list(tmp.glob(".d.zarr*"))  # spill files are cleaned up
    # every bucket-sized stretch of the output mixes both inputs (7/12 aquatic; binomial sd ~ 4.9 rows)
    aquatic_per_bucket = (got["sample"] == "aquatic").reshape(12, 100).sum(axis=1)
    assert np.all(np.abs(aquatic_per_bucket - 700 / 12) < 20)
    # and rows of one input do not keep their input order
    order = np.array([int(i[1:]) for i in got["id"][got["sample"] == "aquatic"]])
    assert abs(np.corrcoef(order, np.arange(len(order)))[0, 1]) < 0.2


def test_plan_buckets_respects_the_budget():
    for n, row_bytes, budget in [(0, 100, 1000), (1, 100, 10), (10_001, 11_344, 1 << 26), (999, 7, 70)]:
        sizes = plan_buckets(n, row_bytes, budget)
        assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
        assert sizes.max() <= max(1, budget // (2 * row_bytes))


def test_dealer_hands_out_exact_totals_in_random_order():
    totals = [5000, 3000, 2000]
    labels = ExactDealer(totals, np.random.default_rng(0), block=777).take(10_000)
    assert np.bincount(labels).tolist() == totals
    for label, total in enumerate(totals):  # spread evenly over the sequence
        first_half = np.sum(labels[:5000] == label)
        assert abs(first_half - total / 2) < 4 * np.sqrt(total / 4)


def test_held_out_samples_form_the_test_split(two_samples):
    tmp, _, _ = two_samples
    got = read_all(
        merge_stores(
            [tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"],
            tmp / "d.zarr",
            test_samples=["terrestrial"],
        )
    )
    assert np.all(got["split"][got["sample"] == "terrestrial"] == 2)
    aquatic = got["split"][got["sample"] == "aquatic"]
    assert np.bincount(aquatic, minlength=3).tolist() == [630, 70, 0]
    with pytest.raises(KmervaeError, match="nope"):
        merge_stores([tmp / "aquatic.zarr"], tmp / "e.zarr", test_samples=["nope"])


def test_duplicate_ids_need_distinct_samples(tmp_path):
    make_store(tmp_path / "one.zarr", 50, sample="s", seed=1)
    make_store(tmp_path / "two.zarr", 30, sample="s", seed=2)  # same sample, IDs r0..r29 again
    with pytest.raises(KmervaeError, match=r"two\.zarr: record 1 \(r0\) of sample s duplicates record 1"):
        merge_stores([tmp_path / "one.zarr", tmp_path / "two.zarr"], tmp_path / "d.zarr")
    assert not (tmp_path / "d.zarr").exists()
    got = read_all(
        merge_stores(
            [tmp_path / "one.zarr", tmp_path / "two.zarr"], tmp_path / "d.zarr", samples=["s1", "s2"]
        )
    )
    assert len(set(zip(got["sample"], got["id"]))) == 80


def test_mismatched_layout_or_matrix_is_one_clear_error(tmp_path):
    make_store(tmp_path / "a.zarr", 10)
    make_store(tmp_path / "b.zarr", 10, layout=Layout.parse("1"), prefix="b")
    make_store(tmp_path / "c.zarr", 10, matrix="freq", prefix="c")
    for other in ("b.zarr", "c.zarr"):
        with pytest.raises(KmervaeError, match=f"{other}: holds .* need one layout and matrix kind"):
            merge_stores([tmp_path / "a.zarr", tmp_path / other], tmp_path / "d.zarr")
    with pytest.raises(KmervaeError, match="fractions"):
        merge_stores([tmp_path / "a.zarr"], tmp_path / "d.zarr", fractions=(0.9, 0.2))


def test_datasets_keep_their_per_row_samples(two_samples):
    tmp, a, b = two_samples
    merge_stores([tmp / "aquatic.zarr", tmp / "terrestrial.min1000.zarr"], tmp / "d1.zarr", seed=1)
    make_store(tmp / "extra.zarr", 40, sample="refseq", seed=5)
    got = read_all(merge_stores([tmp / "d1.zarr", tmp / "extra.zarr"], tmp / "d2.zarr", seed=2))
    assert sorted(set(got["sample"])) == ["aquatic", "refseq", "terrestrial"]
    assert len(got["id"]) == 1240 and len(set(zip(got["sample"], got["id"]))) == 1240


def test_freq_stores_merge_bit_exact(tmp_path):
    a = make_store(tmp_path / "a.zarr", 40, sample="a", matrix="freq", seed=1)
    b = make_store(tmp_path / "b.zarr", 25, sample="b", matrix="freq", seed=2)
    got = read_all(merge_stores([tmp_path / "a.zarr", tmp_path / "b.zarr"], tmp_path / "d.zarr"))
    assert got["store"].matrix_name == "freq" and got["rows"].dtype == np.float32
    oracle = {
        k: np.asarray(v[1], dtype=np.float32).tobytes()
        for k, v in expected_rows([("a", a), ("b", b)]).items()
    }
    assert {(s, i): row.tobytes() for s, i, row in zip(got["sample"], got["id"], got["rows"])} == oracle


def test_empty_inputs_and_a_budget_too_small(tmp_path, monkeypatch):
    make_store(tmp_path / "empty.zarr", 0, sample="e")
    make_store(tmp_path / "a.zarr", 30, sample="a")
    got = read_all(merge_stores([tmp_path / "empty.zarr", tmp_path / "a.zarr"], tmp_path / "d.zarr"))
    assert sorted(got["id"]) == sorted(f"r{i}" for i in range(30)) and np.bincount(got["split"]).tolist() == [
        27,
        3,
    ]
    assert read_all(merge_stores([tmp_path / "empty.zarr"], tmp_path / "e.zarr"))["id"].size == 0
    monkeypatch.setattr("kmervae.merge.MAX_BUCKETS", 10)
    with pytest.raises(KmervaeError, match="too small for 30 rows"):
        merge_stores([tmp_path / "a.zarr"], tmp_path / "f.zarr", memory_budget=1)

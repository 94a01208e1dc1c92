"""info: the description of a store matches counts recomputed from its arrays."""

import json

import numpy as np
import pytest
import zarr
from store_factory import make_store

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.info import LENGTH_THRESHOLDS, describe, render
from kmervae.merge import merge_stores
from kmervae.store import KmerStore


def test_describe_dataset_matches_its_arrays(tmp_path):
    a = make_store(tmp_path / "a.zarr", 120, sample="aquatic", seed=1)
    b = make_store(tmp_path / "b.zarr", 80, sample="terrestrial", seed=2)
    merge_stores(
        [tmp_path / "a.zarr", tmp_path / "b.zarr"],
        tmp_path / "d.zarr",
        fractions=(0.7, 0.2, 0.1),
        test_samples=["terrestrial"],
    )
    info = describe(tmp_path / "d.zarr")
    s = KmerStore(tmp_path / "d.zarr")
    samples = np.asarray(s.array("sample")[:], dtype=object).astype(str)
    split = s.array("split")[:]
    lengths = np.concatenate([a["length"], b["length"]])
    assert info["n"] == 200 and info["matrix"] == "counts" and info["layout"] == "2-mers+1-mers"
    assert info["splits"] == dict(
        zip(["train", "validation", "test"], np.bincount(split, minlength=3).tolist())
    )
    for name in ("aquatic", "terrestrial"):
        expected = np.bincount(split[samples == name], minlength=3).tolist()
        assert list(info["samples"][name].values()) == expected
    assert info["lengths"]["min"] == lengths.min() and info["lengths"]["max"] == lengths.max()
    assert info["lengths"]["mean"] == pytest.approx(lengths.mean(), abs=0.05)
    for t in LENGTH_THRESHOLDS:
        assert info["lengths"][f">={t}"] == int((lengths >= t).sum())
    assert info["provenance"]["test_samples"] == ["terrestrial"]
    text = render(info)
    assert "rows       200" in text and "terrestrial: train 0, validation 0, test 80" in text


def test_info_cli_on_a_sample_store_and_other_paths(tmp_path, capsys):
    make_store(tmp_path / "s.zarr", 10, sample="sfe")
    assert main(["info", str(tmp_path / "s.zarr"), "--json"]) == 0
    out = capsys.readouterr().out
    info = json.loads(out[out.index("{") :])
    assert info["sample"] == "sfe" and info["n"] == 10 and "splits" not in info
    group = zarr.open_group(str(tmp_path / "e.zarr"), mode="w", zarr_format=3)
    group.attrs["format"] = "kmervae-embeddings"
    group.create_array("z_mean", shape=(4, 3), dtype=np.float32)
    other = describe(tmp_path / "e.zarr")
    assert other["kind"] == "kmervae-embeddings" and other["arrays"]["z_mean"]["shape"] == [4, 3]
    assert "z_mean" in render(other)
    with pytest.raises(KmervaeError, match="no such"):
        describe(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    assert main(["info", str(tmp_path / "plain")]) == 2

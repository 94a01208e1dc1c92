"""info: each kind of output is summarised with numbers recomputed independently from its files."""

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import stats
from store_factory import make_store
from synthetic_eval import make_data

from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.embed import embed_store
from kmervae.errors import KmervaeError
from kmervae.evaluate.baselines import baselines
from kmervae.evaluate.count_distance import count_distance
from kmervae.evaluate.map import map_embeddings
from kmervae.evaluate.retrieval import retrieval
from kmervae.evaluate.spearman import spearman
from kmervae.index import IndexParams, build_index
from kmervae.info import LENGTH_THRESHOLDS, describe, render
from kmervae.merge import merge_stores
from kmervae.vae.files import build_model, load_model, save_weights
from kmervae.io.store import KmerStore
from kmervae.train import train


def make_dataset(tmp_path):
    a = make_store(tmp_path / "a.zarr", 120, sample="aquatic", seed=1)
    b = make_store(tmp_path / "b.zarr", 80, sample="terrestrial", seed=2)
    merge_stores(
        [tmp_path / "a.zarr", tmp_path / "b.zarr"],
        tmp_path / "d.zarr",
        fractions=(0.7, 0.2, 0.1),
        test_samples=["terrestrial"],
    )
    return a, b


def json_of_cli(capsys, path):
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_describe_dataset_matches_its_arrays(tmp_path):
    a, b = make_dataset(tmp_path)
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


def test_info_cli_on_a_sample_store_and_a_plain_zarr_group(tmp_path, capsys):
    import zarr

    make_store(tmp_path / "s.zarr", 10, sample="sfe")
    info = json_of_cli(capsys, tmp_path / "s.zarr")
    assert info["sample"] == "sfe" and info["n"] == 10 and "splits" not in info
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    group.attrs["format"] = "something-else"
    group.create_array("x", shape=(4, 3), dtype=np.float32)
    other = describe(tmp_path / "g.zarr")
    assert other["kind"] == "something-else" and other["arrays"]["x"]["shape"] == [4, 3]
    assert "array x" in render(other)


def tiny_model(model_dir):
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": [2, 1]}, "model": {"hidden": [6], "latent": 3}})
    model = build_model(config).eval()
    model_dir.mkdir()
    (model_dir / "config.yaml").write_text(cfg.dump(config))
    save_weights(model, model_dir / "best.safetensors", config)
    return model


def test_embeddings_summary_counts_splits_and_names_the_model(tmp_path, capsys):
    make_dataset(tmp_path)
    model = tiny_model(tmp_path / "run7")
    embed_store(model, tmp_path / "d.zarr", tmp_path / "e.zarr", model_dir=tmp_path / "run7")
    store = KmerStore(tmp_path / "d.zarr")
    split = store.array("split")[:]
    samples = np.asarray(store.array("sample")[:], dtype=object).astype(str)
    info = json_of_cli(capsys, tmp_path / "e.zarr")
    assert info["kind"] == "embeddings" and info["n"] == 200 and info["width"] == 3
    assert info["model"]["name"] == "run7" and info["model"]["config_hash"] == model.config_hash
    assert info["model"]["weights_hash"] is None  # no such key written: read only when present
    assert info["source"]["path"] == str(tmp_path / "d.zarr") and info["source"]["n"] == 200
    assert list(info["splits"].values()) == np.bincount(split, minlength=3).tolist()
    assert info["samples"] == {s: int((samples == s).sum()) for s in ("aquatic", "terrestrial")}
    assert info["lengths"]["max"] == int(store.lengths().max())
    text = render(info)
    assert f"run7 (config {model.config_hash}" in text and "200 x 3" in text
    embed_store(model, tmp_path / "d.zarr", tmp_path / "t.zarr", split="test", model_dir=tmp_path / "run7")
    test_only = describe(tmp_path / "t.zarr")
    assert test_only["source"]["split"] == "test" and test_only["n"] == int((split == 2).sum())
    assert "split test only" in render(test_only)


def read_history(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_model_directory_summary_from_a_real_training_run(tmp_path, capsys):
    make_dataset(tmp_path)
    overrides = ["input.ks=[2, 1]", "model.hidden=[8]", "model.latent=2", "training.batch_size=32"]
    overrides += ["training.epochs=4", "loss.warmup_epochs=1", "training.lr=0.01"]
    config = cfg.load(None, overrides)
    train(config, tmp_path / "d.zarr", tmp_path / "m", device="cpu", threads=1)
    info = json_of_cli(capsys, tmp_path / "m")
    model = load_model(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)
    split = KmerStore(tmp_path / "d.zarr").array("split")[:]
    assert info["kind"] == "model directory" and info["name"] == "m"
    assert info["config_hash"] == model.config_hash == state["config_hash"]
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["weights"]["best"]["tensors"] == len(load_file(tmp_path / "m" / "best.safetensors"))
    t = info["training"]
    assert t["epochs"] == state["epoch"] == 4 and t["epochs_planned"] == 4 and t["finished"]
    assert t["best_epoch"] == state["best"]["epoch"]
    assert t["best_val_loss"] == pytest.approx(state["best"]["score"], rel=1e-12)
    assert t["data"] == {
        "path": str(tmp_path / "d.zarr"),
        "train_rows": int((split == 0).sum()),
        "validation_rows": int((split == 1).sum()),
        "columns": 12,
    }
    assert float(read_history(tmp_path / "m" / "history.tsv")[-1]["val_loss"]) == t["last"]["val_loss"]
    text = render(info)
    assert f"parameters {info['parameters']:,}" in text and f"best       epoch {t['best_epoch']}" in text
    # a weights hash recorded in the weight file's metadata is shown; a foreign config hash is flagged
    tensors = load_file(tmp_path / "m" / "final.safetensors")
    meta = {"config_hash": "0" * 16, "weights_sha256": "ab" * 32}
    save_file(tensors, tmp_path / "m" / "best.safetensors", metadata=meta)
    again = describe(tmp_path / "m")
    assert again["weights_hash"] == "ab" * 32 and any("0" * 16 in p for p in again["problems"])
    assert "warning:" in render(again)


def test_model_weights_are_counted_from_the_header_without_building_the_model(tmp_path):
    model = tiny_model(tmp_path / "m")
    info = describe(tmp_path / "m")
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["weights"]["best"]["elements"] == sum(v.numel() for v in model.state_dict().values())
    assert info["training"]["epochs"] == 0 and not info["training"]["finished"]
    raw = (tmp_path / "m" / "best.safetensors").read_bytes()
    (tmp_path / "m" / "best.safetensors").write_bytes(raw[:6])
    with pytest.raises(KmervaeError, match="best.safetensors: not a safetensors file"):
        describe(tmp_path / "m")


def test_index_summary_from_its_sidecars(tmp_path, capsys):
    data = make_data(tmp_path, n=60, latent=4)
    meta = build_index(data["emb"], tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    for path in (tmp_path / "i.faiss", tmp_path / "i.faiss.json"):
        info = json_of_cli(capsys, path)
        assert info["kind"] == "FAISS index" and info["path"] == str(tmp_path / "i.faiss")
        assert info["index_kind"] == "flat" and info["metric"] == "l2" and info["n"] == 60 == info["ids"]
        assert info["width"] == 4 and info["model_config_hash"] == meta["model_config_hash"] == "hash-a"
        assert info["memory_bytes"] == (tmp_path / "i.faiss").stat().st_size > 60 * 4 * 4
        assert info["problems"] == []
        assert info["nearest_quantiles"] == meta["calibration"]["quantiles"]
        assert set(info["nearest_quantiles"]) == {"50", "90", "95", "99", "99.9"}
    assert f"99% {meta['calibration']['quantiles']['99']:.4g}" in render(describe(tmp_path / "i.faiss"))
    ids = tmp_path / "i.faiss.ids.tsv"
    ids.write_text("\n".join(ids.read_text().splitlines()[:-1]) + "\n")
    info = describe(tmp_path / "i.faiss")
    assert info["ids"] == 59 and "lists 59 IDs but the metadata says 60" in render(info)


def test_report_tree_headlines_match_the_report_files(tmp_path, capsys):
    data = make_data(tmp_path, n=120)
    root = tmp_path / "reports" / "run1" / "test"
    spearman(data["emb"], data["store"], root / "spearman", pool=0, queries=20, k=5, bootstrap=200)
    count_distance(data["emb"], root / "count_distance", sample=0, pairs=300, ranges=[(0, 0.1)])
    retrieval(data["emb"], data["labels"], root / "retrieval", ks=(1, 5), queries=20)
    baselines(
        data["emb"], data["store"], root / "baselines", widths=(4,), pool=0, queries=20, k=5, bootstrap=0
    )
    map_embeddings(data["emb"], root / "map", sample=0, n_iter=50, early_exaggeration_iter=20, split="all")
    info = json_of_cli(capsys, tmp_path / "reports")
    assert [f["folder"] for f in info["folders"]] == [
        "run1/test/baselines",
        "run1/test/count_distance",
        "run1/test/map",
        "run1/test/retrieval",
        "run1/test/spearman",
    ]
    by_name = {name: r for f in info["folders"] for name, r in f["reports"].items()}
    pairs = read_history(root / "spearman" / "spearman_pairs.tsv")
    rho = stats.spearmanr([float(p["latent_distance"]) for p in pairs], [float(p["kmer_mse"]) for p in pairs])
    s = by_name["spearman"]
    assert s["spearman"] == pytest.approx(rho.statistic, abs=1e-3) and s["k"] == 5 and s["queries"] == 20
    assert s["spearman_ci95"][0] <= s["spearman"] <= s["spearman_ci95"][1]
    rows = read_history(root / "retrieval" / "retrieval.tsv")
    assert by_name["retrieval"]["precision"] == pytest.approx(
        {f"{r['method']}@{r['k']}": float(r["precision"]) for r in rows}, abs=1e-6
    )
    fit = json.loads((root / "count_distance" / "count_distance.json").read_text())["fits"][0]
    assert by_name["count_distance"]["fits"][0]["slope"] == fit["slope"]
    table = read_history(root / "baselines" / "baselines.tsv")
    got = by_name["baselines"]["rows"]
    assert [(r["method"], r["width"]) for r in got] == [(t["method"], int(t["width"])) for t in table]
    assert [r["spearman"] for r in got] == pytest.approx([float(t["spearman"]) for t in table], abs=1e-5)
    assert got[0]["spearman_ci95"] == [None, None]  # no bootstrap: NaN in the report, null in strict JSON
    clusters = np.array([int(r["cluster"]) for r in read_history(root / "map" / "map.tsv")])
    m = by_name["map"]
    assert m["n"] == len(clusters) == 120 and m["clusters"] == clusters.max() + 1
    assert m["noise_fraction"] == pytest.approx((clusters < 0).mean())
    text = render(describe(root / "spearman"))
    lo, hi = s["spearman_ci95"]
    assert f"Spearman {s['spearman']:.3f} (95% CI {lo:.3f} to {hi:.3f})" in text
    text = render(describe(tmp_path / "reports"))
    assert "P@5" in text and f"map        120 contigs, {m['clusters']} clusters" in text


def test_unknown_and_broken_paths_are_one_line(tmp_path, capsys):
    with pytest.raises(KmervaeError, match="no such"):
        describe(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.txt").write_text("hello\n")
    for path, what in ((tmp_path / "plain", "directory"), (tmp_path / "notes.txt", "file")):
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"kmervae: error: {path}: this {what} is not a k-mer store") and "\n" not in err
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "spearman.json").write_text("{not json")
    with pytest.raises(KmervaeError, match="spearman.json: not valid JSON"):
        describe(tmp_path / "r")
    (tmp_path / "r" / "spearman.json").write_text('{"pool": 3}')
    with pytest.raises(KmervaeError, match="spearman.json: no 'spearman' entry"):
        describe(tmp_path / "r")

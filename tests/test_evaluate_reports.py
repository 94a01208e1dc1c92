"""count-distance, baselines, retrieval and map against brute-force and library oracles."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from synthetic_eval import make_data

from kmervae.cli import main
from kmervae.embed import EmbeddingsWriter, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.evaluate.baselines import baselines
from kmervae.evaluate.count_distance import bimodality_coefficient, count_distance
from kmervae.evaluate.map import map_embeddings
from kmervae.evaluate.retrieval import read_labels, retrieval
from kmervae.evaluate.spearman import spearman


def cosine_nn(z):
    u = z.astype(np.float64) / np.linalg.norm(z, axis=1, keepdims=True)
    d = 1 - u @ u.T
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def test_count_distance_matches_brute_force(tmp_path):
    data = make_data(tmp_path, n=150)
    r = count_distance(
        data["emb"], tmp_path / "cd", split="all", sample=0, ranges=[(0, 0.05), (0, 0.2)], pairs=500
    )
    nn = cosine_nn(data["z"])
    assert r["sample"] == 150
    assert r["nn_distance"]["mean"] == pytest.approx(nn.mean(), abs=1e-7)
    assert r["nn_distance"]["median"] == pytest.approx(np.median(nn), abs=1e-7)
    grid = np.linspace(0, 0.2, 200)
    fit = stats.linregress(grid, [(nn <= g).sum() for g in grid])
    assert r["fits"][1]["slope"] == pytest.approx(fit.slope) and r["fits"][1]["r2"] == pytest.approx(
        fit.rvalue**2
    )
    hist = np.loadtxt(tmp_path / "cd" / "count_distance.tsv", skiprows=1)
    assert hist[:, 2].sum() == 150 and hist[-1, 3] == 150
    assert json.loads((tmp_path / "cd" / "count_distance.json").read_text())["fits"][0]["range"] == [0, 0.05]
    for name in ("nn_distance_hist", "count_vs_distance", "pairwise_distances"):
        assert (tmp_path / "cd" / f"{name}.pdf").exists()


def strict_json(path):
    """The JSON as a strict parser reads it: NaN or Infinity in a report is an error."""

    def refuse(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_count_distance_defaults_fit_on_the_cosine_scale_like_linregress_and_polyfit(tmp_path, capsys):
    data = make_data(tmp_path, n=150)
    out = tmp_path / "cd"
    assert main(["evaluate", "count-distance", "--embeddings", str(data["emb"]), "-o", str(out),
                 "--split", "all", "--sample", "0", "--pairs", "500"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    r = strict_json(out / "count_distance.json")
    assert r["metric"] == "cosine" and [f["range"] for f in r["fits"]] == [[0, 0.2], [0, 0.5], [0, 0.7]]
    nn = np.sort(cosine_nn(data["z"]))
    for fit in r["fits"]:
        grid = np.linspace(*fit["range"], 200)
        count = np.searchsorted(nn, grid, side="right")
        slope, intercept = np.polyfit(grid, count, 1)
        assert fit["slope"] == pytest.approx(slope, rel=1e-6) and fit["slope"] > 0
        assert fit["intercept"] == pytest.approx(intercept, rel=1e-6, abs=1e-6)
        assert fit["r2"] == pytest.approx(stats.linregress(grid, count).rvalue ** 2, rel=1e-9)
        assert 0 < fit["r2"] <= 1 and f"fit {fit['range'][0]:g}-{fit['range'][1]:g}: slope" in printed
    assert "nan" not in printed


def test_count_distance_ranges_that_do_not_fit_the_metric_are_one_line_errors(tmp_path, capsys):
    data = make_data(tmp_path, n=150)
    z = data["z"].astype(np.float64)
    d = np.linalg.norm(z[:, None] - z[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.2  # on this data no Euclidean nearest neighbour is within the cosine-scale range
    out = tmp_path / "cd"
    with pytest.raises(
        KmervaeError, match=r"fit range 0-0\.2 holds none of the 150 nearest-neighbour euclidean"
    ):
        count_distance(data["emb"], out, split="all", sample=0, metric="euclidean", ranges=[(0, 0.2)])
    with pytest.raises(KmervaeError, match=r"fit range 0-2\.5 does not fit cosine distance"):
        count_distance(data["emb"], out, split="all", sample=0, ranges=[(0, 0.2), (0, 2.5)])
    with pytest.raises(KmervaeError, match=r"fit range 0\.5-0\.5 does not fit"):
        count_distance(data["emb"], out, split="all", sample=0, ranges=[(0.5, 0.5)])
    with pytest.raises(KmervaeError, match="at least 4 random pairs"):
        count_distance(data["emb"], out, split="all", sample=0, pairs=0)
    assert not out.exists()
    argv = ["evaluate", "count-distance", "--embeddings", str(data["emb"]), "-o", str(out), "--split", "all"]
    assert main([*argv, "--metric", "euclidean"]) == 2  # the default ranges are on the cosine scale
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fit range 0-0.2 holds none" in err and str(data["emb"]) in err
    assert not out.exists()
    # Euclidean ranges on the Euclidean scale fit
    hi = float(np.quantile(d.min(axis=1), 0.9))
    assert main([*argv, "--metric", "euclidean", "--ranges", f"0-{hi}"]) == 0
    fit = strict_json(out / "count_distance.json")["fits"][0]
    grid = np.linspace(0, hi, 200)
    oracle = stats.linregress(grid, np.searchsorted(np.sort(d.min(axis=1)), grid, side="right"))
    assert fit["slope"] == pytest.approx(oracle.slope) and fit["r2"] == pytest.approx(oracle.rvalue**2)


def test_bimodality_coefficient_separates_one_mode_from_two():
    rng = np.random.default_rng(0)
    assert bimodality_coefficient(rng.normal(size=5000)) < 0.5
    assert bimodality_coefficient(np.concatenate([rng.normal(-4, 1, 2500), rng.normal(4, 1, 2500)])) > 0.6


def test_pca_baseline_matches_sklearn_and_brute_force(tmp_path):
    data = make_data(tmp_path, n=90)
    kw = dict(split="all", pool=0, queries=90, k=5, bootstrap=0, fit_sample=0)
    r = baselines(data["emb"], data["store"], tmp_path / "b", widths=[3, 10], **kw)
    rows = {(row["method"], row["width"]): row for row in r["rows"]}
    assert set(rows) == {("vae", 8), ("pca_clr", 3), ("pca_clr", 10)}
    clr = data["clr"]
    train = data["split"] == 0  # PCA is fitted on the store's train split, like the VAE
    assert r["pca_fit"] == {"source": "train", "rows": int(train.sum())}
    for w in (3, 10):
        coords = PCA(n_components=w, svd_solver="full").fit(clr[train]).transform(clr)
        d = np.linalg.norm(coords[:, None] - coords[None], axis=2)
        np.fill_diagonal(d, np.inf)
        nb = np.argsort(d, axis=1, kind="stable")[:, :5]
        lat = np.take_along_axis(d, nb, 1).ravel()
        mse = ((clr[:, None, :] - clr[nb]) ** 2).mean(axis=2).ravel()
        # kmervae ranks float32 distances: near-tied pairs order differently between CPUs, and
        # one swap of adjacent ranks moves rho by 12 / (n (n^2 - 1)) (1.3e-7 for 450 pairs);
        # 1e-4 allows hundreds of such swaps and is 1/500 of rho's spread under no signal
        assert rows[("pca_clr", w)]["spearman"] == pytest.approx(
            stats.spearmanr(lat, mse).statistic, abs=1e-4
        )
        assert rows[("pca_clr", w)]["mse_top"]["1"] == pytest.approx(
            mse.reshape(90, 5)[:, 0].mean(), rel=1e-5
        )
    # the VAE row is the spearman report on the same pool and queries
    s = spearman(
        data["emb"], data["store"], tmp_path / "s", **{k: v for k, v in kw.items() if k != "fit_sample"}
    )
    assert rows[("vae", 8)]["spearman"] == s["spearman"] and rows[("vae", 8)]["mse_random"] == s["mse_random"]
    table = (tmp_path / "b" / "baselines.tsv").read_text().splitlines()
    assert table[0].startswith("method\twidth\tspearman") and len(table) == 4
    too_wide = baselines(data["emb"], data["store"], tmp_path / "b2", widths=[10, 500], **kw)
    assert too_wide["skipped_widths"] == [500] and [row["width"] for row in too_wide["rows"]] == [8, 10]


def write_points(path, xs, ids):
    z = np.stack([np.asarray(xs, dtype=np.float32), np.zeros(len(xs), np.float32)], axis=1)
    with EmbeddingsWriter(path, 2, attrs={"model_config_hash": "h"}) as w:
        w.append(ids, np.ones(len(ids)), z)


def test_retrieval_precision_on_a_hand_computed_case(tmp_path, capsys):
    ids = [f"p{i}" for i in range(6)]
    write_points(tmp_path / "e.zarr", [0, 1, 3, 10, 11, 13], ids)
    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "contig_id\tgenome\n" + "".join(f"{i}\t{g}\n" for i, g in zip(ids, "AABBBA")) + "other\tC\n"
    )
    r = retrieval(tmp_path / "e.zarr", labels, tmp_path / "r", ks=(1, 2), queries=6)
    got = {(row["method"], row["k"]): row["precision"] for row in r["rows"]}
    # nearest (ties by position): p0->p1,p2  p1->p0,p2  p2->p1,p0  p3->p4,p5  p4->p3,p5  p5->p4,p3
    assert got[("vae", 1)] == pytest.approx(4 / 6)
    assert got[("vae", 2)] == pytest.approx(2 / 6)
    assert got[("chance", 1)] == pytest.approx(2 / 5)
    assert r["pool"] == 6 and r["labels"] == 2
    assert (
        main(
            [
                "evaluate",
                "retrieval",
                "--embeddings",
                str(tmp_path / "e.zarr"),
                "--labels",
                str(labels),
                "-o",
                str(tmp_path / "r2"),
                "--ks",
                "1,2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "vae" in out and "0.667" in out and "P@2" in out


def test_retrieval_baselines_against_brute_force_clr(tmp_path):
    data = make_data(tmp_path, n=120, genomes=3)
    r = retrieval(
        data["emb"], data["labels"], tmp_path / "r", store=data["store"], ks=(1, 10), split="all", queries=120
    )
    got = {(row["method"], row["k"]): row["precision"] for row in r["rows"]}
    assert {m for m, _ in got} == {"vae", "clr", "pca_clr", "clr_4mer", "chance"}
    g = data["genome"]
    for method, x in (("clr", data["clr"]), ("clr_4mer", data["clr"][:, :136])):
        d = np.linalg.norm(x[:, None] - x[None], axis=2)
        np.fill_diagonal(d, np.inf)
        nb = np.argsort(d, axis=1, kind="stable")[:, :10]
        assert got[(method, 1)] == pytest.approx(np.mean(g[nb[:, 0]] == g))
        assert got[(method, 10)] == pytest.approx(np.mean(g[nb] == g[:, None]))
    assert got[("clr", 10)] > got[("chance", 10)] + 0.2


def test_retrieval_bad_labels_are_clear_errors(tmp_path):
    data = make_data(tmp_path, n=30)
    bad = tmp_path / "bad.tsv"
    bad.write_text("contig_id\tspecies\nx\ty\n")
    with pytest.raises(KmervaeError, match="no column 'genome'"):
        read_labels(bad, "genome")
    bad.write_text("contig_id\tgenome\nx\ty\nx\tz\n")
    with pytest.raises(KmervaeError, match="record 2 \\(x\\) repeats"):
        read_labels(bad, "genome")
    bad.write_text("contig_id\tgenome\nnot_there\ty\n")
    with pytest.raises(KmervaeError, match="pool of contigs is empty"):
        retrieval(data["emb"], bad, tmp_path / "r")


def test_map_coordinates_clusters_and_gc(tmp_path):
    data = make_data(tmp_path, n=200, genomes=3)
    kw = dict(
        store=data["store"],
        labels=data["labels"],
        split="all",
        sample=0,
        n_iter=50,
        early_exaggeration_iter=25,
        min_cluster_size=10,
        min_samples=5,
    )
    r = map_embeddings(data["emb"], tmp_path / "m", **kw)
    with_sample = [line.split("\t") for line in (tmp_path / "m" / "map.tsv").read_text().splitlines()]
    # the embeddings have a sample column, so the map names each contig by (sample, id)
    assert with_sample[0] == ["sample", "id", "x", "y", "cluster", "gc", "label"] and len(with_sample) == 201
    emb = open_embeddings(data["emb"])
    sample_of = dict(zip(emb.ids(), emb.samples()))
    assert all(row[0] == sample_of[row[1]] for row in with_sample[1:])
    lines = [row[1:] for row in with_sample]
    index = [int(row[0].split("_")[1]) for row in lines[1:]]
    counts = data["counts"][index].astype(np.float64)
    gc = counts[:, -1] / counts[:, -2:].sum(axis=1)  # 1-mer columns: A/T then C/G
    np.testing.assert_allclose([float(row[4]) for row in lines[1:]], gc, rtol=1e-5)
    xy = np.array([[float(row[1]), float(row[2])] for row in lines[1:]])
    clusters = np.array([int(row[3]) for row in lines[1:]])
    # HDBSCAN on the written (6-digit) coordinates gives the written clusters
    oracle = HDBSCAN(min_cluster_size=10, min_samples=5, copy=True).fit_predict(xy)
    assert adjusted_rand_score(oracle, clusters) > 0.95 and clusters.max() >= 1
    assert r["clusters"] == clusters.max() + 1 and r["n"] == 200
    assert [row[5] for row in lines[1:]] == [f"g{data['genome'][i]}" for i in index]
    # Same machine, same threads: the same bytes.
    again = map_embeddings(data["emb"], tmp_path / "m2", **kw)
    assert (tmp_path / "m" / "map.tsv").read_bytes() == (
        tmp_path / "m2" / "map.tsv"
    ).read_bytes() and again == {**r, "embeddings": again["embeddings"]}
    # Other thread counts promise no bits (parallel sums may round differently): the same map
    # within float tolerance and the same clusters up to rounding at their borders.
    threaded = map_embeddings(data["emb"], tmp_path / "m3", **kw, threads=2)
    rows3 = [line.split("\t")[1:] for line in (tmp_path / "m3" / "map.tsv").read_text().splitlines()[1:]]
    assert [row[0] for row in rows3] == [row[0] for row in lines[1:]]
    xy3 = np.array([[float(row[1]), float(row[2])] for row in rows3])
    np.testing.assert_allclose(xy3, xy, rtol=1e-3, atol=1e-3 * np.ptp(xy))
    assert adjusted_rand_score(clusters, [int(row[3]) for row in rows3]) > 0.95
    assert threaded["n"] == r["n"]
    for name in ("map_gc", "map_cluster", "map_label"):
        assert (tmp_path / "m" / f"{name}.png").exists()
    assert np.ptp(xy[:, 0]) > 0

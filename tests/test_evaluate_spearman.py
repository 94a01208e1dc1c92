"""spearman: neighbours, pairs and statistics recomputed independently; bad inputs."""

import json

import numpy as np
import pytest
from scipy import stats
from synthetic_eval import make_data

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.evaluate.neighbours import knn_in_memory
from kmervae.evaluate.spearman import bootstrap_correlations, spearman


def read_pairs(path):
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["query", "rank", "neighbour", "latent_distance", "kmer_mse"]
    return [line.split("\t") for line in lines[1:]]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_knn_matches_brute_force(metric):
    rng = np.random.default_rng(3)
    pool = rng.normal(size=(500, 12)).astype(np.float32)
    q = np.array([4, 99, 250, 499])
    pos, dist = knn_in_memory(pool[q], pool, 7, metric, exclude=q, block=64)
    p64 = pool.astype(np.float64)
    if metric == "euclidean":
        d = np.linalg.norm(p64[q][:, None] - p64[None], axis=2)
    else:
        u = p64 / np.linalg.norm(p64, axis=1, keepdims=True)
        d = 1 - u[q] @ u.T
    d[np.arange(4), q] = np.inf
    expected = np.argsort(d, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(d, expected, 1), atol=1e-9)


def test_spearman_numbers_match_a_recomputation(tmp_path):
    data = make_data(tmp_path, shuffle_emb=True)
    out = tmp_path / "report"
    r = spearman(data["emb"], data["store"], out, pool=80, queries=10, k=6, bootstrap=200, seed=7)
    assert r["split"] == "test" and r["pool"] == 80 and r["queries"] == 10 and r["k"] == 6
    pairs = read_pairs(out / "spearman_pairs.tsv")
    assert len(pairs) == 60
    index = {cid: i for i, cid in enumerate(data["ids"])}
    test_rows = set(np.nonzero(data["split"] == 2)[0])
    q = [index[p[0]] for p in pairs]
    nb = [index[p[2]] for p in pairs]
    assert set(q) <= test_rows and set(nb) <= test_rows and all(a != b for a, b in zip(q, nb))
    # latent distance and k-mer MSE recomputed from the synthetic truth
    lat = np.linalg.norm(data["z"][q].astype(np.float64) - data["z"][nb], axis=1)
    mse = ((data["clr"][q] - data["clr"][nb]) ** 2).mean(axis=1)
    np.testing.assert_allclose([float(p[3]) for p in pairs], lat, rtol=1e-5)
    np.testing.assert_allclose([float(p[4]) for p in pairs], mse, rtol=1e-4)
    assert r["spearman"] == pytest.approx(stats.spearmanr(lat, mse).statistic, abs=1e-4)
    assert r["pearson"] == pytest.approx(stats.pearsonr(lat, mse).statistic, abs=1e-4)
    assert r["mse_top"]["1"] == pytest.approx(mse.reshape(10, 6)[:, 0].mean(), rel=1e-4)
    assert r["mse_top"]["5"] == pytest.approx(mse.reshape(10, 6)[:, :5].mean(), rel=1e-4)
    assert set(r["mse_top"]) == {"1", "5"}  # only ranks <= K
    # each query's neighbours are its exact nearest among the pool (which it belongs to)
    pool_ids = {p[0] for p in pairs} | {p[2] for p in pairs}
    assert len(pool_ids) <= 80
    lo, hi = r["spearman_ci95"]
    assert lo <= r["spearman"] <= hi
    saved = json.loads((out / "spearman.json").read_text())
    for key in (
        "pool",
        "queries",
        "k",
        "metric",
        "spearman",
        "spearman_ci95",
        "pearson",
        "pearson_ci95",
        "mse_top",
        "mse_random",
        "seed",
    ):
        assert key in saved
    assert all(
        (out / f"{name}.{ext}").stat().st_size > 0
        for name in ("spearman_scatter", "mse_by_rank")
        for ext in ("png", "pdf")
    )
    # neighbours in the pool: brute force over the pool's own rows
    pool_all = sorted(pool_ids)
    first = [p for p in pairs if p[0] == pairs[0][0]]
    ranks = [p[2] for p in first]
    assert [float(p[3]) for p in first] == sorted(float(p[3]) for p in first)
    assert len(set(ranks)) == 6 and pool_all


def test_neighbours_are_the_exact_nearest_in_the_whole_pool(tmp_path):
    data = make_data(tmp_path, n=120)
    out = tmp_path / "r"
    r = spearman(
        data["emb"], data["store"], out, split="all", pool=0, queries=5, k=4, bootstrap=0, metric="cosine"
    )
    assert r["pool"] == 120 and r["split"] == "all" and np.isnan(r["spearman_ci95"][0])
    pairs = read_pairs(out / "spearman_pairs.tsv")
    z = data["z"].astype(np.float64)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    for query in {p[0] for p in pairs}:
        i = int(query.split("_")[1])
        d = 1 - u @ u[i]
        d[i] = np.inf
        expected = [f"contig_{j:04d}" for j in np.argsort(d, kind="stable")[:4]]
        assert [p[2] for p in pairs if p[0] == query] == expected


def test_same_seed_same_numbers(tmp_path):
    data = make_data(tmp_path)
    a = spearman(data["emb"], data["store"], tmp_path / "a", pool=60, queries=8, k=5, bootstrap=100)
    b = spearman(data["emb"], data["store"], tmp_path / "b", pool=60, queries=8, k=5, bootstrap=100)
    assert a == {**b, "embeddings": a["embeddings"]}
    assert (tmp_path / "a" / "spearman_pairs.tsv").read_bytes() == (
        tmp_path / "b" / "spearman_pairs.tsv"
    ).read_bytes()


def test_bootstrap_interval_brackets_the_statistic_and_matches_scipy_per_resample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    y = x + rng.normal(size=(30, 5))
    (lo, hi), (plo, phi) = bootstrap_correlations(x, y, 500, seed=1)
    rho = stats.spearmanr(x.ravel(), y.ravel()).statistic
    assert lo < rho < hi and plo < stats.pearsonr(x.ravel(), y.ravel()).statistic < phi
    # the same resamples drawn by hand and fed to scipy give the same interval
    # ties inside the data must get average ranks too
    y[3, :2] = y[7, 1] = 0.5
    pick = np.random.default_rng(1).integers(0, 30, size=(250, 30))
    manual = [stats.spearmanr(x[p].ravel(), y[p].ravel()).statistic for p in pick]
    manual_r = [stats.pearsonr(x[p].ravel(), y[p].ravel()).statistic for p in pick]
    (lo1, hi1), (plo1, phi1) = bootstrap_correlations(x, y, 250, seed=1)
    assert (lo1, hi1) == pytest.approx(tuple(np.percentile(manual, [2.5, 97.5])), abs=1e-9)
    assert (plo1, phi1) == pytest.approx(tuple(np.percentile(manual_r, [2.5, 97.5])), abs=1e-9)


def test_bad_inputs_are_one_clear_error(tmp_path, capsys):
    data = make_data(tmp_path, n=30)
    with pytest.raises(KmervaeError, match="smaller than K\\+1 = 11"):
        spearman(data["emb"], data["store"], tmp_path / "r", k=10)  # 10 test rows
    with pytest.raises(KmervaeError, match="pool of contigs is empty"):
        spearman(data["emb"], data["store"], tmp_path / "r", split="validation")
    # a store without the embeddings' contigs
    from kmervae.kmers import Layout
    from kmervae.io.store import StoreWriter

    with StoreWriter(tmp_path / "wrong.zarr", Layout.parse("4..1")) as w:
        w.append(["x1", "x2"], [1, 1], np.ones((2, Layout.parse("4..1").width)))
    code = main(
        [
            "evaluate",
            "spearman",
            "--embeddings",
            str(data["emb"]),
            "--store",
            str(tmp_path / "wrong.zarr"),
            "-o",
            str(tmp_path / "r"),
            "--k",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "is not in the k-mer store" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()

"""The map at scale: FAISS neighbours' affinities, the HDBSCAN used, placing the rest on a fitted map.

Oracles: openTSNE's own affinities from its exact (scikit-learn) neighbours, numpy brute-force
neighbours, scikit-learn's HDBSCAN, and map.tsv of the fitted contigs read back.
"""

import json

import numpy as np
import pandas as pd
import pytest
from openTSNE.affinity import PerplexityBasedNN
from sklearn.cluster import HDBSCAN
from sklearn.metrics import adjusted_rand_score
from synthetic_eval import make_data

from kmervae.evaluate import map_tsne
from kmervae.evaluate.map import cluster, map_embeddings


def clustered(n, dim, centres, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, centres, size=n)
    z = rng.normal(size=(centres, dim))[label] + spread * rng.normal(size=(n, dim))
    return z.astype(np.float32), label


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_faiss_affinities_equal_opentsne_exact_ones(metric):
    z, _ = clustered(400, 16, 6, seed=1)
    x = map_tsne.prepared(z.copy(), metric)  # prepared() may scale rows in place
    got = map_tsne.affinities(map_tsne.neighbours(x, 10.0, seed=0, threads=1), 10.0).P.toarray()
    # openTSNE's exact search; cosine as the Euclidean distance of unit rows, normalised in float64
    rows = z.astype(np.float64)
    if metric == "cosine":
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    oracle = PerplexityBasedNN(rows, perplexity=10.0, method="exact", metric="euclidean", k_neighbors=30)
    want = oracle.P.toarray()
    assert got.shape == want.shape == (400, 400)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9 * want.max())
    assert got.sum() == pytest.approx(1.0)


def test_ivf_neighbours_are_seeded_and_close_to_exact(monkeypatch):
    z, _ = clustered(3000, 24, 40, seed=2, spread=0.5)
    x = map_tsne.prepared(z, "euclidean")
    monkeypatch.setattr(map_tsne, "EXACT_MAX", 1000)  # 3000 rows go to the IVF index
    first = map_tsne.neighbours(x, 10.0, seed=3, threads=1)
    indices, distances = first.build()
    assert first.index.nlist == 64 and indices.shape == (3000, 30)
    again, _ = map_tsne.neighbours(x, 10.0, seed=3, threads=1).build()
    np.testing.assert_array_equal(indices, again)
    d = ((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    exact = np.argsort(d, axis=1)[:, :30]
    found = np.mean([len(np.intersect1d(a, b)) / 30 for a, b in zip(indices, exact)])
    assert found > 0.9
    assert not np.any(indices == np.arange(3000)[:, None])  # nobody is their own neighbour
    np.testing.assert_allclose(distances, np.sqrt(np.take_along_axis(d, indices, axis=1)), rtol=1e-3)


def test_clusters_are_scikit_learns():
    rng = np.random.default_rng(4)
    centres = rng.uniform(-30, 30, size=(8, 2))
    xy = np.concatenate([c + rng.normal(size=(300, 2)) * rng.uniform(0.5, 2) for c in centres])
    xy = np.concatenate([xy, rng.uniform(-40, 40, size=(200, 2))])
    xy = np.round(xy, 4)
    for mcs, ms in ((25, 5), (40, 10)):
        want = HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True).fit_predict(xy)
        got = cluster(xy, mcs, ms, threads=1)
        assert got.max() == want.max() and want.max() >= 5
        assert adjusted_rand_score(want, got) > 0.99
        np.testing.assert_array_equal(cluster(xy, mcs, ms, threads=2), got)


def test_place_rest_is_seeded_and_puts_contigs_beside_their_neighbours(tmp_path):
    data = make_data(tmp_path, n=400, genomes=3)
    kw = dict(split="all", sample=200, place_rest=True, n_iter=100, early_exaggeration_iter=50, seed=5)
    kw.update(min_cluster_size=10, min_samples=5)
    r = map_embeddings(data["emb"], tmp_path / "a", **kw)
    assert r["n"] == 400 and r["fitted"] == 200
    assert json.loads((tmp_path / "a" / "map.json").read_text())["fitted"] == 200
    again = map_embeddings(data["emb"], tmp_path / "b", **kw)
    assert (tmp_path / "a" / "map.tsv").read_bytes() == (tmp_path / "b" / "map.tsv").read_bytes()
    assert again["clusters"] == r["clusters"]
    table = pd.read_csv(tmp_path / "a" / "map.tsv", sep="\t", dtype={"id": str})
    assert sorted(table["id"]) == sorted(data["ids"])  # every contig is on the map, once
    # the fitted ones are the seeded sample of a plain map with the same seed
    plain = map_embeddings(data["emb"], tmp_path / "c", **{**kw, "place_rest": False})
    alone = pd.read_csv(tmp_path / "c" / "map.tsv", sep="\t", dtype={"id": str}).set_index("id")
    fitted_ids = set(alone.index)
    assert plain["n"] == 200 and len(fitted_ids) == 200
    # placing the rest leaves the fitted map as it was, only centred
    both = table.set_index("id").loc[alone.index]
    shift = both[["x", "y"]].to_numpy() - alone[["x", "y"]].to_numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4 * np.ptp(alone["x"]))
    position = {i: k for k, i in enumerate(data["ids"])}
    z = data["z"][[position[i] for i in table["id"]]].astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    xy = table[["x", "y"]].to_numpy()
    fitted = table["id"].isin(fitted_ids).to_numpy()
    placed = np.nonzero(~fitted)[0]
    # each placed contig lies near the map positions of its 5 nearest fitted contigs (brute force)
    d = ((z[placed, None, :] - z[None, fitted, :]) ** 2).sum(axis=2)
    nearest = np.argsort(d, axis=1)[:, :5]
    centre = np.median(xy[fitted][nearest], axis=1)
    gap = np.linalg.norm(xy[placed] - centre, axis=1)
    # baseline: a random fitted contig of the same genome in its place
    genome = data["genome"][[position[i] for i in table["id"]]]
    rng = np.random.default_rng(0)
    same = [rng.choice(np.nonzero(genome[fitted] == g)[0]) for g in genome[placed]]
    baseline = np.linalg.norm(xy[fitted][same] - centre, axis=1)
    assert np.median(gap) < 0.5 * np.median(baseline)
    # and in its genome's region: its nearest fitted contig on the map shares its genome about as
    # often as a fitted contig's nearest other fitted contig does (the genomes overlap a little)
    on_map = ((xy[placed, None, :] - xy[None, fitted, :]) ** 2).sum(axis=2).argmin(axis=1)
    among = ((xy[fitted, None, :] - xy[None, fitted, :]) ** 2).sum(axis=2)
    np.fill_diagonal(among, np.inf)
    agree_fitted = np.mean(genome[fitted][among.argmin(axis=1)] == genome[fitted])
    agree_placed = np.mean(genome[fitted][on_map] == genome[placed])
    assert agree_placed > max(agree_fitted - 0.05, 0.8)

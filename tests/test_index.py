"""FAISS index and query: exact recall, deterministic tie-breaking, clear errors."""

import json

import numpy as np
import pytest

from kmervae.cli import main
from kmervae.embed import EmbeddingsWriter, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.index import IndexParams, LoadedIndex, build_index, query_index


def write_embeddings(path, z, ids=None, model_hash="model-a", chunk_rows=16):
    ids = ids if ids is not None else [f"c{i:03d}" for i in range(len(z))]
    attrs = {"model_config_hash": model_hash, "model_dir": "m", "input": "synthetic"}
    with EmbeddingsWriter(path, z.shape[1], attrs=attrs, chunk_rows=chunk_rows) as w:
        for a in range(0, len(z), 7):
            w.append(ids[a : a + 7], np.full(len(ids[a : a + 7]), 1000), z[a : a + 7])
    return ids


def brute_force(z, queries, k, metric, exclude=None):
    """Independent oracle: full distance matrix in float64, ties by id (ids sort like positions here)."""
    z64, q64 = z.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        z64 = z64 / np.linalg.norm(z64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        d = 1 - q64 @ z64.T
    else:
        d = np.sqrt(((q64[:, None, :] - z64[None, :, :]) ** 2).sum(-1))
    if exclude is not None:
        d[np.arange(len(q64)), exclude] = np.inf
    return np.stack([np.lexsort((np.arange(len(z)), row))[:k] for row in d]), d


def read_tsv(path):
    """(query id, rank, neighbour id, distance) of each row of neighbours.tsv."""
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    assert header[:6] == ["query_sample", "query_id", "rank", "neighbour_sample", "neighbour_id", "distance"]
    return [[f[1], f[2], f[4], f[5]] for f in (line.split("\t") for line in lines[1:])]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_flat_index_is_exact(tmp_path, metric):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 8)).astype(np.float32)
    ids = write_embeddings(tmp_path / "e.zarr", z)
    meta = build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric=metric, kind="auto"))
    assert meta["kind"] == "flat" and meta["n"] == 120 and meta["model_config_hash"] == "model-a"
    index = LoadedIndex(tmp_path / "i.faiss")
    pos, dist = index.search(z[:30], 10, exclude=np.arange(30))
    expected, d = brute_force(z, z[:30], 10, metric, exclude=np.arange(30))
    # recall of flat = 1, same order: float32 FAISS and the float64 oracle rank alike on any CPU
    # because these random points have no near-ties (checked, far above float32 rounding)
    assert np.diff(np.take_along_axis(d, expected, 1), axis=1).min() > 1e-4
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(d, expected, 1), atol=1e-5)
    assert list(index.ids[:3]) == ids[:3]


def test_query_by_ids_breaks_ties_by_id_and_excludes_self(tmp_path):
    # five identical vectors far from the rest: their mutual distances tie at 0
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 4)).astype(np.float32) + 10
    z[[3, 17, 8, 30, 25]] = 0.0
    z[[3, 17, 8, 30, 25], 0] = -50.0
    ids = [f"id{(i * 7) % 40:02d}" for i in range(40)]  # ids not in row order
    write_embeddings(tmp_path / "e.zarr", z, ids=ids)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    out = tmp_path / "n.tsv"
    assert (
        main(["query", "--index", str(tmp_path / "i.faiss"), "--ids", ids[17], "-k", "3", "-o", str(out)])
        == 0
    )
    rows = read_tsv(out)
    tied = sorted(ids[i] for i in (3, 8, 30, 25))
    assert [r[2] for r in rows] == tied[:3]
    assert [r[1] for r in rows] == ["1", "2", "3"]
    assert all(float(r[3]) == 0.0 for r in rows) and all(r[0] == ids[17] for r in rows)


def test_ties_straddling_the_search_width_are_still_broken_by_id(tmp_path):
    # 60 exact duplicates: FAISS returns an arbitrary subset; the widening search must not
    z = np.zeros((80, 3), dtype=np.float32)
    z[60:] = np.random.default_rng(2).normal(size=(20, 3)) + 5
    ids = [f"x{(i * 37) % 80:02d}" for i in range(80)]
    write_embeddings(tmp_path / "e.zarr", z, ids=ids)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    index = LoadedIndex(tmp_path / "i.faiss")
    pos, _ = index.search(np.zeros((1, 3), np.float32), 5)
    assert list(index.ids[pos[0]]) == sorted(ids[:60])[:5]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_most_neighbours(tmp_path, kind):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1000, 16)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z, chunk_rows=256)
    params = IndexParams(
        metric="l2", kind=kind, ivf_nlist=16, ivf_nprobe=8, train_sample=1000, ef_construction=64
    )
    meta = build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", params)
    assert meta["kind"] == kind
    index = LoadedIndex(tmp_path / "i.faiss")
    pos, _ = index.search(z[:50], 10)
    expected, _ = brute_force(z, z[:50], 10, "l2")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(pos, expected)])
    assert recall >= 0.9
    # reconstructing stored vectors works for every kind (used by --ids queries)
    np.testing.assert_allclose(index.vectors([5, 7]), z[[5, 7]], atol=1e-6)


def test_auto_switches_to_hnsw_above_exact_max(tmp_path):
    z = np.random.default_rng(4).normal(size=(50, 4)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    meta = build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(exact_max=49))
    assert meta["kind"] == "hnsw"
    assert json.loads((tmp_path / "i.faiss.json").read_text())["params"]["hnsw_m"] == 32


def test_query_with_embeddings_matches_ids(tmp_path):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(60, 6)).astype(np.float32)
    ids = write_embeddings(tmp_path / "e.zarr", z)
    write_embeddings(tmp_path / "q.zarr", z[:4] + 0.01, ids=["q0", "q1", "q2", "q3"])
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss")
    n = query_index(tmp_path / "i.faiss", tmp_path / "n.tsv", k=5, embeddings=tmp_path / "q.zarr")
    rows = read_tsv(tmp_path / "n.tsv")
    assert n == 20 == len(rows)
    expected, _ = brute_force(z, z[:4] + 0.01, 5, "cosine")
    assert [r[2] for r in rows] == [ids[p] for p in expected.ravel()]
    dists = np.array([float(r[3]) for r in rows]).reshape(4, 5)
    assert np.all(np.diff(dists, axis=1) >= 0)


def test_bad_queries_are_one_clear_error(tmp_path, capsys):
    z = np.random.default_rng(6).normal(size=(30, 6)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss")
    idx = str(tmp_path / "i.faiss")
    assert main(["query", "--index", idx, "--ids", "c001", "nope", "-o", str(tmp_path / "n.tsv")]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "not in the index" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "n.tsv").exists()  # no partial output
    write_embeddings(tmp_path / "w.zarr", z[:, :4])
    with pytest.raises(KmervaeError, match="width 4 but the index .* has 6"):
        query_index(idx, tmp_path / "n.tsv", embeddings=tmp_path / "w.zarr")
    write_embeddings(tmp_path / "other.zarr", z, model_hash="model-b")
    with pytest.raises(KmervaeError, match="model model-b.*model model-a|from model"):
        query_index(idx, tmp_path / "n.tsv", embeddings=tmp_path / "other.zarr")
    with pytest.raises(KmervaeError, match="exactly one"):
        query_index(idx, tmp_path / "n.tsv")


def test_index_and_its_sidecars_must_agree(tmp_path):
    z = np.random.default_rng(7).normal(size=(20, 3)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss")
    ids_file = tmp_path / "i.faiss.ids.tsv"
    ids_file.write_text("\n".join(ids_file.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(KmervaeError, match="rebuild the index"):
        LoadedIndex(tmp_path / "i.faiss")
    assert open_embeddings(tmp_path / "e.zarr").n == 20


def _halve(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage, file, problem",
    [
        (_halve, "i.faiss", "not a readable FAISS index, truncated or damaged (the file ends early)"),
        (lambda p: p.write_bytes(b"garbage" * 40), "i.faiss", "not a readable FAISS index"),
        (lambda p: p.unlink(), "i.faiss.ids.tsv", "missing"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00\x01" * 30), "i.faiss.ids.tsv", "not a text ID list"),
        (lambda p: p.write_text("contig\nc000\n"), "i.faiss.ids.tsv", "line 1 should be the header 'sample"),
        (_halve, "i.faiss.json", "not valid JSON"),
        (lambda p: p.write_text("[1, 2]\n"), "i.faiss.json", "not the metadata of a kmervae index"),
        (
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "metric": "hamming"})),
            "i.faiss.json",
            "metric 'hamming'",
        ),
    ],
)
def test_damaged_index_or_sidecar_is_one_line_naming_the_file(tmp_path, capsys, damage, file, problem):
    z = np.random.default_rng(8).normal(size=(20, 3)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss")
    damage(tmp_path / file)
    out = tmp_path / "n.tsv"
    assert main(["query", "--index", str(tmp_path / "i.faiss"), "--ids", "c001", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"kmervae: error: {tmp_path / file}: ") and problem in err
    assert not out.exists()


def test_k_above_the_index_size_is_capped_with_a_warning(tmp_path, caplog):
    z = np.random.default_rng(9).normal(size=(12, 3)).astype(np.float32)
    ids = write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss")
    out = tmp_path / "n.tsv"
    with caplog.at_level("WARNING", logger="kmervae.index"):
        assert (
            main(
                [
                    "query",
                    "--index",
                    str(tmp_path / "i.faiss"),
                    "--ids",
                    *ids[:2],
                    "-k",
                    "500",
                    "-o",
                    str(out),
                ]
            )
            == 0
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"-k 500 is more than the 12 vectors in {tmp_path / 'i.faiss'}: k capped at 11 neighbours per query"
    ]
    rows = read_tsv(out)
    assert len(rows) == 2 * 11  # every other vector, the query itself left out
    assert {r[2] for r in rows if r[0] == ids[0]} == set(ids) - {ids[0]}
    caplog.clear()
    with caplog.at_level("WARNING", logger="kmervae.index"):
        assert (
            main(["query", "--index", str(tmp_path / "i.faiss"), "--ids", ids[0], "-k", "11", "-o", str(out)])
            == 0
        )
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # k within the index: no warning

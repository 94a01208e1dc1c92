"""FAISS index and query: exact recall, deterministic tie-breaking, clear errors."""

import json

import numpy as np
import pytest

from kmervae.cli import main
from kmervae.embed import EmbeddingsWriter, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.index import IndexParams, LoadedIndex, build_index, query_index


def write_embeddings(path, z, ids=None, model_hash="model-a", chunk_rows=16, step=7):
    ids = ids if ids is not None else [f"c{i:03d}" for i in range(len(z))]
    attrs = {"model_config_hash": model_hash, "model_dir": "m", "input": "synthetic"}
    with EmbeddingsWriter(path, z.shape[1], attrs=attrs, chunk_rows=chunk_rows) as w:
        for a in range(0, len(z), step):
            w.append(ids[a : a + step], np.full(len(ids[a : a + step]), 1000), z[a : a + step])
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


def test_auto_switches_to_ivf_above_exact_max(tmp_path):
    z = np.random.default_rng(4).normal(size=(50, 4)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    meta = build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(exact_max=49))
    assert meta["kind"] == "ivf"
    assert json.loads((tmp_path / "i.faiss.json").read_text())["params"]["ivf_nlist"] == 1  # 50 / 39


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


# -- compressed indexes, the memory budget and re-ranking ---------------------------------


def clustered(n, dim, clusters, seed):
    """Well-separated clusters with spread inside: neighbours are local, as in embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 4
    return (centres[rng.integers(0, clusters, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def recall_at(found, expected):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected)])


COMPRESSED_PARAMS = {
    "ivf-sq8": dict(kind="ivf-sq8", ivf_nlist=16, ivf_nprobe=4),
    "ivf-pq": dict(kind="ivf-pq", ivf_nlist=16, ivf_nprobe=4, pq_m=8),
}


@pytest.mark.parametrize("kind", ["ivf-sq8", "ivf-pq"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_compressed_indexes_rerank_to_exact_distances(tmp_path, kind, metric):
    z = clustered(3000, 32, 24, seed=10)
    write_embeddings(tmp_path / "e.zarr", z, chunk_rows=256, step=1000)
    meta = build_index(
        tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric=metric, **COMPRESSED_PARAMS[kind])
    )
    assert meta["kind"] == kind and meta["params"]["rerank"] == {"ivf-sq8": 4, "ivf-pq": 8}[kind]
    queries = z[:60]
    expected, d = brute_force(z, queries, 10, metric, exclude=np.arange(60))
    index = LoadedIndex(tmp_path / "i.faiss")
    pos, dist = index.search(queries, 10, exclude=np.arange(60))
    assert recall_at(pos, expected) >= 0.9
    # re-ranked distances are the exact distances of the returned rows, nearest first
    np.testing.assert_allclose(dist, np.take_along_axis(d, pos, 1), atol=2e-5)
    assert np.all(np.diff(dist, axis=1) >= 0)
    # without re-ranking the distances are the codes' approximations (PQ: visibly off)
    raw_pos, raw_dist = LoadedIndex(tmp_path / "i.faiss", rerank=0).search(queries, 10, exclude=np.arange(60))
    error = np.abs(raw_dist - np.take_along_axis(d, raw_pos, 1)).max()
    assert error > (1e-3 if kind == "ivf-pq" else 0) and recall_at(raw_pos, expected) <= recall_at(
        pos, expected
    )


@pytest.mark.parametrize("mapped", [True, False], ids=["row-maps", "chunk-by-chunk"])
def test_exact_distances_match_numpy(tmp_path, mapped):
    from kmervae.embed import open_embeddings
    from kmervae.index import exact_distances, prepare

    z = np.random.default_rng(11).normal(size=(300, 6)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z, chunk_rows=32)
    emb = open_embeddings(tmp_path / "e.zarr")
    assert emb.row_reader is not None  # `embed` writes z_mean uncompressed: rows read by position
    if not mapped:
        emb.row_reader = None  # what a compressed store (written by older versions) gets
    x = z[[5, 250]] + 0.5
    pos = np.array([[299, 0, -1, 31, 32], [7, 7, 200, -1, 64]])
    for metric in ("cosine", "l2"):
        got = exact_distances(emb, prepare(x, metric), pos, metric)
        _, d = brute_force(z, x, 1, metric)
        want = np.where(pos >= 0, np.take_along_axis(d, np.maximum(pos, 0), 1), np.inf)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_auto_choice_by_size_and_memory_budget():
    from kmervae.index import estimate_bytes, plan_index

    def plan(n, gb, dim=384, **kw):
        return plan_index(n, dim, IndexParams(memory_gb=gb, **kw), id_chars=30)

    assert plan(150_000, 8).kind == "flat"
    assert plan(150_000, 0.2).kind == "ivf-sq8"  # exact would fit the size but not the budget
    assert plan(1_000_000, 8).kind == "ivf"
    assert plan(13_000_000, 8).kind == "ivf-sq8"
    big = plan(18_000_000, 8)
    assert (big.kind, big.pq_m, big.rerank) == ("ivf-pq", 192, 8) and big.estimated_bytes < 8 * 2**30
    assert plan(18_000_000, 4).pq_m == 96 and plan(18_000_000, 32).kind == "ivf"
    # every plan auto makes fits its budget, and a bigger budget never picks a coarser index
    order = ["flat", "ivf", "ivf-sq8", "ivf-pq"]
    for n in (10_000, 300_000, 5_000_000, 18_000_000):
        previous = None
        for gb in (64, 16, 8, 4, 2, 1):
            try:
                p = plan(n, gb)
            except KmervaeError as exc:
                assert "raise --memory-gb" in str(exc)
                continue
            assert p.estimated_bytes <= gb * 2**30
            rank = (order.index(p.kind), -(p.pq_m or 0))
            assert previous is None or rank >= previous
            previous = rank
    with pytest.raises(KmervaeError, match="above the memory budget of 0.01 GB"):
        plan(18_000_000, 0.01)
    # nlist / nprobe by size, with overrides; an explicit kind is built whatever the budget
    assert (big.nlist, big.nprobe) == (int(4 * np.sqrt(18e6)), -(-int(4 * np.sqrt(18e6)) // 40))
    p = plan(18_000_000, 1, kind="ivf-sq8", ivf_nlist=4096, ivf_nprobe=64)
    assert (p.kind, p.nlist, p.nprobe) == ("ivf-sq8", 4096, 64) and p.estimated_bytes > 2**30
    assert estimate_bytes("flat", 10, 384) == 10 * (4 * 384 + 8)
    with pytest.raises(KmervaeError, match="multiple of --pq-m"):
        plan(1000, 8, kind="ivf-pq", pq_m=7)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf-sq8", "ivf-pq"])
def test_memory_estimate_matches_the_written_index(tmp_path, kind):
    # the FAISS part of the recorded estimate against the size of the index file FAISS writes
    z = clustered(2000, 32, 20, seed=12)
    write_embeddings(tmp_path / "e.zarr", z, chunk_rows=512, step=1000)
    extra = {"pq_m": 8} if kind == "ivf-pq" else {}
    meta = build_index(
        tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(kind=kind, ivf_nlist=16, **extra)
    )
    id_list = 2000 * (4 * len("c1999") + 8)  # the longest ID, as fixed-width text, and its sort order
    direct_map = 8 * 2000 if kind == "ivf" else 0  # made when an IVF-flat index is loaded, not stored
    faiss_part = meta["params"]["estimated_bytes"] - id_list - direct_map
    size = (tmp_path / "i.faiss").stat().st_size
    assert abs(size - faiss_part) <= 0.02 * size + 4096, (size, faiss_part)


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8", "ivf-pq"])
def test_chunked_build_gives_the_one_shot_index(tmp_path, kind):
    z = clustered(1500, 32, 12, seed=13)
    write_embeddings(tmp_path / "e.zarr", z, chunk_rows=100, step=1500)
    params = dict(COMPRESSED_PARAMS.get(kind, {"kind": kind, "ivf_nlist": 16, "ivf_nprobe": 4}))
    build_index(tmp_path / "e.zarr", tmp_path / "chunked.faiss", IndexParams(**params), chunk_rows=100)
    build_index(tmp_path / "e.zarr", tmp_path / "whole.faiss", IndexParams(**params), chunk_rows=1500)
    a, b = (LoadedIndex(tmp_path / f"{name}.faiss", rerank=0) for name in ("chunked", "whole"))
    # the same seeded training sample: the same coarse centroids, bit for bit
    np.testing.assert_array_equal(
        a.index.quantizer.reconstruct_n(0, 16), b.index.quantizer.reconstruct_n(0, 16)
    )
    for x, y in ((a, b), (LoadedIndex(tmp_path / "chunked.faiss"), LoadedIndex(tmp_path / "whole.faiss"))):
        pos_x, dist_x = x.search(z[:40], 10)
        pos_y, dist_y = y.search(z[:40], 10)
        np.testing.assert_array_equal(pos_x, pos_y)
        np.testing.assert_allclose(dist_x, dist_y, atol=1e-6)


def test_sidecar_records_the_choice(tmp_path):
    z = clustered(2000, 32, 12, seed=14)
    write_embeddings(tmp_path / "e.zarr", z, step=2000)
    params = IndexParams(kind="ivf-pq", ivf_nlist=20, ivf_nprobe=6, pq_m=16, rerank=3, memory_gb=2.5)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", params)
    meta = json.loads((tmp_path / "i.faiss.json").read_text())
    assert meta["format"] == "kmervae-index" and meta["kind"] == "ivf-pq" and meta["n"] == 2000
    assert meta["latent_dim"] == 32 and meta["model_config_hash"] == "model-a"
    assert meta["embeddings"] == str(tmp_path / "e.zarr")
    p = meta["params"]
    assert (p["ivf_nlist"], p["ivf_nprobe"], p["pq_m"], p["pq_nbits"], p["rerank"]) == (20, 6, 16, 8, 3)
    assert p["memory_gb"] == 2.5 and p["train_size"] == 2000  # at least 39 x 256 PQ training points
    assert p["estimated_bytes"] == 2000 * (16 + 8 + 4 * 5 + 8) + 4 * 32 * (20 + 256)
    loaded = LoadedIndex(tmp_path / "i.faiss")
    assert (loaded.index.nprobe, loaded.index.nlist, loaded.index.pq.M, loaded.rerank) == (6, 20, 16, 3)
    assert LoadedIndex(tmp_path / "i.faiss", nprobe=9, rerank=0).index.nprobe == 9
    # auto records what it chose and why (the estimate against the budget)
    meta = build_index(tmp_path / "e.zarr", tmp_path / "a.faiss", IndexParams(memory_gb=0.0002))
    assert meta["kind"] == "ivf-sq8" and meta["params"]["estimated_bytes"] <= 0.0002 * 2**30
    assert meta["params"]["ivf_nlist"] == 2000 // 39 and meta["params"]["ivf_nprobe"] == 16  # the least


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq"])
def test_query_command_with_each_kind(tmp_path, kind):
    z = clustered(1200, 32, 10, seed=15)
    ids = write_embeddings(tmp_path / "e.zarr", z, chunk_rows=128, step=1200)
    write_embeddings(tmp_path / "q.zarr", z[:5] + 0.05, ids=[f"q{i}" for i in range(5)])
    build = ["index", str(tmp_path / "e.zarr"), "-o", str(tmp_path / "i.faiss"), "--kind", kind]
    assert main([*build, "--ivf-nlist", "8", "--ivf-nprobe", "8", "--pq-m", "16"]) == 0
    index = str(tmp_path / "i.faiss")
    assert main(["query", "--index", index, "--ids", *ids[:6], "-k", "7", "-o", str(tmp_path / "a.tsv")]) == 0
    assert (
        main(
            [
                "query",
                "--index",
                index,
                "--embeddings",
                str(tmp_path / "q.zarr"),
                "-o",
                str(tmp_path / "b.tsv"),
            ]
        )
        == 0
    )
    for out, queries, exclude, names in (
        ("a.tsv", z[:6], np.arange(6), ids[:6]),
        ("b.tsv", z[:5] + 0.05, None, [f"q{i}" for i in range(5)]),
    ):
        rows = read_tsv(tmp_path / out)
        k = 7 if out == "a.tsv" else 50
        assert [r[0] for r in rows] == [q for q in names for _ in range(k)]
        found = np.array([int(r[2][1:]) for r in rows]).reshape(len(names), k)  # "c012" -> row 12
        expected, d = brute_force(z, queries, k, "cosine", exclude=exclude)
        assert recall_at(found, expected) >= 0.9
        written = np.array([float(r[3]) for r in rows]).reshape(len(names), k)
        # every kind reports exact distances (IVF-SQ8 and IVF-PQ by re-ranking from the store)
        np.testing.assert_allclose(written, np.take_along_axis(d, found, 1), atol=2e-5)


def test_reranking_needs_its_store(tmp_path, capsys):
    z = clustered(1200, 32, 10, seed=16)
    ids = write_embeddings(tmp_path / "e.zarr", z, chunk_rows=128, step=1200)
    params = IndexParams(kind="ivf-sq8", ivf_nlist=8, ivf_nprobe=8)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", params)
    (tmp_path / "e.zarr").rename(tmp_path / "moved.zarr")
    query = [
        "query",
        "--index",
        str(tmp_path / "i.faiss"),
        "--ids",
        ids[3],
        "-k",
        "4",
        "-o",
        str(tmp_path / "n.tsv"),
    ]
    assert main(query) == 2
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1 and str(tmp_path / "e.zarr") in err and "which is missing" in err
    )
    assert not (tmp_path / "n.tsv").exists()
    assert main([*query, "--rerank-from", str(tmp_path / "moved.zarr")]) == 0
    exact = read_tsv(tmp_path / "n.tsv")
    expected, _ = brute_force(z, z[3:4], 4, "cosine", exclude=np.array([3]))
    assert [r[2] for r in exact] == [ids[p] for p in expected[0]]
    assert main([*query, "--rerank", "0"]) == 0  # approximate: no store needed
    assert len(read_tsv(tmp_path / "n.tsv")) == 4
    write_embeddings(tmp_path / "other.zarr", z[:1000], step=1000)
    assert main([*query, "--rerank-from", str(tmp_path / "other.zarr")]) == 2
    assert "not the embeddings" in capsys.readouterr().err


def test_ivf_search_returns_what_its_probed_lists_hold(tmp_path):
    # far-apart clusters: with nprobe 1 a query sees the vectors of its own list and no more
    rng = np.random.default_rng(17)
    centres = np.eye(8, dtype=np.float32)[:4] * 100
    z = (centres[np.repeat(np.arange(4), 50)] + rng.normal(size=(200, 8))).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z, step=200)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="ivf", ivf_nlist=4))
    index = LoadedIndex(tmp_path / "i.faiss", nprobe=1)
    lists = index.index.quantizer.search(np.vstack([z, centres[[2]]]), 1)[1].ravel()
    members = np.flatnonzero(lists[:-1] == lists[-1])
    pos, dist = index.search(centres[[2]], len(members) + 30)
    assert sorted(pos[0, : len(members)]) == list(members)
    assert np.all(pos[0, len(members) :] == -1) and np.all(np.isinf(dist[0, len(members) :]))
    _, d = brute_force(z, centres[[2]], 1, "l2")
    np.testing.assert_allclose(dist[0, : len(members)], np.sort(d[0, members]), atol=1e-4)

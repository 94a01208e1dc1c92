"""Contigs are (sample, id): IDs repeated across samples, all-vs-all, DataFrames, and "no close match"."""

import numpy as np
import pandas as pd
import pytest
import torch

import kmervae
from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.count import count_fasta
from kmervae.embed import EmbeddingsWriter, embed_store, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.evaluate.neighbours import locate_in_store, row_samples
from kmervae.index import CALIBRATION_LEVELS, IndexParams, LoadedIndex, build_index, query_index
from kmervae.kmers import Layout
from kmervae.merge import merge_stores
from kmervae.vae.files import build_model
from kmervae.io.store import KmerStore

BASE = ["query_sample", "query_id", "rank", "neighbour_sample", "neighbour_id", "distance"]


def write_fasta(path, seqs):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in seqs.items()))


@pytest.fixture(scope="module")
def two_samples(tmp_path_factory):
    """Two assemblies naming their contigs seq1..seq30 alike (seq20 the same sequence in both),
    counted, merged, embedded with a tiny model and indexed (cosine, exact)."""
    d = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(5)
    random = lambda: "".join(rng.choice(list("ACGT"), size=int(rng.integers(600, 1500))))  # noqa: E731
    shared = random()
    for sample in ("lake", "soil"):
        seqs = {f"seq{i}": (shared if i == 20 else random()) for i in range(1, 31)}
        write_fasta(d / f"{sample}.fa", seqs)
        count_fasta([d / f"{sample}.fa"], d / f"{sample}.zarr", layout=Layout.parse("3..1"), sample=sample)
    merge_stores([d / "lake.zarr", d / "soil.zarr"], d / "data.zarr", chunk_rows=16)
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": [3, 2, 1]}, "model": {"hidden": [8], "latent": 4}})
    embed_store(build_model(config).eval(), d / "data.zarr", d / "e.zarr", batch_size=16, model_dir=d / "m")
    build_index(d / "e.zarr", d / "i.faiss", IndexParams(metric="cosine", kind="flat"))
    return d


def brute_force(emb, k):
    """Oracle: float64 cosine distances between all rows, self left out, ties by (sample, id)."""
    z = emb.z_mean().astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    d = 1 - z @ z.T
    np.fill_diagonal(d, np.inf)
    keys = list(zip(emb.samples(), emb.ids()))
    name = np.array([f"{s}\t{i}" for s, i in keys])
    out = {}
    for row, key in enumerate(keys):
        order = np.lexsort((name, d[row]))[:k]
        out[key] = [(keys[p], max(d[row, p], 0.0)) for p in order]
    return out


def read(path):
    table = pd.read_csv(path, sep="\t", dtype={"query_id": str, "neighbour_id": str}, keep_default_na=False)
    assert list(table.columns[:6]) == BASE
    return table


def test_repeated_ids_get_their_sample_in_the_id_map_and_the_neighbours(two_samples, capsys):
    d = two_samples
    emb = open_embeddings(d / "e.zarr")
    assert sorted(set(emb.samples())) == ["lake", "soil"] and len(set(emb.ids())) == 30 and emb.n == 60
    index = LoadedIndex(d / "i.faiss")
    assert sorted(zip(index.samples, index.ids)) == sorted(zip(emb.samples(), emb.ids()))
    assert (d / "i.faiss.ids.tsv").read_text().splitlines()[0] == "sample\tid\tlength"
    out = d / "all.tsv"
    assert main(["query", "--index", str(d / "i.faiss"), "--all", "-k", "5", "-o", str(out)]) == 0
    table = read(out)
    assert (table["distance"] >= 0).all()
    oracle = brute_force(emb, 5)
    assert len(table) == 60 * 5
    for (qs, qi), rows in table.groupby(["query_sample", "query_id"], sort=False):
        want = oracle[(qs, qi)]
        assert list(zip(rows["neighbour_sample"], rows["neighbour_id"])) == [key for key, _ in want]
        np.testing.assert_allclose(rows["distance"], [dist for _, dist in want], atol=1e-5)
        assert list(rows["rank"]) == [1, 2, 3, 4, 5]
    # the shared sequence: each seq20 finds the other sample's seq20 first, at distance exactly 0
    twin = table[(table["query_id"] == "seq20") & (table["rank"] == 1)]
    assert sorted(zip(twin["query_sample"], twin["neighbour_sample"])) == [("lake", "soil"), ("soil", "lake")]
    assert (twin["neighbour_id"] == "seq20").all() and (twin["distance"] == 0).all()


def test_a_bare_id_in_two_samples_is_one_error_and_sample_colon_id_names_one(two_samples, capsys):
    d = two_samples
    out = d / "one.tsv"
    assert main(["query", "--index", str(d / "i.faiss"), "--ids", "seq20", "-k", "3", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "ambiguous" in err and "'lake'" in err and "'soil'" in err and not out.exists()
    named = ["query", "--index", str(d / "i.faiss"), "--ids", "lake:seq20", "-k", "3", "-o", str(out)]
    assert main(named) == 0
    table = read(out)
    assert set(table["query_sample"]) == {"lake"} and set(table["query_id"]) == {"seq20"}
    assert (table["neighbour_sample"].iloc[0], table["neighbour_id"].iloc[0]) == ("soil", "seq20")
    itself = (table["neighbour_sample"] == "lake") & (table["neighbour_id"] == "seq20")
    assert not itself.any()  # the query is left out of its own list
    with pytest.raises(KmervaeError, match="'mud:seq20' is not in the index"):
        query_index(d / "i.faiss", out, ids=["mud:seq20"])


def test_ids_file_all_vs_all_and_the_dataframe_agree_with_one_query_at_a_time(two_samples):
    d = two_samples
    index = LoadedIndex(d / "i.faiss")
    names = [f"{s}:{i}" for s, i in zip(index.samples, index.ids)]
    (d / "ids.txt").write_text("\n".join(names) + "\n\n")
    query_index(d / "i.faiss", d / "file.tsv", k=4, ids_file=d / "ids.txt", batch_size=7)
    query_index(d / "i.faiss", d / "all.tsv", k=4, all=True, batch_size=9)
    one = pd.concat([read_one(d, name) for name in names], ignore_index=True)
    pd.testing.assert_frame_equal(read(d / "file.tsv"), one)
    pd.testing.assert_frame_equal(read(d / "all.tsv"), one)
    frame = kmervae.neighbours(d / "i.faiss", all=True, k=4)
    assert list(frame.columns) == list(one.columns)
    pd.testing.assert_frame_equal(frame[BASE[:5]], one[BASE[:5]])
    np.testing.assert_allclose(frame["distance"], one["distance"], atol=1e-6)
    assert frame["no_close_match"].dtype == bool


def read_one(d, name):
    query_index(d / "i.faiss", d / "q.tsv", k=4, ids=[name])
    return read(d / "q.tsv")


def test_evaluation_finds_each_contig_by_sample_and_id_in_the_store(two_samples):
    d = two_samples
    emb, store = open_embeddings(d / "e.zarr"), KmerStore(d / "data.zarr")
    rows = np.arange(emb.n)
    found = locate_in_store(store, emb.ids(), emb.path, row_samples(emb, rows))
    # oracle: the store's own (sample, id) of each found row
    keys = list(zip(store.read("sample"), store.ids()))
    assert [keys[r] for r in found] == list(zip(emb.samples(), emb.ids()))
    assert len(set(found.tolist())) == emb.n


def test_an_old_id_map_without_samples_still_reads(two_samples, tmp_path):
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20, 3)).astype(np.float32)
    write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    ids = [f"c{i}" for i in range(20)]
    (tmp_path / "i.faiss.ids.tsv").write_text("id\n" + "".join(f"{i}\n" for i in ids))
    frame = kmervae.neighbours(tmp_path / "i.faiss", ids=["c3"], k=2)
    assert list(frame["query_sample"]) == ["", ""] and "neighbour_length" not in frame.columns
    d = np.linalg.norm(z.astype(np.float64) - z[3], axis=1)
    d[3] = np.inf
    assert list(frame["neighbour_id"]) == [ids[p] for p in np.argsort(d)[:2]]


# -- calibration and "no close match" -------------------------------------------------------


def write_embeddings(path, z, ids=None, samples=None):
    ids = ids or [f"c{i}" for i in range(len(z))]
    attrs = {"model_config_hash": "model-a", "model_dir": "m", "input": "synthetic"}
    extra = ("sample",) if samples is not None else ()
    with EmbeddingsWriter(path, z.shape[1], attrs=attrs, extra=extra, chunk_rows=16) as w:
        more = {"sample": samples} if samples is not None else {}
        w.append(ids, np.full(len(ids), 1000), z, **more)
    return ids


def clusters(rng, centres, per, spread=0.05):
    return np.concatenate([c + spread * rng.normal(size=(per, len(c))) for c in centres]).astype(np.float32)


def self_excluded_nn(z, metric):
    """Oracle: float64 nearest-neighbour distance of every row to the others."""
    z = z.astype(np.float64)
    if metric == "cosine":
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        d = 1 - z @ z.T
    else:
        d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return np.maximum(d.min(axis=1), 0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_calibration_quantiles_are_those_of_the_self_excluded_nearest_distances(tmp_path, metric):
    rng = np.random.default_rng(11)
    z = clusters(rng, rng.normal(size=(6, 5)) * 3, 50)
    write_embeddings(tmp_path / "e.zarr", z)
    meta = build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric=metric, kind="flat"))
    cal = meta["calibration"]
    assert cal["sample"] == len(z)  # fewer vectors than the calibration sample: every one of them
    nn = self_excluded_nn(z, metric)
    np.testing.assert_allclose(cal["distances"], np.quantile(nn, CALIBRATION_LEVELS), rtol=1e-4, atol=1e-6)
    for name, q in (("50", 0.5), ("90", 0.9), ("95", 0.95), ("99", 0.99), ("99.9", 0.999)):
        assert cal["quantiles"][name] == pytest.approx(np.quantile(nn, q), rel=1e-4, abs=1e-6)
    assert LoadedIndex(tmp_path / "i.faiss").calibration == cal


def test_calibration_of_a_sample_queries_only_the_sample(tmp_path):
    rng = np.random.default_rng(12)
    z = clusters(rng, rng.normal(size=(4, 3)) * 3, 40)
    write_embeddings(tmp_path / "e.zarr", z)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    index = LoadedIndex(tmp_path / "i.faiss")
    from kmervae.embed import Embeddings
    from kmervae.index import calibrate

    cal = calibrate(index.index, Embeddings(tmp_path / "e.zarr"), "l2", seed=3, size=25)
    assert cal["sample"] == 25
    nn = self_excluded_nn(z, "l2")
    # the sampled rows' distances are some 25 of the oracle's: each stored quantile lies within them
    assert min(nn) - 1e-5 <= cal["distances"][0] and cal["distances"][-1] <= max(nn) + 1e-5
    assert cal == calibrate(index.index, Embeddings(tmp_path / "e.zarr"), "l2", seed=3, size=25)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_a_query_from_a_cluster_absent_from_the_index_is_flagged(tmp_path, metric):
    rng = np.random.default_rng(13)
    centres = rng.normal(size=(6, 8)) * 4
    z = clusters(rng, centres[:5], 60)  # cluster 5 is not indexed
    write_embeddings(tmp_path / "e.zarr", z, samples=["ref"] * len(z))
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric=metric, kind="flat"))
    near = z[rng.choice(len(z), 20, replace=False)] + 1e-4 * rng.normal(size=(20, 8)).astype(np.float32)
    absent = clusters(rng, centres[5:], 10)
    queries = np.concatenate([near, absent]).astype(np.float32)
    names = [f"near{i}" for i in range(20)] + [f"new{i}" for i in range(10)]
    write_embeddings(tmp_path / "q.zarr", queries, ids=names, samples=["new"] * 30)
    query_index(tmp_path / "i.faiss", tmp_path / "n.tsv", k=3, embeddings=tmp_path / "q.zarr")
    table = read(tmp_path / "n.tsv")
    first = table[table["rank"] == 1].set_index("query_id")
    assert set(table["query_sample"]) == {"new"} and set(table["neighbour_sample"]) == {"ref"}
    assert first["no_close_match"].dtype == bool  # written true/false, read back by pandas as bool
    flagged = first["no_close_match"]
    assert not flagged[[f"near{i}" for i in range(20)]].any()
    assert flagged[[f"new{i}" for i in range(10)]].all()
    # oracle: the nearest distance and its rank among the index's own nearest distances
    nn = self_excluded_nn(z, metric)
    for name, q in zip(names, queries):
        d = self_excluded_nn(np.vstack([q, z]), metric)[0]
        assert first.loc[name, "nearest_distance"] == pytest.approx(d, rel=1e-3, abs=1e-5)
        assert first.loc[name, "nearest_quantile"] == pytest.approx(np.mean(nn < d), abs=0.02)
    # a stricter threshold (the median) still passes the near ones
    frame = kmervae.neighbours(
        tmp_path / "i.faiss", embeddings=tmp_path / "q.zarr", k=1, no_match_quantile=0.5
    )
    assert not frame.set_index("query_id").loc[[f"near{i}" for i in range(20)], "no_close_match"].any()
    with pytest.raises(KmervaeError, match="no-match-quantile must be between 0 and 1"):
        kmervae.neighbours(tmp_path / "i.faiss", embeddings=tmp_path / "q.zarr", no_match_quantile=1.5)


def test_embeddings_of_one_counted_sample_carry_its_name_into_the_index(two_samples, tmp_path):
    d = two_samples
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": [3, 2, 1]}, "model": {"hidden": [8], "latent": 4}})
    embed_store(build_model(config).eval(), d / "soil.zarr", tmp_path / "soil.e.zarr", model_dir=d / "m")
    emb = open_embeddings(tmp_path / "soil.e.zarr")
    assert not emb.has("sample") and set(emb.samples()) == {"soil"} and len(emb.samples(3, 7)) == 4
    build_index(tmp_path / "soil.e.zarr", tmp_path / "s.faiss", IndexParams(metric="l2", kind="flat"))
    frame = kmervae.neighbours(tmp_path / "s.faiss", ids=["seq20"], k=2)  # one sample: the bare ID is unique
    assert set(frame["query_sample"]) == {"soil"} and set(frame["neighbour_sample"]) == {"soil"}
    lengths = dict(zip(emb.ids(), emb.lengths()))
    assert [lengths[i] for i in frame["neighbour_id"]] == list(frame["neighbour_length"])


def read_fasta(path):
    name, seqs = None, {}
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            seqs[name] = ""
        else:
            seqs[name] += line.strip()
    return seqs


def test_the_map_reads_each_contigs_gc_from_its_own_sample(two_samples):
    from kmervae.evaluate.map import map_gc

    d = two_samples
    emb = open_embeddings(d / "e.zarr")
    samples = row_samples(emb, np.arange(emb.n))
    gc = map_gc(d / "data.zarr", emb.ids(), d / "e.zarr", samples)
    # oracle: the GC content of each (sample, id)'s own sequence in its FASTA
    seqs = {s: read_fasta(d / f"{s}.fa") for s in ("lake", "soil")}
    want = [(seqs[s][i].count("G") + seqs[s][i].count("C")) / len(seqs[s][i])
            for s, i in zip(samples, emb.ids())]  # fmt: skip
    np.testing.assert_allclose(gc, want, rtol=1e-6)  # computed in float32
    # the same ID's sequence differs between the samples (but for the shared seq20): by ID alone
    # half the contigs would get the other sample's GC, far outside that tolerance
    other = {"lake": "soil", "soil": "lake"}
    swapped = [(seqs[other[s]][i].count("G") + seqs[other[s]][i].count("C")) / len(seqs[other[s]][i])
               for s, i in zip(samples, emb.ids())]  # fmt: skip
    assert np.sum(~np.isclose(swapped, want, rtol=1e-4)) >= 50


def test_a_labels_table_adds_the_query_and_neighbour_labels(two_samples, tmp_path):
    d = two_samples
    labels = {f"seq{i}": f"g{i % 3}" for i in range(1, 25)}  # seq25..seq30 unlisted
    (tmp_path / "labels.tsv").write_text(
        "contig_id\tgenome\trecord\n" + "".join(f"{i}\t{g}\tr\n" for i, g in labels.items())
    )
    out = tmp_path / "n.tsv"
    argv = ["query", "--index", str(d / "i.faiss"), "--all", "-k", "3", "-o", str(out)]
    assert main([*argv, "--labels", str(tmp_path / "labels.tsv")]) == 0
    table = read(out)
    assert list(table.columns[6:9]) == ["neighbour_length", "query_label", "neighbour_label"]
    assert list(table["query_label"]) == [labels.get(i, "") for i in table["query_id"]]
    assert list(table["neighbour_label"]) == [labels.get(i, "") for i in table["neighbour_id"]]
    plain = query_index(d / "i.faiss", tmp_path / "p.tsv", k=3, all=True)
    assert plain == len(table)
    unlabelled = table.drop(columns=["query_label", "neighbour_label"])
    pd.testing.assert_frame_equal(read(tmp_path / "p.tsv"), unlabelled)


def test_a_bad_ids_file_is_one_error_line_and_leaves_no_output(two_samples, tmp_path, capsys):
    d = two_samples
    out = tmp_path / "n.tsv"
    (tmp_path / "ids.txt").write_text("lake:seq1\nseq7\n")  # seq7 is in both samples
    (tmp_path / "empty.txt").write_text("\n\n")
    for path, problem in (
        (tmp_path / "missing.txt", "no such IDs file"),
        (tmp_path / "empty.txt", "no IDs in the file"),
        (tmp_path / "ids.txt", "'seq7' is ambiguous"),
    ):
        argv = ["query", "--index", str(d / "i.faiss"), "--ids-file", str(path), "-o", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and problem in err and "Traceback" not in err
        assert not out.exists()


def test_an_id_with_a_colon_is_found_bare_or_after_its_sample(tmp_path):
    z = np.random.default_rng(4).normal(size=(12, 3)).astype(np.float32)
    ids = [f"k141:{i}" for i in range(6)] * 2
    samples = ["a"] * 6 + ["b"] * 6
    ids[11] = "only:b"
    write_embeddings(tmp_path / "e.zarr", z, ids=ids, samples=samples)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    index = LoadedIndex(tmp_path / "i.faiss")
    assert list(index.positions(["a:k141:2", "b:k141:2", "only:b", "b:only:b"])) == [2, 8, 11, 11]
    with pytest.raises(KmervaeError, match=r"'k141:2' is ambiguous, in 2 samples \('a', 'b'\)"):
        index.positions(["k141:2"])

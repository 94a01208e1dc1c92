"""export: every format read back with its own library (pandas, pyarrow, numpy, anndata) equals the store."""

import numpy as np
import pandas as pd
import pytest
import torch
from store_factory import make_store

from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.embed import embed_store, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.evaluate.map import map_embeddings
from kmervae.export import export_embeddings, format_for
from kmervae.index import IndexParams, build_index, query_index
from kmervae.kmers import Layout
from kmervae.merge import merge_stores
from kmervae.vae.files import build_model
from kmervae.io.store import SPLITS, KmerStore, StoreWriter

LAYOUT = Layout.parse("3..1")


def tiny_model():
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": [3, 2, 1]}, "model": {"hidden": [8], "latent": 4}})
    return build_model(config).eval()


@pytest.fixture
def run(tmp_path):
    """A dataset store (sample, split), its embeddings by the real embed path, labels, a map, neighbours."""
    rng = np.random.default_rng(3)
    n = 61
    counts = rng.integers(0, 40, size=(n, LAYOUT.width)).astype(np.uint32)
    ids = [f"contig_{i}" for i in range(n)]
    split = (np.arange(n) % 3).astype(np.int8)
    samples = [("lake", "soil")[i % 2] for i in range(n)]
    with StoreWriter(tmp_path / "d.zarr", LAYOUT, chunk_rows=8, extra=("sample", "split")) as w:
        w.append(ids, rng.integers(800, 9000, n), counts, sample=samples, split=split)
    model = tiny_model()
    embed_store(model, tmp_path / "d.zarr", tmp_path / "e.zarr", batch_size=16, model_dir=tmp_path / "run3")
    labels = {i: f"g{rng.integers(0, 3)}" for i in ids[: n - 5]}  # the last five have no label
    with open(tmp_path / "labels.tsv", "w") as fh:
        fh.write("contig_id\tgenome\trecord\n")
        fh.writelines(f"{i}\t{g}\trec\n" for i, g in labels.items())
    map_embeddings(
        tmp_path / "e.zarr", tmp_path / "map", sample=40, n_iter=50, early_exaggeration_iter=20, split="all"
    )
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    query_index(tmp_path / "i.faiss", tmp_path / "nb.tsv", k=4, ids=ids[:9])
    emb = open_embeddings(tmp_path / "e.zarr")
    return {
        "dir": tmp_path,
        "emb": emb,
        "z": emb.z_mean(),
        "ids": ids,
        "samples": samples,
        "split": [SPLITS[c] for c in split],
        "lengths": KmerStore(tmp_path / "d.zarr").lengths(),
        "gc": counts[:, -1] / counts[:, -2:].sum(axis=1),  # 1-mers last: A/T then C/G
        "labels": labels,
        "map": pd.read_csv(tmp_path / "map" / "map.tsv", sep="\t", dtype={"id": str}).set_index("id"),
        "neighbours": pd.read_csv(
            tmp_path / "nb.tsv", sep="\t", dtype={"query_id": str, "neighbour_id": str}
        ),
    }


def annotations(run):
    return {
        "labels": run["dir"] / "labels.tsv",
        "map_tsv": run["dir"] / "map" / "map.tsv",
        "store": run["dir"] / "d.zarr",
        "chunk_rows": 7,
    }


def check_table(table, run):
    assert list(table["id"]) == run["ids"] and list(table["length"]) == list(run["lengths"])
    assert list(table["sample"]) == run["samples"] and list(table["split"]) == run["split"]
    np.testing.assert_allclose(table["gc"].to_numpy(float), run["gc"], rtol=1e-6)
    expected_labels = [run["labels"].get(i) for i in run["ids"]]
    assert [None if pd.isna(v) or v == "" else v for v in table["label"]] == expected_labels
    mapped = table["id"].isin(run["map"].index).to_numpy()
    assert mapped.sum() == len(run["map"]) == 40
    np.testing.assert_allclose(table["tsne_x"][mapped], run["map"].loc[table["id"][mapped], "x"], rtol=1e-5)
    assert table["tsne_x"][~mapped].isna().all()
    z = table[[f"z_{j}" for j in range(4)]].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(z, run["z"])


def test_tsv_and_parquet_carry_ids_annotations_and_exact_z(run):
    out = run["dir"] / "out"
    export_embeddings(run["emb"].path, out / "e.tsv", **annotations(run))
    check_table(pd.read_csv(out / "e.tsv", sep="\t", dtype={"id": str, "label": str}), run)
    result = export_embeddings(
        run["emb"].path, out / "e.parquet", neighbours=run["dir"] / "nb.tsv", **annotations(run)
    )
    table = pd.read_parquet(out / "e.parquet")
    assert table["z_0"].dtype == np.float32 and table["length"].dtype == np.int64
    check_table(table, run)
    assert result["files"] == [str(out / "e.parquet"), str(out / "e.neighbours.parquet")]
    nb = pd.read_parquet(out / "e.neighbours.parquet")
    for column in ("query_sample", "query_id", "rank", "neighbour_sample", "neighbour_id", "no_close_match"):
        assert nb[column].tolist() == run["neighbours"][column].tolist()
    assert nb["rank"].dtype == np.int32
    np.testing.assert_allclose(nb["distance"], run["neighbours"]["distance"], rtol=1e-6)


def test_npy_is_the_z_matrix_and_an_id_list(run, capsys):
    out = run["dir"] / "e.npy"
    assert main(["export", str(run["emb"].path), "-o", str(out), "--chunk-rows", "5"]) == 0
    assert "61 contigs x 4 as npy" in capsys.readouterr().out
    z = np.load(out)
    assert z.dtype == np.float32 and z.shape == (61, 4)
    np.testing.assert_array_equal(z, run["z"])
    assert (run["dir"] / "e.ids.txt").read_text().splitlines() == run["ids"]


def test_h5ad_reads_with_anndata_as_obs_obsm_obsp_and_uns(run):
    anndata = pytest.importorskip("anndata")
    out = run["dir"] / "e.h5ad"
    export_embeddings(run["emb"].path, out, neighbours=run["dir"] / "nb.tsv", **annotations(run))
    adata = anndata.read_h5ad(out)
    assert adata.n_obs == 61 and list(adata.obs_names) == run["ids"]
    assert list(adata.obs.columns) == ["id", "length", "sample", "split", "gc", "label", "map_cluster"]
    assert isinstance(adata.obs["split"].dtype, pd.CategoricalDtype)
    np.testing.assert_array_equal(adata.obsm["X_vae"], run["z"])
    table = adata.obs.reset_index(drop=True).copy()
    table["tsne_x"] = adata.obsm["X_tsne"][:, 0]
    for j in range(4):
        table[f"z_{j}"] = adata.obsm["X_vae"][:, j]
    check_table(table, run)
    mapped = adata.obs["id"].isin(run["map"].index).to_numpy()
    clusters = run["map"].loc[adata.obs["id"][mapped], "cluster"].astype(str)
    assert list(adata.obs["map_cluster"][mapped].astype(str)) == list(clusters)
    position = {i: p for p, i in enumerate(run["ids"])}
    d = adata.obsp["vae_distances"]
    assert d.nnz == len(run["neighbours"])
    for q, nb, dist in run["neighbours"][["query_id", "neighbour_id", "distance"]].itertuples(index=False):
        assert d[position[q], position[nb]] == pytest.approx(dist, rel=1e-6)
    assert adata.uns["vae_neighbors"]["params"]["n_neighbors"] == 4
    assert adata.uns["kmervae"]["model_config_hash"] == run["emb"].model_config_hash
    assert adata.uns["kmervae"]["model_dir"] == str(run["dir"] / "run3")


def test_gc_from_the_recorded_store_split_embeddings_and_repeated_ids(tmp_path):
    anndata = pytest.importorskip("anndata")
    make_store(tmp_path / "a.zarr", 30, sample="lake", seed=1)
    make_store(tmp_path / "b.zarr", 20, sample="soil", seed=2)  # the same IDs r0..r19 as in a
    merge_stores([tmp_path / "a.zarr", tmp_path / "b.zarr"], tmp_path / "d.zarr", fractions=(0.6, 0.2, 0.2))
    torch.manual_seed(0)
    model = build_model(cfg.resolve({"input": {"ks": [2, 1]}, "model": {"hidden": [6], "latent": 3}})).eval()
    embed_store(model, tmp_path / "d.zarr", tmp_path / "t.zarr", split="validation")
    store = KmerStore(tmp_path / "d.zarr")
    counts, rows = store.rows().astype(np.float64), store.split_index("validation")
    keys = [f"{s}/{i}" for s, i in zip(store.read("sample")[rows], store.ids()[rows])]
    export_embeddings(tmp_path / "t.zarr", tmp_path / "t.h5ad", chunk_rows=3)  # GC from the recorded input
    adata = anndata.read_h5ad(tmp_path / "t.h5ad")
    assert list(adata.obs_names) == keys  # IDs repeat across samples: named sample/ID
    np.testing.assert_allclose(adata.obs["gc"], counts[rows, -1] / counts[rows, -2:].sum(axis=1), rtol=1e-6)
    export_embeddings(tmp_path / "t.zarr", tmp_path / "n.tsv", gc=False)
    assert "gc" not in pd.read_csv(tmp_path / "n.tsv", sep="\t").columns
    with pytest.raises(KmervaeError, match="is not in the k-mer store .*a.zarr"):
        export_embeddings(tmp_path / "t.zarr", tmp_path / "w.tsv", store=tmp_path / "a.zarr")
    assert not (tmp_path / "w.tsv").exists()


def test_formats_and_bad_inputs_leave_nothing_behind(run, capsys):
    d, emb = run["dir"], str(run["emb"].path)
    assert (
        format_for("x.h5ad") == "h5ad" and format_for("x.pq") == "parquet" and format_for("x", "npy") == "npy"
    )
    with pytest.raises(KmervaeError, match="cannot tell the format"):
        format_for(d / "x.csv")
    assert main(["export", emb, "-o", str(d / "plain.txt"), "--format", "tsv", "--no-gc"]) == 0
    assert pd.read_csv(d / "plain.txt", sep="\t").shape == (61, 2 + 2 + 4)
    (d / "bad_map.tsv").write_text("id\tx\ty\tcluster\nnot_a_contig\t0\t0\t1\n")
    (d / "bad_nb.tsv").write_text("query\trank\tneighbour\tdistance\ncontig_1\t1\tnowhere\t0.5\n")
    cases = [
        (["-o", str(d / "o.npy"), "--labels", str(d / "labels.tsv")], ".npy holds the z_mean matrix"),
        (["-o", str(d / "o.tsv"), "--neighbours", str(d / "nb.tsv")], "TSV already"),
        (["-o", str(d / "o.h5ad"), "--map", str(d / "bad_map.tsv")], "1 of its 1 contigs are not in"),
        (["-o", str(d / "o.parquet"), "--neighbours", str(d / "bad_nb.tsv")], "line 2: neighbour 'nowhere'"),
        (["-o", str(d / "o.h5ad"), "--neighbours", str(d / "bad_nb.tsv")], "line 2: neighbour 'nowhere'"),
        (["-o", str(d / "o.tsv"), "--labels", str(d / "labels.tsv"), "--label-column", "x"], "no column 'x'"),
        (["-o", str(d / "o.tsv"), "--map", str(d / "nb.tsv")], "no column 'id'"),
    ]
    for args, message in cases:
        assert main(["export", emb, *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(("o.", ".o."))) == []

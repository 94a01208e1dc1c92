"""embed: store and FASTA inputs give the encoder's z_mean, in input order, deterministically."""

import gzip

import numpy as np
import pytest
import torch

from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.count import count_fasta
from kmervae.embed import embed_path, embed_sequences, embed_store, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.vae.files import build_model, save_weights
from kmervae.io.store import KmerStore, StoreWriter

SEQS = {
    "a": "ACGTACGTTTGACCAGTNNACGGGTACCATG" * 5,
    "b": "GGGCCCATATATCGCGATTTAAACCCGGG" * 4,
    "c": "ATATATATATGCGC",
    "d": "acgtnacgt" * 9,
    "e": "CCCCGGGGAAAATTTTCGCGATAT" * 7,
}


def make_model(tmp_path, ks=(4, 3, 2, 1), latent=5):
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": list(ks)}, "model": {"hidden": [12], "latent": latent}})
    model = build_model(config).eval()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.yaml").write_text(cfg.dump(config))
    save_weights(model, model_dir / "best.safetensors", config)
    return model, model_dir


def write_fasta(path, seqs=SEQS, gz=False):
    text = "".join(f">{name} description\n{seq}\n" for name, seq in seqs.items())
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def oracle(model, counts, layout):
    """z_mean straight from the encoder on the model's columns (no batching, no helper)."""
    cols = layout.columns_for(model.input_ks)
    with torch.no_grad():
        mean, _ = model.encode(model.transform(torch.as_tensor(counts[:, cols])))
    return mean.numpy()


def test_store_embedding_matches_the_encoder_in_store_order(tmp_path):
    model, model_dir = make_model(tmp_path)
    layout = Layout.parse("6..1")
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, size=(23, layout.width)).astype(np.uint32)
    ids = [f"r{i}" for i in range(23)]
    split = (np.arange(23) % 3).astype(np.int8)
    with StoreWriter(tmp_path / "s.zarr", layout, chunk_rows=4, extra=("sample", "split")) as w:
        w.append(ids, np.arange(23) + 100, counts, sample=["s"] * 23, split=split)
    out = embed_store(model, tmp_path / "s.zarr", tmp_path / "e.zarr", batch_size=5, model_dir=model_dir)
    emb = open_embeddings(out)
    assert emb.n == 23 and emb.latent_dim == 5 and list(emb.ids()) == ids
    np.testing.assert_allclose(emb.z_mean(), oracle(model, counts, layout), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb.array("split"), split)
    np.testing.assert_array_equal(emb.lengths(), np.arange(23) + 100)
    assert emb.attrs["model_config_hash"] == model.config_hash and emb.attrs["input_ks"] == [4, 3, 2, 1]
    assert emb.attrs["input_attrs"]["format"] == "kmervae-kmers"
    # one split only: the same rows in other batches, so the same numbers but not always the same
    # bits (the matmul's blocking, and so its rounding, follows the batch shape and the CPU's ISA);
    # float32 tolerance, far below any real change of a weight or a row
    test_only = open_embeddings(embed_store(model, tmp_path / "s.zarr", tmp_path / "t.zarr", split="test"))
    assert list(test_only.ids()) == [ids[i] for i in range(23) if split[i] == 2]
    np.testing.assert_allclose(test_only.z_mean(), emb.z_mean()[split == 2], rtol=1e-5, atol=1e-6)
    # a second run with the same batch size, in the same process: the same bytes
    again = open_embeddings(embed_store(model, tmp_path / "s.zarr", tmp_path / "e2.zarr", batch_size=5))
    np.testing.assert_array_equal(again.z_mean(), emb.z_mean())


def test_fasta_store_and_sequences_agree(tmp_path):
    model, model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa.gz", gz=True)
    count_fasta([fasta], tmp_path / "q.zarr")
    via_fasta = open_embeddings(embed_path(model_dir, fasta, tmp_path / "f.zarr"))
    via_store = open_embeddings(embed_path(model_dir, tmp_path / "q.zarr", tmp_path / "s.zarr"))
    assert list(via_fasta.ids()) == list(SEQS) == list(via_store.ids())
    np.testing.assert_allclose(via_fasta.z_mean(), via_store.z_mean(), rtol=1e-5, atol=1e-6)
    direct = embed_sequences(model, list(SEQS.values()))
    np.testing.assert_allclose(direct, via_fasta.z_mean(), rtol=1e-5, atol=1e-6)
    counts = KmerStore(tmp_path / "q.zarr").rows()
    np.testing.assert_allclose(direct, oracle(model, counts, Layout()), rtol=1e-5, atol=1e-6)
    assert via_fasta.attrs["input_sha256"][0]["sha256"] and via_fasta.attrs["model_dir"] == str(model_dir)
    assert embed_sequences(model, []).shape == (0, 5)
    # a generator in batches of two gives the same rows
    np.testing.assert_allclose(
        embed_sequences(model, (s for s in SEQS.values()), batch_size=2), direct, rtol=1e-5, atol=1e-6
    )


def test_model_refuses_a_store_without_its_groups(tmp_path, capsys):
    _, model_dir = make_model(tmp_path, ks=(6, 5, 4, 3, 2, 1))
    layout = Layout.parse("4..1")
    with StoreWriter(tmp_path / "s.zarr", layout) as w:
        w.append(["x"], [10], np.ones((1, layout.width)))
    code = main(
        ["embed", "--model", str(model_dir), str(tmp_path / "s.zarr"), "-o", str(tmp_path / "e.zarr")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing 6-mers, 5-mers" in err and str(tmp_path / "s.zarr") in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "e.zarr").exists()


def test_cli_embeds_fasta_and_reports(tmp_path, capsys):
    _, model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa")
    assert (
        main(
            [
                "embed",
                "--model",
                str(model_dir),
                str(fasta),
                "-o",
                str(tmp_path / "e.zarr"),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert "5 contigs x 5" in capsys.readouterr().out
    with pytest.raises(KmervaeError, match="needs a dataset store"):
        embed_path(model_dir, fasta, tmp_path / "x.zarr", split="test")
    with pytest.raises(KmervaeError, match="no such file"):
        embed_path(model_dir, tmp_path / "missing.fa", tmp_path / "x.zarr")


def test_embed_and_query_take_a_device(tmp_path, capsys):
    from kmervae.index import IndexParams, build_index

    model, model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa")
    base = ["embed", "--model", str(model_dir), str(fasta), "-o"]
    assert main([*base, str(tmp_path / "cpu.zarr"), "--device", "cpu"]) == 0
    assert main([*base, str(tmp_path / "auto.zarr")]) == 0  # auto: CUDA when present, else the CPU
    cpu = open_embeddings(tmp_path / "cpu.zarr").z_mean()
    np.testing.assert_allclose(cpu, embed_sequences(model, list(SEQS.values())), rtol=1e-5, atol=1e-6)
    # another device rounds differently: float32 tolerance
    np.testing.assert_allclose(open_embeddings(tmp_path / "auto.zarr").z_mean(), cpu, rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    cuda = main([*base, str(tmp_path / "cuda.zarr"), "--device", "cuda"])
    if torch.cuda.is_available():
        assert cuda == 0
        np.testing.assert_allclose(
            open_embeddings(tmp_path / "cuda.zarr").z_mean(), cpu, rtol=1e-4, atol=1e-5
        )
    else:
        err = capsys.readouterr().err.strip()
        assert (
            cuda == 2 and "--device cuda: no CUDA device is available" in err and len(err.splitlines()) == 1
        )
        assert not (tmp_path / "cuda.zarr").exists()
    # query embeds FASTA queries on the device it is given
    build_index(tmp_path / "cpu.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    query = ["query", "--index", str(tmp_path / "i.faiss"), "--fasta", str(fasta), "--model", str(model_dir)]
    assert main([*query, "-k", "1", "-o", str(tmp_path / "n.tsv"), "--device", "cpu"]) == 0
    rows = [line.split("\t") for line in (tmp_path / "n.tsv").read_text().splitlines()[1:]]
    assert [(r[1], r[4]) for r in rows] == [(name, name) for name in SEQS]  # each its own nearest
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main([*query, "-o", str(tmp_path / "m.tsv"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "m.tsv").exists()

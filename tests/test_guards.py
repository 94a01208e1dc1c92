"""Guards: a user's mistake is said, not silently embedded or trained.

* Training records the training split's contig lengths in the weight files, and warns about
  a batch larger than the training split, every epoch inside the β warm-up, and a tiny
  validation split; a warm-up epoch is never the best checkpoint (best = final when every
  epoch is in warm-up).
* Embedding FASTA (`embed`, `query --fasta`) skips records shorter than --min-length (default:
  the training floor) and warns with counts; stores keep every row unless --min-length is
  given; ``embed_sequences`` refuses a bare string.
"""

import logging
import re

import numpy as np
import pytest
import torch
from fasta_oracle import naive_parse
from safetensors import safe_open
from safetensors.torch import load_file

from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.embed import embed_path, embed_sequences, open_embeddings
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.vae.files import build_model, load_model, save_weights
from kmervae.io.store import KmerStore, StoreWriter
from kmervae.train import train

KS = (3, 2, 1)


def make_dataset(path, n=320, splits=(0.7, 0.2, 0.1), seed=0, provenance=None):
    """Random counts, lengths 1000..9000, a split column (and a selection threshold when given)."""
    rng = np.random.default_rng(seed)
    layout = Layout(KS)
    counts = rng.integers(0, 30, size=(n, layout.width)).astype(np.uint32)
    lengths = rng.integers(1000, 9000, n)
    split = rng.choice(3, size=n, p=splits).astype(np.int8)
    attrs = {"provenance": provenance} if provenance else None
    with StoreWriter(path, layout, chunk_rows=32, attrs=attrs, extra=("sample", "split")) as w:
        w.append([f"c{i}" for i in range(n)], lengths, counts, sample=["s"] * n, split=split)
    return lengths, split


def tiny_config(*overrides):
    base = ["input.ks=[3, 2, 1]", "model.hidden=[8]", "model.latent=3", "training.batch_size=32"]
    return cfg.load(None, base + ["training.eval_batch_size=64", *overrides])


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def tensors_equal(a, b):
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# -- training ------------------------------------------------------------------------------


def test_weight_files_record_the_training_splits_length_range(tmp_path):
    lengths, split = make_dataset(tmp_path / "d.zarr", provenance={"min_length": 1000})
    train(tiny_config("training.epochs=1", "loss.warmup_epochs=0"), tmp_path / "d.zarr", tmp_path / "m")
    # the oracle: the store's own columns, read whole, not the chunked reader of the code
    store = KmerStore(tmp_path / "d.zarr")
    assert np.array_equal(store.lengths(), lengths)
    train_lengths = np.sort(np.asarray(store.lengths())[np.asarray(store.read("split")) == 0])
    assert len(train_lengths) == int((split == 0).sum())
    summary = load_model(tmp_path / "m").training_lengths
    assert summary["n"] == len(train_lengths)
    assert summary["min"] == int(train_lengths[0]) and summary["max"] == int(train_lengths[-1])
    # inverted-CDF quantile: the smallest value with at least a fraction q of the values at or below it
    for q in (0.01, 0.5, 0.99):
        assert summary["quantiles"][f"{q:g}"] == int(train_lengths[int(np.ceil(q * len(train_lengths))) - 1])
    assert summary["selected_min_length"] == 1000 and summary["split"] == "train"
    with safe_open(str(tmp_path / "m" / "final.safetensors"), "pt") as fh:
        assert "training_lengths" in fh.metadata()
    assert load_model(tmp_path / "m", "final").training_lengths == summary
    # `kmervae info` shows them
    from kmervae.info import describe, render

    info = describe(tmp_path / "m")
    assert info["weights"]["best"]["training_lengths"] == summary
    assert f"trained on {len(train_lengths):,} contigs of {train_lengths[0]:,}-" in render(info)
    assert (
        f"{len(train_lengths):,} contigs of {train_lengths[0]:,}-" in (tmp_path / "m/train.log").read_text()
    )


def test_a_batch_larger_than_the_training_split_is_warned(tmp_path, caplog):
    _, split = make_dataset(tmp_path / "d.zarr")
    n_train = int((split == 0).sum())
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        train(
            tiny_config("training.epochs=1", "training.batch_size=1000"), tmp_path / "d.zarr", tmp_path / "a"
        )
    assert any(f"batch_size 1000 is larger than the {n_train} rows" in w for w in warnings_of(caplog))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        train(
            tiny_config("training.epochs=1", f"training.batch_size={n_train}"),
            tmp_path / "d.zarr",
            tmp_path / "b",
        )
    assert not any("batch_size" in w for w in warnings_of(caplog))


def test_a_tiny_validation_split_is_warned(tmp_path, caplog):
    _, split = make_dataset(tmp_path / "small.zarr")
    n_val = int((split == 1).sum())
    assert n_val < 100
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        train(tiny_config("training.epochs=1"), tmp_path / "small.zarr", tmp_path / "a")
    assert any(f"validation split has only {n_val} rows (fewer than 100)" in w for w in warnings_of(caplog))
    _, split = make_dataset(tmp_path / "large.zarr", n=400, splits=(0.5, 0.4, 0.1))
    assert (split == 1).sum() >= 100
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        train(tiny_config("training.epochs=1"), tmp_path / "large.zarr", tmp_path / "b")
    assert not any("validation split" in w for w in warnings_of(caplog))


def test_all_epochs_in_warm_up_is_warned_and_best_is_the_final_weights(tmp_path, caplog):
    make_dataset(tmp_path / "d.zarr")
    config = tiny_config("training.epochs=3", "loss.warmup_epochs=5")
    # stopped inside the warm-up: no warm-up epoch was written as the best
    train(config, tmp_path / "d.zarr", tmp_path / "m", stop_after_epoch=2)
    assert not (tmp_path / "m/best.safetensors").exists()
    with caplog.at_level(logging.INFO, logger="kmervae"):
        train(config, tmp_path / "d.zarr", tmp_path / "m", resume=True)
    assert any("all 3 epochs are in the β warm-up (loss.warmup_epochs 5)" in w for w in warnings_of(caplog))
    assert tensors_equal(tmp_path / "m/best.safetensors", tmp_path / "m/final.safetensors")
    log = (tmp_path / "m/train.log").read_text()
    assert "all 3 epochs were in the β warm-up: best = final (epoch 3)" in log
    assert "best epoch 3" in log
    history = (tmp_path / "m/history.tsv").read_text().splitlines()
    best_column = history[0].split("\t").index("best")
    assert [line.split("\t")[best_column] for line in history[1:]] == ["0", "0", "1"]


def test_best_checkpoint_is_an_epoch_after_the_warm_up(tmp_path):
    make_dataset(tmp_path / "d.zarr")
    config = tiny_config("training.epochs=5", "loss.warmup_epochs=2", "training.lr=0.01")
    out = train(config, tmp_path / "d.zarr", tmp_path / "m", threads=1)
    lines = (out / "history.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert all(r["best"] == "0" for r in rows if r["warmup"] == "1")
    post = [r for r in rows if r["warmup"] == "0"]
    best_epoch = int(min(post, key=lambda r: float(r["val_loss"]))["epoch"])
    assert best_epoch > 2
    # the weights after that epoch, from a run of the same config stopped there (same machine, threads)
    stopped = train(config, tmp_path / "d.zarr", tmp_path / "s", threads=1, stop_after_epoch=best_epoch)
    state = torch.load(stopped / "checkpoint.pt", weights_only=True)["model"]
    best = load_file(str(out / "best.safetensors"))
    assert best.keys() == state.keys() and all(torch.equal(best[k], state[k]) for k in best)


# -- embedding -----------------------------------------------------------------------------

#: what a model trained on contigs selected at >= 1000 bp records (longest 4000 bp)
SUMMARY = {
    "split": "train",
    "n": 50,
    "min": 1003,
    "max": 4000,
    "quantiles": {"0.5": 2000},
    "selected_min_length": 1000,
}
#: record lengths: below the floor, at it, inside the range, above twice the maximum
LENGTHS = [300, 999, 1000, 2500, 700, 9000, 1500, 8001, 40]


def make_model(tmp_path, summary=SUMMARY):
    torch.manual_seed(0)
    config = cfg.resolve({"input": {"ks": [4, 3, 2, 1]}, "model": {"hidden": [12], "latent": 5}})
    model = build_model(config).eval()
    model.training_lengths = summary
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.yaml").write_text(cfg.dump(config))
    save_weights(model, model_dir / "best.safetensors", config)
    return model_dir


def write_fasta(path, lengths=LENGTHS, seed=1):
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for i, n in enumerate(lengths):
            seq = "".join(rng.choice(list("ACGT"), size=n))
            fh.write(f">r{i} len={n}\n" + "\n".join(seq[a : a + 60] for a in range(0, n, 60)) + "\n")
    return path


def test_fasta_records_below_the_training_floor_are_skipped_and_counted(tmp_path, caplog):
    model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa")
    records = naive_parse(fasta.read_text())  # the oracle: the file itself
    short = [r for r in records if len(r[1]) < 1000]
    far = [r for r in records if len(r[1]) > 8000]
    assert len(short) == 4 and len(far) == 2
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        emb = open_embeddings(embed_path(model_dir, fasta, tmp_path / "e.zarr"))
    assert list(emb.ids()) == [name for name, seq in records if len(seq) >= 1000]
    kept_seqs = [seq for _, seq in records if len(seq) >= 1000]
    model = load_model(model_dir)
    np.testing.assert_allclose(emb.z_mean(), embed_sequences(model, kept_seqs), rtol=1e-5, atol=1e-6)
    warned = warnings_of(caplog)
    assert any(
        f"{len(short)} of {len(records)} contigs are shorter than --min-length (default: the training "
        "floor) 1000 bp and were skipped" in w
        for w in warned
    )
    assert any(f"{len(far)} of {len(records)} contigs are longer than 2 x the longest" in w for w in warned)


def test_an_explicit_min_length_is_used_and_below_floor_records_are_flagged(tmp_path, caplog, capsys):
    model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa")
    records = naive_parse(fasta.read_text())
    base = ["embed", "--model", str(model_dir), str(fasta), "-o"]
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        assert main([*base, str(tmp_path / "a.zarr"), "--min-length", "500"]) == 0
    assert list(open_embeddings(tmp_path / "a.zarr").ids()) == [n for n, s in records if len(s) >= 500]
    below = sum(500 <= len(s) < 1000 for _, s in records)
    assert any(
        f"{below} of {len(records)} contigs are shorter than the training floor 1000 bp but were embedded"
        in w
        for w in warnings_of(caplog)
    )
    assert main([*base, str(tmp_path / "all.zarr"), "--min-length", "0"]) == 0
    assert list(open_embeddings(tmp_path / "all.zarr").ids()) == [n for n, _ in records]
    capsys.readouterr()
    assert main([*base, str(tmp_path / "bad.zarr"), "--min-length", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "kmervae: error: --min-length must be >= 0, got -1"
    assert not (tmp_path / "bad.zarr").exists()


def test_store_rows_are_kept_by_default_and_skipped_by_an_explicit_min_length(tmp_path, caplog):
    model_dir = make_model(tmp_path)
    layout = Layout.parse("4..1")
    lengths = np.array(LENGTHS)
    counts = np.random.default_rng(2).integers(0, 9, size=(len(lengths), layout.width)).astype(np.uint32)
    ids = [f"s{i}" for i in range(len(lengths))]
    with StoreWriter(tmp_path / "s.zarr", layout, chunk_rows=4) as w:
        w.append(ids, lengths, counts)
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        every = open_embeddings(embed_path(model_dir, tmp_path / "s.zarr", tmp_path / "e.zarr"))
    assert list(every.ids()) == ids  # rows keep the store's order and number
    short = int((lengths < 1000).sum())
    assert any(
        f"{short} of {len(ids)} contigs are shorter than the training floor 1000 bp but were embedded" in w
        for w in warnings_of(caplog)
    )
    kept = open_embeddings(embed_path(model_dir, tmp_path / "s.zarr", tmp_path / "k.zarr", min_length=1000))
    assert list(kept.ids()) == [i for i, n in zip(ids, lengths) if n >= 1000]
    np.testing.assert_allclose(kept.z_mean(), every.z_mean()[lengths >= 1000], rtol=1e-5, atol=1e-6)


def test_query_fasta_skips_short_queries(tmp_path, caplog):
    from kmervae.index import IndexParams, build_index

    model_dir = make_model(tmp_path)
    fasta = write_fasta(tmp_path / "q.fa")
    records = naive_parse(fasta.read_text())
    embed_path(model_dir, fasta, tmp_path / "e.zarr", min_length=0)
    build_index(tmp_path / "e.zarr", tmp_path / "i.faiss", IndexParams(metric="l2", kind="flat"))
    argv = ["query", "--index", str(tmp_path / "i.faiss"), "--fasta", str(fasta), "--model", str(model_dir)]
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        assert main([*argv, "-k", "2", "-o", str(tmp_path / "n.tsv")]) == 0
    queries = {line.split("\t")[1] for line in (tmp_path / "n.tsv").read_text().splitlines()[1:]}  # query_id
    assert queries == {name for name, seq in records if len(seq) >= 1000}
    short = sum(len(s) < 1000 for _, s in records)
    assert any(re.search(rf"\b{short} of {len(records)} contigs are shorter", w) for w in warnings_of(caplog))
    assert main([*argv, "-k", "2", "--min-length", "0", "-o", str(tmp_path / "all.tsv")]) == 0
    queries = {line.split("\t")[1] for line in (tmp_path / "all.tsv").read_text().splitlines()[1:]}
    assert queries == {name for name, _ in records}


def test_a_model_without_training_lengths_embeds_every_record(tmp_path):
    model_dir = make_model(tmp_path, summary=None)
    fasta = write_fasta(tmp_path / "q.fa")
    assert load_model(model_dir).training_lengths is None
    emb = open_embeddings(embed_path(model_dir, fasta, tmp_path / "e.zarr"))
    assert list(emb.ids()) == [name for name, _ in naive_parse(fasta.read_text())]


@pytest.mark.parametrize("seq", ["ACGTACGTAC", b"ACGTACGTAC"])
def test_embed_sequences_refuses_a_bare_string(tmp_path, seq):
    model = load_model(make_model(tmp_path))
    with pytest.raises(KmervaeError) as err:
        embed_sequences(model, seq)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "not one" in message and "10 characters" in message
    assert embed_sequences(model, [seq]).shape == (1, 5)

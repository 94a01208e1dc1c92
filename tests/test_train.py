"""Training: batches, determinism, resume bit-identity, warm-up and schedules, whole-split
validation, NaN stop, bad inputs, DDP over gloo vs one process. Tiny models, tiny data."""

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from kmervae.vae import config as cfg
from kmervae.cli import main as cli_main
from kmervae.data import DatasetBatches
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.vae.files import load_model
from kmervae.io.store import KmerStore, StoreWriter
from kmervae.train import train

KS = (3, 2, 1)


def make_dataset(
    path,
    n=320,
    layout=Layout(KS),
    chunk_rows=32,
    seed=0,
    splits=(0.7, 0.2, 0.1),
    sources=4,
    total=300,
    counts_width=32,
    wide_rows=0,
):
    """Dirichlet-multinomial counts (``total`` per k group) from a few 'genomes' (so there is
    structure to learn). ``counts_width`` 16: a 16-bit dataset as ``kmervae merge`` writes;
    ``wide_rows``: that many random rows have 1000 times the counts (most above 65535)."""
    rng = np.random.default_rng(seed)
    alphas = rng.gamma(1.0, 1.0, size=(sources, layout.width)) * 5
    source = rng.integers(0, sources, n)
    counts = np.zeros((n, layout.width), np.uint32)
    for i in range(n):
        for g in layout.groups:
            counts[i, g.start : g.stop] = rng.multinomial(
                total, rng.dirichlet(alphas[source[i], g.start : g.stop])
            )
    split = rng.choice(3, size=n, p=splits).astype(np.int8)
    if wide_rows:
        counts[rng.choice(n, wide_rows, replace=False)] *= 1000
    with StoreWriter(
        path, layout, chunk_rows=chunk_rows, extra=("sample", "split"), counts_width=counts_width
    ) as w:
        w.append(
            [f"c{i}" for i in range(n)],
            rng.integers(1000, 9000, n),
            counts,
            sample=[f"s{s}" for s in source],
            split=split,
        )
    return counts, split


def tiny_config(*overrides):
    base = [
        "input.ks=[3, 2, 1]",
        "model.hidden=[16, 8]",
        "model.latent=4",
        "training.batch_size=32",
        "training.epochs=4",
        "loss.warmup_epochs=2",
        "training.lr=0.003",
        "training.eval_batch_size=50",
        "training.shuffle_buffer_rows=64",
    ]
    return cfg.load(None, base + list(overrides))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.zarr"
    counts, split = make_dataset(path)
    return path, counts, split


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def read_history(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, (float(v) for v in line.split("\t")))) for line in lines[1:]]


NUMBERS = ["train_loss", "val_loss", "kl", "mse", "lr", "beta"]


# -- batches -----------------------------------------------------------------------------


@pytest.mark.parametrize("budget, width", [(0, 32), (10**9, 32), (0, 16), (10**9, 16)])
def test_batches_cover_the_training_split_once_per_epoch_and_depend_on_seed_and_epoch(
    dataset, tmp_path, budget, width
):
    path, counts, split = dataset
    if width == 16:  # a 16-bit dataset with counts above 65535 in a tenth of the rows
        path = tmp_path / "d16.zarr"
        counts, split = make_dataset(path, counts_width=16, wide_rows=32)
        assert KmerStore(path).matrix_array.dtype == np.uint16 and counts.max() > 65535
    data = DatasetBatches(path, (2, 1), 32, seed=7, in_memory_budget_bytes=budget, shuffle_buffer_rows=64)
    assert data.in_memory == bool(budget)
    columns = Layout(KS).columns_for((2, 1))
    expected = counts[split == 0][:, columns].astype(np.float32)

    def epoch_rows(epoch):
        batches = list(data.train_batches(epoch))
        assert all(len(b) == 32 for b in batches[:-1]) and 2 <= len(batches[-1]) <= 32
        return torch.cat(batches).numpy()

    first, again, second = epoch_rows(0), epoch_rows(0), epoch_rows(1)
    sort = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(sort(first), sort(expected))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)  # reshuffled per epoch
    assert not np.array_equal(first, expected)  # not store order
    val = torch.cat(list(data.validation_batches())).numpy()
    np.testing.assert_array_equal(val, counts[split == 1][:, columns])  # the whole split, in order


# -- training ----------------------------------------------------------------------------


def test_same_seed_same_weights_and_resume_is_bit_identical(dataset, tmp_path):
    path = dataset[0]
    config = tiny_config()
    train(config, path, tmp_path / "a", device="cpu", threads=1)
    train(config, path, tmp_path / "b", device="cpu", threads=1)
    assert_same_weights(tmp_path / "a/final.safetensors", tmp_path / "b/final.safetensors")

    # killed after epoch 3 (of 4, after warm-up ended at epoch 2), then resumed
    train(config, path, tmp_path / "c", device="cpu", threads=1, stop_after_epoch=3)
    assert not (tmp_path / "c/final.safetensors").exists()
    assert len(read_history(tmp_path / "c/history.tsv")) == 3
    train(config, path, tmp_path / "c", resume=True, device="cpu", threads=1)
    assert_same_weights(tmp_path / "a/final.safetensors", tmp_path / "c/final.safetensors")
    assert_same_weights(tmp_path / "a/best.safetensors", tmp_path / "c/best.safetensors")
    ha, hc = read_history(tmp_path / "a/history.tsv"), read_history(tmp_path / "c/history.tsv")
    assert [r["epoch"] for r in hc] == [1, 2, 3, 4]
    assert [[r[k] for k in NUMBERS] for r in ha] == [[r[k] for k in NUMBERS] for r in hc]
    log = (tmp_path / "c/train.log").read_text()
    assert "resuming" in log and log.count("epoch 1/4") == 1 and "epoch 4/4" in log
    for name in ("config.yaml", "curves.png", "curves.pdf", "checkpoint.pt"):
        assert (tmp_path / "c" / name).exists()

    state = torch.load(tmp_path / "c/checkpoint.pt", weights_only=True)
    assert state["epoch"] == 4 and len(state["history"]) == 4
    # a finished run resumed with more epochs continues; a changed model cannot resume
    with pytest.raises(KmervaeError, match="model.latent was 4 in the checkpoint and is 5 now"):
        train(tiny_config("model.latent=5"), path, tmp_path / "c", resume=True, device="cpu")
    with pytest.raises(KmervaeError, match="use --resume"):
        train(config, path, tmp_path / "c", device="cpu")
    train(tiny_config("training.epochs=5"), path, tmp_path / "c", resume=True, device="cpu", threads=1)
    assert len(read_history(tmp_path / "c/history.tsv")) == 5


@pytest.mark.parametrize("width", [32, 16])
def test_streaming_resume_with_cosine_and_dropout(dataset, tmp_path, width):
    path = dataset[0]
    if width == 16:  # the dataset as `kmervae merge` writes it, with counts above 16 bits
        path = tmp_path / "d16.zarr"
        make_dataset(path, counts_width=16, wide_rows=32)
    config = tiny_config(
        "training.in_memory_budget_bytes=0",
        "training.schedule=cosine",
        "training.cosine.warmup_epochs=2",
        "model.dropout=0.2",
        "training.epochs=5",
    )
    train(config, path, tmp_path / "a", device="cpu", threads=1)
    train(config, path, tmp_path / "b", device="cpu", threads=1, stop_after_epoch=1)
    train(config, path, tmp_path / "b", resume=True, device="cpu", threads=1)
    assert_same_weights(tmp_path / "a/final.safetensors", tmp_path / "b/final.safetensors")
    history = read_history(tmp_path / "a/history.tsv")
    lr, low = 0.003, 1e-6
    expected = [lr * 1 / 2, lr * 2 / 2] + [
        low + (lr - low) * 0.5 * (1 + math.cos(math.pi * i / 2)) for i in range(3)
    ]
    np.testing.assert_allclose([r["lr"] for r in history], expected, rtol=1e-9)
    assert "streaming" in (tmp_path / "a/train.log").read_text()


def test_warmup_beta_plateau_reset_best_checkpoint_and_whole_split_validation(dataset, tmp_path):
    path, counts, split = dataset
    # patience 0: every post-warm-up epoch without improvement halves the LR
    config = tiny_config(
        "training.epochs=25", "loss.warmup_epochs=3", "training.plateau.patience=0", "training.lr=0.05"
    )
    out = train(config, path, tmp_path / "m", device="cpu", threads=1)
    history = read_history(out / "history.tsv")
    assert [r["beta"] for r in history] == pytest.approx([0, 0.05 / 3, 0.1 / 3] + [0.05] * 22)
    assert [r["warmup"] for r in history] == [1, 1, 1] + [0] * 22

    # oracle for the plateau rule, started fresh after warm-up (threshold 1e-4 absolute)
    lr, best, lrs = 0.05, math.inf, []
    for r in history:
        lrs.append(lr)
        if r["warmup"]:
            continue
        if r["val_loss"] < best - 1e-4:
            best = r["val_loss"]
        else:
            lr = max(lr * 0.5, 1e-6)
    np.testing.assert_allclose([r["lr"] for r in history], lrs, rtol=1e-12)
    assert lrs[-1] < 0.05  # the rule fired in this setup, so the check above means something

    # best = lowest validation loss after warm-up, even if a warm-up epoch (small β) was lower
    post = [r for r in history if not r["warmup"]]
    best_epoch = int(min(post, key=lambda r: r["val_loss"])["epoch"])
    assert [r["epoch"] for r in post if r["best"]][-1] == best_epoch
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["best"]["epoch"] == best_epoch

    # the logged validation metrics are the whole validation split in eval mode:
    # recompute them for the best and final weights independently
    val = counts[split == 1]
    for weights_name, row in (("best", history[best_epoch - 1]), ("final", history[-1])):
        model = load_model(out, weights_name)
        x = model.transform(torch.from_numpy(val.astype(np.float32)))
        with torch.no_grad():
            mean, log_var = model.encode(x)
            recon = model.decoder(mean)["kmers"]
        sq = ((recon - x) ** 2).double()
        kl = (-0.5 * (1 + log_var - mean**2 - log_var.exp())).sum(1).double()
        assert row["mse"] == pytest.approx(sq.mean().item(), rel=1e-5)
        assert row["kl"] == pytest.approx(kl.mean().item(), rel=1e-5)
        assert row["val_loss"] == pytest.approx((sq.sum(1) + 0.05 * kl).mean().item(), rel=1e-5)
        assert row["mse_3mer"] == pytest.approx(sq[:, :32].mean().item(), rel=1e-5)
        assert row["mse_1mer"] == pytest.approx(sq[:, -2:].mean().item(), rel=1e-5)


def test_non_finite_loss_stops_naming_epoch_and_batch_and_keeps_the_checkpoint(
    dataset, tmp_path, monkeypatch
):
    from kmervae.vae.model import VAE

    path = dataset[0]
    config = tiny_config()
    train(config, path, tmp_path / "m", device="cpu", threads=1, stop_after_epoch=1)
    before = (tmp_path / "m/checkpoint.pt").read_bytes()
    real_loss, calls = VAE.loss, []

    def loss_going_nan(self, x, beta, noise=None, metrics=False):
        out = real_loss(self, x, beta, noise, metrics)
        if not metrics:  # training steps only
            calls.append(1)
            if len(calls) == 3:
                out.loss = out.loss * math.nan
        return out

    monkeypatch.setattr(VAE, "loss", loss_going_nan)
    with pytest.raises(
        KmervaeError, match=r"loss became nan at epoch 2, batch 3;.*checkpoint.pt \(epoch 1\) is kept"
    ):
        train(config, path, tmp_path / "m", resume=True, device="cpu", threads=1)
    assert (tmp_path / "m/checkpoint.pt").read_bytes() == before
    assert len(read_history(tmp_path / "m/history.tsv")) == 1


def test_bad_inputs_get_one_clear_line(tmp_path):
    wrong = tmp_path / "wrong.zarr"
    make_dataset(wrong, n=40, layout=Layout((2, 1)))
    with pytest.raises(
        KmervaeError, match=r"wrong.zarr: the model reads 3-mers but the dataset holds only 2-mers\+1-mers"
    ):
        train(tiny_config(), wrong, tmp_path / "m1", device="cpu")
    no_val = tmp_path / "noval.zarr"
    make_dataset(no_val, n=40, splits=(0.9, 0.0, 0.1))
    with pytest.raises(KmervaeError, match=r"noval.zarr: the validation split is empty"):
        train(tiny_config(), no_val, tmp_path / "m2", device="cpu")
    plain = tmp_path / "plain.zarr"
    with StoreWriter(plain, Layout(KS)) as w:
        w.append(["a", "b"], [1, 2], np.ones((2, Layout(KS).width)))
    with pytest.raises(KmervaeError, match="no split column"):
        train(tiny_config(), plain, tmp_path / "m3", device="cpu")
    assert not (tmp_path / "m3/checkpoint.pt").exists()


def test_cli_trains_and_reports_config_errors(dataset, tmp_path, capsys):
    path = dataset[0]
    sets = [
        f"--set={s}"
        for s in [
            "input.ks=[3,2,1]",
            "model.hidden=[8]",
            "model.latent=2",
            "training.epochs=2",
            "training.batch_size=64",
        ]
    ]
    assert (
        cli_main(
            [
                "train",
                "--data",
                str(path),
                "-o",
                str(tmp_path / "m"),
                "--device",
                "cpu",
                "--threads",
                "1",
                *sets,
            ]
        )
        == 0
    )
    assert load_model(tmp_path / "m", "final").latent_dim == 2
    assert cli_main(["train", "--data", str(path), "-o", str(tmp_path / "x"), "--set", "model.latnt=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'model.latnt'" in err and err.count("\n") == 1


# -- data parallel -----------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, config, data, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    train(config, data, out, device="cpu", threads=1)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(dataset, tmp_path):
    path = dataset[0]
    # the validation split is dealt over the ranks too. No warm-up: with beta = 0 the
    # shift of z_mean is unconstrained (the decoder's BatchNorm removes it) and Adam
    # turns its rounding-noise gradient into lr-sized steps, so it would not match.
    config = tiny_config("training.epochs=3", "loss.warmup_epochs=0")
    train(config, path, tmp_path / "one", device="cpu", threads=1)
    mp.spawn(_ddp_worker, args=(2, _free_port(), config, path, tmp_path / "two"), nprocs=2, join=True)
    one, two = weights(tmp_path / "one/final.safetensors"), weights(tmp_path / "two/final.safetensors")
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    h1, h2 = read_history(tmp_path / "one/history.tsv"), read_history(tmp_path / "two/history.tsv")
    for r1, r2 in zip(h1, h2, strict=True):
        for key in ("train_loss", "val_loss", "kl", "mse"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-4), key
    assert "2 rank(s)" in (tmp_path / "two/train.log").read_text()


def test_work_dir_training_resumes_after_an_interruption_and_publishes_whole(dataset, tmp_path, monkeypatch):
    """The workflow's way: a killed job's work directory survives, the rerun continues it."""
    import kmervae.train as train_module
    from kmervae.train import train_in_work_dir

    path, _, _ = dataset
    config = tiny_config()
    train(config, path, tmp_path / "straight", device="cpu", threads=1)
    work_root = tmp_path / "work"

    def killed_after_epoch_2(*args, **kwargs):
        train(*args, **kwargs, stop_after_epoch=2)
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train", killed_after_epoch_2)
        with pytest.raises(RuntimeError, match="killed"):
            train_in_work_dir(config, path, tmp_path / "out", work_root, device="cpu", threads=1)
    assert not (tmp_path / "out").exists()
    (partial,) = list(work_root.iterdir())
    assert len((partial / "history.tsv").read_text().splitlines()) == 1 + 2
    train_in_work_dir(config, path, tmp_path / "out", work_root, device="cpu", threads=1)
    assert not work_root.exists()
    assert_same_weights(tmp_path / "out" / "final.safetensors", tmp_path / "straight" / "final.safetensors")
    assert_same_weights(tmp_path / "out" / "best.safetensors", tmp_path / "straight" / "best.safetensors")
    history = (tmp_path / "out" / "history.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in history[1:]] == ["1", "2", "3", "4"]
    # a different config does not resume that work: it trains afresh in its own directory
    other = tiny_config("training.lr=0.001")
    train_in_work_dir(other, path, tmp_path / "out2", work_root, device="cpu", threads=1)
    assert len((tmp_path / "out2" / "history.tsv").read_text().splitlines()) == 1 + 4


def test_sharded_streaming_ranks_read_disjoint_chunks_and_agree_on_batch_sizes(dataset):
    path, counts, split = dataset
    ranks = [
        DatasetBatches(path, KS, 32, seed=3, in_memory_budget_bytes=0, shuffle_buffer_rows=64, rank=r, world=2)
        for r in range(2)
    ]
    assert all(d.sharded for d in ranks)
    sizes = ranks[0].shard_sizes(1)
    np.testing.assert_array_equal(sizes, ranks[1].shard_sizes(1))
    assert (sizes >= 2).all() and (sizes.sum(axis=1) <= 32).all()
    chunk_of = np.arange(len(counts)) // 32  # the dataset's chunks
    train_rows = np.flatnonzero(split == 0)
    seen = []
    for r, data in enumerate(ranks):
        parts = list(data.train_batches(1))
        assert [len(p) for p in parts] == sizes[:, r].tolist()
        rows = torch.cat(parts).numpy()
        # which training row is each yielded row (rows are distinct count vectors here)
        index = {tuple(counts[i]): i for i in train_rows}
        got = np.array([index[tuple(row)] for row in rows])
        assert len(set(got.tolist())) == len(got)  # each row at most once
        seen.append(got)
    first, second = (set(chunk_of[g].tolist()) for g in seen)
    assert not first & second  # the ranks read different chunks
    covered = len(seen[0]) + len(seen[1])
    assert len(train_rows) - 64 <= covered <= len(train_rows)  # a few rows wait for another epoch


@pytest.mark.slow
def test_two_gloo_processes_train_streaming_each_on_its_own_chunks(dataset, tmp_path):
    path = dataset[0]
    config = tiny_config("training.epochs=2", "loss.warmup_epochs=0", "training.in_memory_budget_bytes=0")
    mp.spawn(_ddp_worker, args=(2, _free_port(), config, path, tmp_path / "two"), nprocs=2, join=True)
    history = read_history(tmp_path / "two/history.tsv")
    assert len(history) == 2 and all(math.isfinite(r["train_loss"]) for r in history)
    log = (tmp_path / "two/train.log").read_text()
    assert "2 rank(s)" in log and "streaming" in log


def _plain_buffer_batches(counts, split, chunk_rows, batch, buffer_rows, seed, epoch):
    """Oracle: the streaming shuffle on a plain buffer of training rows (chunks in the
    epoch's order, rows appended, shuffled and drained in full batches, the rest kept in
    front), written out with numpy alone."""
    from kmervae.data import epoch_rng

    n_chunks = -(-len(counts) // chunk_rows)
    rng = epoch_rng(seed, epoch)
    order = epoch_rng(seed, epoch, stream=1).permutation(n_chunks)
    held = np.empty((0, counts.shape[1]), counts.dtype)
    out = []

    def drain(held, final):
        perm = rng.permutation(len(held))
        full = len(held) if final else len(held) - len(held) % batch
        out.extend(held[perm[a : a + batch]] for a in range(0, full, batch))
        return held[perm[full:]]

    for c in order:
        rows = counts[c * chunk_rows : (c + 1) * chunk_rows][split[c * chunk_rows : (c + 1) * chunk_rows] == 0]
        if len(rows) == 0:
            continue
        held = np.concatenate([held, rows])
        if len(held) >= buffer_rows:
            held = drain(held, final=False)
    drain(held, final=True)
    return out


@pytest.mark.parametrize("width", [32, 16])
def test_streamed_batches_are_the_plain_shuffle_buffer_batches_in_order(tmp_path, width):
    # chunks of mostly validation rows too, so both ways of copying a chunk are used; 16-bit
    # counts with wide rows: the same batches, complete
    path = tmp_path / "d.zarr"
    counts, split = make_dataset(path, n=400, splits=(0.8, 0.15, 0.05), counts_width=width, wide_rows=40)
    split_in_store = np.asarray(KmerStore(path).array("split")[:])
    data = DatasetBatches(path, KS, 24, seed=5, in_memory_budget_bytes=0, shuffle_buffer_rows=50, read_threads=2)
    abandoned = data.train_batches(1)  # an epoch left after 3 batches leaves nothing behind
    assert [len(next(abandoned)) for _ in range(3)] == [24, 24, 24]
    abandoned.close()
    for epoch in (0, 3):
        got = [b.numpy() for b in data.train_batches(epoch)]
        expected = _plain_buffer_batches(counts, split_in_store, 32, 24, 50, 5, epoch)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)

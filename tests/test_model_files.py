"""Model files: weight and checkpoint errors in one line, byte-identical weight files, the
optimizer choice, and a trained model identified by its weight file downstream."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_train import make_dataset, tiny_config

from kmervae.vae import config as cfg
from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.vae.files import build_model, load_model, save_weights, weights_hash
from kmervae.train import make_optimizer, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.zarr"
    make_dataset(path, n=160)
    return path


def model_dir(path, seed=0, **model):
    config = cfg.resolve({"input": {"ks": [3, 2, 1]}, "model": {"hidden": [16, 8], "latent": 4, **model}})
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(cfg.dump(config))
    save_weights(build_model(config), path / "best.safetensors", config)
    return path, config


def one_line_error(call, match):
    with pytest.raises(KmervaeError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_random_or_empty_checkpoint_is_one_line_saying_so(data, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(3000))
    message = one_line_error(
        lambda: train(tiny_config(), data, out, resume=True, device="cpu", threads=1),
        "not a kmervae checkpoint",
    )
    assert "weights_only" not in message
    (out / "checkpoint.pt").write_bytes(b"")
    one_line_error(
        lambda: train(tiny_config(), data, out, resume=True, device="cpu", threads=1), "checkpoint is empty"
    )


def test_a_random_truncated_or_empty_weight_file_is_one_line(tmp_path):
    path, _ = model_dir(tmp_path / "m")
    weights = path / "best.safetensors"
    good = weights.read_bytes()
    for bad in (np.random.default_rng(1).bytes(500), good[: len(good) // 2], good[:4]):
        weights.write_bytes(bad)
        one_line_error(lambda: load_model(path), rf"{weights}: not a safetensors weight file")
    weights.write_bytes(b"")
    one_line_error(lambda: load_model(path), "weight file is empty")


def test_weights_of_another_shape_name_the_first_mismatching_key_and_shapes(tmp_path):
    path, _ = model_dir(tmp_path / "m", hidden=[16, 6])
    model_dir(tmp_path / "other", hidden=[16, 8])
    (path / "best.safetensors").write_bytes((tmp_path / "other/best.safetensors").read_bytes())
    one_line_error(
        lambda: load_model(path),
        r"weights do not fit .*config.yaml \(encoder.layers.3.weight has shape \[8, 16\] but the model's is \[6, 16\]\)",
    )


def test_two_identical_trainings_write_byte_identical_weight_files(data, tmp_path):
    config = tiny_config("training.epochs=2", "loss.warmup_epochs=1")
    for name in ("a", "b"):
        train(config, data, tmp_path / name, device="cpu", threads=1)
    for weights in ("best", "final"):
        a, b = (tmp_path / n / f"{weights}.safetensors" for n in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
        assert weights_hash(a) == weights_hash(b)
        assert f"{weights} {weights_hash(a)}" in (tmp_path / "a/train.log").read_text()  # recorded there
    # the metadata order does not depend on the process either
    script = (
        "import sys, torch; from kmervae.vae.files import load_model, save_weights; "
        "m = load_model(sys.argv[1], 'final'); save_weights(m, sys.argv[2], m.config)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "a"), str(tmp_path / "c.safetensors")],
        check=True,
        env=env,
    )
    assert (tmp_path / "c.safetensors").read_bytes() == (tmp_path / "a/final.safetensors").read_bytes()


def test_training_optimizer_adamw_is_adam_with_decoupled_weight_decay(data, tmp_path):
    def trained(*overrides):
        config = tiny_config("training.epochs=2", "loss.warmup_epochs=1", *overrides)
        out = tmp_path / "-".join(o.split("=")[1] for o in overrides)
        train(config, data, out, device="cpu", threads=1)
        return {k: v.detach().clone() for k, v in load_model(out, "final").state_dict().items()}

    adam = trained("training.optimizer=adam")
    assert all(torch.equal(adam[k], v) for k, v in trained("training.optimizer=adamw").items())  # no decay
    decayed = trained("training.optimizer=adamw", "training.weight_decay=0.5")
    l2 = trained("training.optimizer=adam", "training.weight_decay=0.5")
    w = "encoder.layers.0.weight"
    assert decayed[w].norm() < adam[w].norm() and not torch.equal(decayed[w], l2[w])
    config = tiny_config("training.optimizer=adamw", "training.weight_decay=0.25")
    optimizer = make_optimizer(build_model(config), config)
    assert type(optimizer) is torch.optim.AdamW and optimizer.param_groups[0]["weight_decay"] == 0.25
    assert cfg.config_hash(tiny_config("training.weight_decay=0.0")) == cfg.config_hash(tiny_config())


def test_an_index_refuses_queries_embedded_by_another_training_of_the_same_config(tmp_path, capsys):
    fasta = tmp_path / "q.fa"
    rng = np.random.default_rng(2)
    fasta.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), 400))}\n" for i in range(12)))
    a, config = model_dir(tmp_path / "a", seed=0)
    b, _ = model_dir(tmp_path / "b", seed=1)
    assert cfg.config_hash(config) == load_model(b).config_hash and weights_hash(
        a / "best.safetensors"
    ) != weights_hash(b / "best.safetensors")
    assert main(["embed", "--model", str(a), str(fasta), "-o", str(tmp_path / "e.zarr")]) == 0
    assert main(["index", str(tmp_path / "e.zarr"), "-o", str(tmp_path / "i.faiss")]) == 0
    query = ["query", "--index", str(tmp_path / "i.faiss"), "--fasta", str(fasta), "-k", "3"]
    assert main([*query, "--model", str(a), "-o", str(tmp_path / "ok.tsv")]) == 0
    capsys.readouterr()
    assert main([*query, "--model", str(b), "-o", str(tmp_path / "no.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another training of the same config" in err
    assert weights_hash(b / "best.safetensors") in err and not (tmp_path / "no.tsv").exists()

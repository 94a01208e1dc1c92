"""The VAE model and its config: architecture from config, loss and input transform against
numpy oracles, embedding (group selection, determinism, save/load), strict config errors."""

import numpy as np
import pytest
import torch
import yaml

from kmervae.vae import config as cfg
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout
from kmervae.vae.files import build_model, load_model, save_weights
from kmervae.vae.blocks import BatchNorm


def tiny(**sections) -> dict:
    layers = {"input": {"ks": [3, 2, 1]}, "model": {"hidden": [16, 8], "latent": 4}}
    for section, values in sections.items():
        layers.setdefault(section, {}).update(values)
    return cfg.resolve(layers)


def numpy_clr(counts: np.ndarray, layout: Layout) -> np.ndarray:
    """Oracle: per group, frequencies + 0.5/width, log, minus the row mean (written out plainly)."""
    out = np.empty(counts.shape, dtype=np.float64)
    for g in layout.groups:
        block = counts[:, g.start : g.stop].astype(np.float64)
        total = block.sum(axis=1, keepdims=True)
        freq = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
        logs = np.log(freq + 0.5 / g.width)
        out[:, g.start : g.stop] = logs - logs.mean(axis=1, keepdims=True)
    return out


def test_default_config_is_the_paper_model_and_matches_the_shipped_yaml():
    from conftest import REPO

    config = cfg.resolve()
    model = build_model(config)
    assert model.input_width == 2772 and model.latent_dim == 384
    linears = [m for m in model.encoder.layers if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(2772, 1024), (1024, 512)]
    assert model.z_mean.out_features == model.z_log_var.out_features == 384
    assert [type(m).__name__ for m in model.encoder.layers[:3]] == ["Linear", "BatchNorm", "LeakyReLU"]
    assert model.encoder.layers[2].negative_slope == 0.2
    head = model.decoder.heads["kmers"]  # one output layer reconstructs the whole input
    assert list(model.decoder.heads) == ["kmers"]
    assert isinstance(head, torch.nn.Linear) and head.out_features == 2772
    assert config["loss"]["beta"] == 0.05 and config["loss"]["warmup_epochs"] == 5
    assert config["training"]["lr"] == 1e-4 and config["training"]["batch_size"] == 1024
    assert cfg.load(REPO / "config/models/default.yaml") == config

    kmer5 = cfg.load(REPO / "config/models/kmer5.yaml")
    m5 = build_model(kmer5)
    assert m5.input_width == 692 and m5.latent_dim == 128
    widths = [(lin.in_features, lin.out_features) for lin in m5.modules() if isinstance(lin, torch.nn.Linear)]
    assert widths[:2] == [(692, 512), (512, 256)] and widths[-1] == (512, 692)
    dropouts = [m.p for m in m5.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.1] * 4  # after each hidden block of encoder and decoder


def test_loss_matches_a_numpy_oracle_and_log_var_is_clipped():
    rng = np.random.default_rng(0)
    model = build_model(tiny())
    x, recon = (rng.normal(size=(6, model.input_width)) for _ in range(2))
    mean, log_var = rng.normal(size=(6, 4)), rng.normal(scale=3, size=(6, 4))
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    loss, sq_err, kl, _ = vars(
        model.loss_of(t(x), {"kmers": t(recon)}, t(mean), t(log_var), beta=0.05)
    ).values()
    mse_times_width = ((recon - x) ** 2).mean(axis=1) * x.shape[1]
    kl_oracle = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var).sum(axis=1)
    np.testing.assert_allclose(sq_err.numpy(), mse_times_width, rtol=1e-5)
    np.testing.assert_allclose(kl.numpy(), kl_oracle, rtol=1e-5)
    np.testing.assert_allclose(loss.item(), (mse_times_width + 0.05 * kl_oracle).mean(), rtol=1e-5)

    model = build_model(tiny(model={"logvar_clip": [-1.0, 0.5]})).eval()
    with torch.no_grad():
        model.z_log_var.bias.fill_(50.0)
        _, lv = model.encode(torch.randn(7, model.input_width))
    assert float(lv.max()) == 0.5


def test_embed_selects_groups_transforms_like_the_oracle_and_is_deterministic(tmp_path):
    torch.manual_seed(0)
    config = tiny()
    model = build_model(config).eval()
    rng = np.random.default_rng(1)
    wide = Layout.parse("4..1")
    counts = rng.integers(0, 30, size=(50, wide.width)).astype(np.uint32)
    counts[3] = 0  # an empty row must not produce NaN

    z = model.embed(counts, wide, batch_size=16)
    assert z.dtype == np.float32 and z.shape == (50, 4) and np.isfinite(z).all()
    np.testing.assert_array_equal(z, model.embed(counts, wide, batch_size=16))
    # another batch size may change the last bits (GEMM blocking), not the numbers
    np.testing.assert_allclose(z, model.embed(counts, wide, batch_size=7), rtol=1e-5, atol=1e-6)

    sub = counts[:, wide.columns_for((3, 2, 1))]
    x = torch.tensor(numpy_clr(sub, Layout((3, 2, 1))), dtype=torch.float32)
    torch.testing.assert_close(model.transform(torch.from_numpy(sub)), x, rtol=0, atol=2e-6)
    with torch.no_grad():
        oracle = model.encode(x)[0].numpy()
    np.testing.assert_allclose(z, oracle, rtol=1e-4, atol=1e-5)
    # frequencies in, same embedding as counts in
    freq = np.concatenate(
        [
            sub[:, g.start : g.stop] / np.maximum(sub[:, g.start : g.stop].sum(1, keepdims=True), 1)
            for g in Layout((3, 2, 1)).groups
        ],
        axis=1,
    ).astype(np.float32)
    np.testing.assert_allclose(model.embed(freq, Layout((3, 2, 1))), z, rtol=1e-4, atol=1e-5)

    with pytest.raises(KmervaeError, match="reads 3-mers but the data holds only 2-mers"):
        model.embed(counts[:, wide.columns_for((2, 1))], Layout((2, 1)))

    # saved and loaded: same numbers, eval mode, config and hash kept
    (tmp_path / "config.yaml").write_text(cfg.dump(config))
    save_weights(model, tmp_path / "best.safetensors", config)
    loaded = load_model(tmp_path)
    assert not loaded.training and loaded.config == config and loaded.config_hash == model.config_hash
    assert loaded.input_ks == (3, 2, 1) and loaded.latent_dim == 4
    np.testing.assert_array_equal(loaded.embed(counts, wide, batch_size=16), z)
    with pytest.raises(KmervaeError, match="final.safetensors"):
        load_model(tmp_path, weights="final")


def test_sampling_only_in_training_mode():
    torch.manual_seed(0)
    model = build_model(tiny())
    x = torch.randn(10, model.input_width)
    model.eval()
    with torch.no_grad():
        r1, m1, _ = model(x)
        r2, _, _ = model(x)
        assert torch.equal(r1["kmers"], r2["kmers"]) and torch.equal(r1["kmers"], model.decoder(m1)["kmers"])
    model.train()
    with torch.no_grad():
        _, mean, log_var = model(x, noise=torch.zeros(10, 4))
        a, _, _ = model(x, noise=torch.ones(10, 4))
        b, _, _ = model(x, noise=torch.ones(10, 4))
    assert torch.equal(a["kmers"], b["kmers"])  # the noise is the only randomness (no dropout here)


def test_batchnorm_without_distribution_is_plain_batchnorm():
    torch.manual_seed(0)
    ours, plain = BatchNorm(6, eps=1e-3, momentum=0.01), torch.nn.BatchNorm1d(6, eps=1e-3, momentum=0.01)
    x = torch.randn(20, 6) * 3 + 1
    torch.testing.assert_close(ours(x), plain(x))
    torch.testing.assert_close(ours.running_var, plain.running_var)


def test_config_errors_are_one_line_and_name_the_key(tmp_path):
    with pytest.raises(KmervaeError, match=r"unknown key 'model\.hiden'"):
        cfg.resolve({"model": {"hiden": [3]}})
    with pytest.raises(KmervaeError, match=r"unknown key 'trainig'"):
        cfg.resolve({"trainig": {}})
    cases = {
        "training.batch_size=0": "training.batch_size must be an integer >= 2",
        "model.dropout=1.5": "model.dropout must be <= 0.99",
        "input.ks=[6,6]": "input.ks must hold distinct k",
        "training.schedule=step": "training.schedule must be one of",
        "model.logvar_clip=[2,-20]": "model.logvar_clip must be",
        "training.lr=fast": "training.lr must be a number",
        "input.extra=[length]": "input.extra must be a list of",
    }
    for override, message in cases.items():
        with pytest.raises(KmervaeError, match=message) as err:
            cfg.load(None, [override])
        assert "\n" not in str(err.value) and override in str(err.value)
    path = tmp_path / "m.yaml"
    path.write_text("training:\n  epochs: -3\n")
    with pytest.raises(KmervaeError, match=rf"{path}: training.epochs must be an integer >= 1, got -3"):
        cfg.load(path)
    path.write_text("training: [1, 2\n")
    with pytest.raises(KmervaeError, match="not valid YAML"):
        cfg.load(path)
    with pytest.raises(KmervaeError, match="expected KEY=VALUE"):
        cfg.load(None, ["training.epochs"])


def test_overrides_and_hash():
    config = cfg.load(None, ["training.epochs=3", "model.hidden=[64, 32]", "training.plateau.patience=2"])
    assert config["training"]["epochs"] == 3 and config["model"]["hidden"] == [64, 32]
    assert config["training"]["plateau"] == {"factor": 0.5, "patience": 2, "min_lr": 1e-6}
    reordered = yaml.safe_load(yaml.safe_dump(config, sort_keys=True))
    assert cfg.config_hash(reordered) == cfg.config_hash(config)
    assert cfg.config_hash(cfg.resolve()) != cfg.config_hash(config)

"""The model family: per-group transforms against numpy, parameter counts of the shipped
configs against a hand count and the development logs' figures, output shapes of every
architecture and head, each loss and weighting against a numpy recomputation, gate
diagnostics, embedding with lengths, strict config errors, training on a tiny dataset."""

import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from kmervae.vae import config as cfg
from kmervae.errors import KmervaeError
from kmervae.kmers import Layout, counts_to_clr, frequencies
from kmervae.vae.files import build_model
from kmervae.vae.inputs import InputSpec
from kmervae.vae.model import VAE


def family(**sections) -> dict:
    """A resolved config: defaults + the given sections (family keys included)."""
    return cfg.resolve(sections)


def tiny_branched(**model) -> dict:
    return family(
        input={"ks": [4, 3, 2], "extra": ["gc", "log_length"]},
        model={
            "architecture": "branched",
            "hidden": [12],
            "latent": 3,
            "branches": {"4mer": [16, 8], "3mer": [8, 4], "2mer": [4]},
            **model,
        },
    )


def random_counts(n, layout, seed=0, high=40):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, high, size=(n, layout.width)).astype(np.float32)
    counts[:, layout.width - 2 :] += 1  # every row has some 1-mers
    return counts


def np_freq(block):
    total = block.sum(axis=1, keepdims=True)
    return np.divide(block, total, out=np.zeros_like(block, dtype=np.float64), where=total > 0)


# -- parameter counts ----------------------------------------------------------------------


def expected_parameters(config: dict) -> int:
    """Hand count from the widths: Linear = in·out (+ out bias unless BatchNorm follows),
    BatchNorm = 2·out, for branches, shared layers, latent heads, mirrored decoder, heads."""
    m = config["model"]
    ks = config["input"]["ks"]
    width = {f"{k}mer": Layout((k,)).width for k in ks}
    n_extra = len(config["input"]["extra"])

    def stack(widths):
        return sum(a * b + 2 * b for a, b in pairwise(widths))

    branches = m["branches"]
    total = sum(stack([width[g] + n_extra, *branches[g]]) for g in width)
    concat = sum(branches[g][-1] for g in width)
    total += stack([concat, *m["hidden"]])
    last = ([concat, *m["hidden"]])[-1]
    total += 2 * (last * m["latent"] + m["latent"])
    shared = [m["latent"], *reversed(m["hidden"])]
    total += stack(shared)
    for g, w in width.items():
        rev = [shared[-1], *reversed(branches[g])]
        total += stack(rev) + rev[-1] * w + w + rev[-1] + 1  # head + GC column
    return total


@pytest.mark.parametrize("name, logged", [("branched7_balanced", 10e6), ("branched7_deep", 19e6)])
def test_shipped_branched_configs_have_the_logged_shapes_and_sizes(name, logged):
    from conftest import REPO

    config = cfg.load(REPO / f"config/models/{name}.yaml")
    model = build_model(config)
    count = model.parameter_count()
    print(f"{name}: {count:,} parameters (logged ≈{logged / 1e6:.0f} M)")
    assert count == expected_parameters(config)
    assert abs(count - logged) / logged < 0.1
    enc = model.encoder
    assert enc.branches["7mer"][0].in_features == 8194  # 8,192 7-mers + GC + length
    assert enc.branches["4mer"][0].in_features == 138 and enc.branches["3mer"][0].in_features == 34
    assert enc.concat_width == {"branched7_balanced": 224, "branched7_deep": 352}[name]
    assert model.input_ks == (7, 4, 3, 1) and model.reads_length
    if name == "branched7_deep":
        linears = [l.out_features for l in enc.branches["7mer"] if isinstance(l, torch.nn.Linear)]
        assert linears == [1024, 512, 256] and model.latent_dim == 512
    else:
        assert model.latent_dim == 256 and enc.shared[0].out_features == 512


def test_vae65_hybrid_reads_2761_inputs_and_reconstructs_groups_and_gc():
    from conftest import REPO

    config = cfg.load(REPO / "config/models/vae65_hybrid.yaml")
    model = build_model(config)
    print(f"vae65_hybrid: {model.parameter_count():,} parameters")
    assert model.input_width == 2761 and not model.reads_length
    assert [l.out_features for l in model.encoder.layers if isinstance(l, torch.nn.Linear)] == [1024, 512]
    assert model.latent_dim == 256 and config["loss"]["beta"] == 0.1
    kinds = {n: model.reconstruction.specs[n]["kind"] for n in model.outputs}
    assert kinds == {"6mer": "bce", "5mer": "bce", "4mer": "log_mse", "3mer": "log_mse", "gc": "logit_mse"}
    layout = Layout.parse("6..1")
    x = model.transform(torch.from_numpy(random_counts(4, layout)[:, layout.columns_for(model.input_ks)]))
    out, _, _ = model.eval()(x)
    assert {n: tuple(v.shape) for n, v in out.items()} == {
        "6mer": (4, 2080),
        "5mer": (4, 512),
        "4mer": (4, 136),
        "3mer": (4, 32),
        "gc": (4, 1),
    }


# -- inputs --------------------------------------------------------------------------------


def test_input_transforms_and_extras_match_numpy_and_invert_to_frequencies():
    config = family(
        input={
            "ks": [3, 2],
            "extra": ["gc", "log_length"],
            "transform": "clr",
            "group_transforms": {"2mer": "log"},
            "log_offset": 0.05,
        }
    )
    spec = InputSpec(config)
    assert spec.read_ks == (3, 2, 1) and spec.width == 32 + 10 + 2
    read = Layout((3, 2, 1))
    counts = random_counts(9, read, seed=3)
    counts[2, :32] = 0  # an empty 3-mer group
    lengths = np.array([1000, 2500, 1, 7, 10_000_000, 5, 60, 3000, 1234], dtype=np.float32)
    x = spec(torch.from_numpy(np.concatenate([counts, lengths[:, None]], axis=1))).numpy()

    clr3 = counts_to_clr(counts[:, :32], Layout((3,)))
    np.testing.assert_allclose(x[:, :32], clr3, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x[:, 32:42], np.log(np_freq(counts[:, 32:42]) + 0.05), rtol=1e-5, atol=1e-6)
    gc = counts[:, -1] / counts[:, -2:].sum(axis=1)
    gc = np.clip(gc, 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(x[:, 42], np.log(gc / (1 - gc)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x[:, 43], np.log(lengths), rtol=1e-6)

    xt = torch.from_numpy(x)
    f3 = np_freq(counts[:, :32])
    recovered = spec.frequencies(xt, "3mer").numpy()
    keep = np.arange(9) != 2  # an all-zero group comes back uniform, as documented
    np.testing.assert_allclose(recovered[keep], f3[keep], atol=2e-6)
    np.testing.assert_allclose(spec.frequencies(xt, "2mer").numpy(), np_freq(counts[:, 32:42]), atol=2e-6)
    np.testing.assert_allclose(spec.frequencies(xt, "gc").numpy()[:, 0], gc, atol=1e-6)

    raw = InputSpec(family(input={"ks": [2, 1], "transform": "freq", "extra": ["gc"], "gc_transform": "raw"}))
    xr = raw(torch.from_numpy(random_counts(5, Layout((2, 1)), seed=4))).numpy()
    c = random_counts(5, Layout((2, 1)), seed=4)
    np.testing.assert_allclose(xr[:, :12], frequencies(c, Layout((2, 1))), rtol=1e-6)
    np.testing.assert_allclose(xr[:, 12], c[:, 11] / c[:, 10:].sum(axis=1), rtol=1e-6)


# -- architectures and heads ---------------------------------------------------------------


def test_branched_model_shapes_branch_isolation_and_gc_is_the_branch_mean():
    torch.manual_seed(0)
    model = build_model(tiny_branched()).eval()
    read = Layout((4, 3, 2, 1))
    block = np.concatenate([random_counts(6, read, seed=1), np.full((6, 1), 3000.0, np.float32)], axis=1)
    x = model.transform(torch.from_numpy(block))
    assert x.shape == (6, 136 + 32 + 10 + 2)
    with torch.no_grad():
        out, mean, log_var = model(x)
        assert {n: tuple(v.shape) for n, v in out.items()} == {
            "4mer": (6, 136),
            "3mer": (6, 32),
            "2mer": (6, 10),
            "gc": (6, 1),
        }
        assert mean.shape == log_var.shape == (6, 3)
        # GC is the mean of the three branches' GC columns
        h = model.decoder.shared(mean)
        per_branch = [
            model.decoder.gc_heads[n](model.decoder.branches[n](h)) for n in ("4mer", "3mer", "2mer")
        ]
        torch.testing.assert_close(out["gc"], sum(per_branch) / 3)
        # the 3-mer branch sees the 3-mers, GC and length only
        x2 = x.clone()
        x2[:, :136] += 1.0  # change the 4-mers
        branch = model.encoder.branches["3mer"]
        a = branch(torch.cat([x[:, 136:168], x[:, 178:]], 1))
        b = branch(torch.cat([x2[:, 136:168], x2[:, 178:]], 1))
        torch.testing.assert_close(a, b)
        assert not torch.equal(model.encoder(x), model.encoder(x2))
        x3 = x.clone()
        x3[:, -1] += 1.0  # the length reaches every branch
        for name, sl in (("4mer", slice(0, 136)), ("2mer", slice(168, 178))):
            br = model.encoder.branches[name]
            assert not torch.equal(
                br(torch.cat([x[:, sl], x[:, 178:]], 1)), br(torch.cat([x3[:, sl], x3[:, 178:]], 1))
            )


@pytest.mark.parametrize(
    "head, params",
    [
        ("linear", lambda d, w: d * w + w),
        ("gated", lambda d, w: 2 * (d * w + w)),
        ("embedding", lambda d, w: d * 64 + 64 + w * 64 + w),
        ("lowrank", lambda d, w: d * 128 + 128 * w + w),
    ],
)
def test_heads_have_the_expected_size_and_output(head, params):
    from kmervae.vae.heads import make_head

    torch.manual_seed(0)
    config = family(
        input={"ks": [4, 3]},
        model={"heads": {"4mer": head}},
        loss={"groups": {"4mer": "gated"}} if head == "gated" else {},
    )
    spec = config["model"]["heads"]["4mer"]
    module = make_head(spec, 96, 8192)
    assert sum(p.numel() for p in module.parameters()) == params(96, 8192)
    h = torch.randn(5, 96)
    out = module(h)
    if head == "gated":
        gate, value = out
        assert gate.shape == value.shape == (5, 8192) and bool((value > 0).all())
        torch.testing.assert_close(value, torch.nn.functional.softplus(module.value(h)))
    else:
        assert out.shape == (5, 8192)
    if head == "embedding":
        torch.testing.assert_close(out, module.query(h) @ module.kmer_embedding.T + module.bias)
    # a 7-mer head through a 128-wide bottleneck: ~1.07 M weights instead of 512 x 8,192 = 4.2 M
    if head == "lowrank":
        assert params(512, 8192) < 512 * 8192 / 3


# -- losses --------------------------------------------------------------------------------


def _loss_model(groups, weighting="per_feature", weights=None, scale=1.0, heads=None, transforms=None):
    loss = {"groups": groups, "weighting": weighting, "scale": scale}
    if weights:
        loss["weights"] = weights
    return build_model(
        family(
            input={"ks": [3, 2], "extra": ["gc"], "group_transforms": transforms or {}},
            model={"hidden": [8], "latent": 2, "outputs": ["gc"], "heads": heads or {}},
            loss=loss,
        )
    )


def test_each_loss_kind_and_weighting_match_numpy():
    torch.manual_seed(0)
    read = Layout((3, 2, 1))
    counts = random_counts(7, read, seed=5)
    counts[0, :32] = 0
    counts[0, 5] = 40  # a sparse row
    rng = np.random.default_rng(6)
    for weighting, weights, scale in (
        ("per_feature", None, 1.0),
        ("equal", None, 2.5),
        ("explicit", {"3mer": 0.5, "2mer": 2.0, "gc": 3.0}, 1.0),
    ):
        model = _loss_model(
            {
                "3mer": {"kind": "bce", "clip": 1e-6},
                "2mer": {"kind": "log_mse", "offset": 0.02},
                "gc": "logit_mse",
            },
            weighting,
            weights,
            scale,
            transforms={"2mer": "freq"},
        )
        x = model.transform(torch.from_numpy(counts))
        outputs = {
            "3mer": torch.tensor(rng.normal(size=(7, 32)), dtype=torch.float32),
            "2mer": torch.tensor(rng.normal(size=(7, 10)) - 2, dtype=torch.float32),
            "gc": torch.tensor(rng.normal(size=(7, 1)), dtype=torch.float32),
        }
        mean = torch.tensor(rng.normal(size=(7, 2)), dtype=torch.float32)
        log_var = torch.tensor(rng.normal(size=(7, 2)), dtype=torch.float32)
        out = model.loss_of(x, outputs, mean, log_var, beta=0.1)
        loss, recon, kl = out.loss, out.reconstruction, out.kl

        f3, f2 = np_freq(counts[:, :32]), np_freq(counts[:, 32:42])
        t3 = np.clip(f3, 1e-6, 1 - 1e-6)
        p3 = 1 / (1 + np.exp(-outputs["3mer"].numpy().astype(np.float64)))
        bce = -(t3 * np.log(p3) + (1 - t3) * np.log(1 - p3)).mean(axis=1)
        logmse = ((outputs["2mer"].numpy() - np.log(f2 + 0.02)) ** 2).mean(axis=1)
        gc = np.clip(counts[:, -1] / counts[:, -2:].sum(axis=1), 1e-6, 1 - 1e-6)
        logit = (outputs["gc"].numpy()[:, 0] - np.log(gc / (1 - gc))) ** 2
        w = {"per_feature": (32, 10, 1), "equal": (1, 1, 1), "explicit": (0.5, 2.0, 3.0)}[weighting]
        oracle = scale * (w[0] * bce + w[1] * logmse + w[2] * logit)
        np.testing.assert_allclose(recon.detach().numpy(), oracle, rtol=2e-5, atol=1e-6)
        m, lv = mean.numpy(), log_var.numpy()
        kl_oracle = 0.5 * (np.exp(lv) + m**2 - 1 - lv).sum(axis=1)
        np.testing.assert_allclose(kl.numpy(), kl_oracle, rtol=1e-5)
        np.testing.assert_allclose(loss.item(), (oracle + 0.1 * kl_oracle).mean(), rtol=2e-5)

    # plain MSE on the input space with per-feature weights is the default VAE's loss:
    # the squared error summed over all input columns, whether in one output or per group
    mse = _loss_model({})
    x = mse.transform(torch.from_numpy(counts))
    outs = {"3mer": x[:, :32] + 0.3, "2mer": x[:, 32:42] * 0.5, "gc": x[:, 42:] - 1}
    a = mse.loss_of(x, outs, mean, log_var, 0.05)
    whole = torch.cat([outs["3mer"], outs["2mer"], outs["gc"]], 1)
    sq = (whole - x).pow(2).sum(1)
    kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(1)
    torch.testing.assert_close(a.reconstruction, sq)
    torch.testing.assert_close(a.loss, (sq + 0.05 * kl).mean())


def test_gated_loss_and_gate_diagnostics_match_numpy():
    torch.manual_seed(0)
    model = _loss_model(
        {"3mer": {"kind": "gated", "threshold": 0.02}}, heads={"3mer": "gated"}, transforms={"3mer": "freq"}
    )
    read = Layout((3, 2, 1))
    rng = np.random.default_rng(7)
    counts = random_counts(6, read, seed=8)
    counts[:, :32] *= rng.random((6, 32)) < 0.4  # sparse 3-mers
    counts[1, :32] = 0
    counts[1, 3] = 5  # one present k-mer
    x = model.transform(torch.from_numpy(counts))
    gate = torch.tensor(rng.normal(size=(6, 32)), dtype=torch.float32)
    value = torch.nn.functional.softplus(torch.tensor(rng.normal(size=(6, 32)) - 3, dtype=torch.float32))
    outs = {"3mer": (gate, value), "2mer": x[:, 32:42].clone(), "gc": x[:, 42:].clone()}
    zeros = torch.zeros(6, 2)
    recon = model.loss_of(x, outs, zeros, zeros, 0.0).reconstruction

    f = np_freq(counts[:, :32])
    present = f > 0.02
    g = gate.numpy().astype(np.float64)
    p = 1 / (1 + np.exp(-g))
    bce = -(present * np.log(p) + (~present) * np.log(1 - p)).mean(axis=1)
    v = value.numpy().astype(np.float64)
    masked = np.array(
        [((v[i] - f[i])[present[i]] ** 2).mean() if present[i].any() else 0.0 for i in range(6)]
    )
    np.testing.assert_allclose(recon.numpy(), 32 * (bce + masked), rtol=2e-5)

    metrics = model.finish_metrics(model.reconstruction.metric_sums(x, outs))
    pred = p * v
    assert metrics["gate_acc_3mer"] == pytest.approx(((g > 0) == present).mean())
    assert metrics["gate_base_3mer"] == pytest.approx((~present).mean())
    assert metrics["present_3mer"] == pytest.approx(present.sum(axis=1).mean())
    assert metrics["mse_present_3mer"] == pytest.approx(((pred - f) ** 2)[present].mean(), rel=1e-5)
    assert metrics["mse_absent_3mer"] == pytest.approx(((pred - f) ** 2)[~present].mean(), rel=1e-5)
    assert metrics["mse_3mer"] == pytest.approx(((pred - f) ** 2).mean(), rel=1e-5)
    t, q = np.clip(f, 1e-7, 1 - 1e-7), np.clip(pred, 1e-7, 1 - 1e-7)
    assert metrics["bce_3mer"] == pytest.approx((-(t * np.log(q) + (1 - t) * np.log(1 - q))).mean(), rel=1e-4)
    assert metrics["mse_2mer"] == pytest.approx(0.0, abs=1e-12)  # outputs equal to the input space


def test_outputs_outside_the_input_space_start_at_a_uniform_composition():
    torch.manual_seed(0)
    model = _loss_model({"3mer": "bce", "2mer": {"kind": "log_mse", "offset": 0.02}, "gc": "logit_mse"})
    heads = model.decoder.heads
    torch.testing.assert_close(heads["3mer"].bias, torch.full((32,), math.log((1 / 32) / (1 - 1 / 32))))
    torch.testing.assert_close(heads["2mer"].bias, torch.full((10,), math.log(0.1 + 0.02)))
    torch.testing.assert_close(heads["gc"].bias, torch.zeros(1))  # logit(0.5)
    gated = _loss_model({"3mer": "gated"}, heads={"3mer": "gated"})
    value_bias = gated.decoder.heads["3mer"].value.bias
    torch.testing.assert_close(torch.nn.functional.softplus(value_bias), torch.full((32,), 1 / 32))
    plain = _loss_model({})  # MSE on the centred input space: zero biases, as the flat VAE
    assert not plain.decoder.heads["3mer"].bias.any()


# -- embedding and config errors -------------------------------------------------------------


def test_embed_reads_the_groups_gc_and_lengths_and_refuses_what_is_missing():
    torch.manual_seed(0)
    model = build_model(tiny_branched())
    wide = Layout.parse("5..1")
    counts = random_counts(11, wide, seed=9).astype(np.uint32)
    lengths = np.arange(11) * 1000 + 500
    z = model.embed(counts, wide, lengths=lengths, batch_size=4)
    block = np.concatenate([counts[:, wide.columns_for((4, 3, 2, 1))], lengths[:, None]], axis=1).astype(
        np.float32
    )
    with torch.no_grad():
        oracle = model.eval().encode(model.transform(torch.from_numpy(block)))[0].numpy()
    np.testing.assert_allclose(z, oracle, rtol=1e-5, atol=1e-6)
    assert not np.allclose(z, model.embed(counts, wide, lengths=lengths * 10))  # length is an input
    with pytest.raises(KmervaeError, match="reads contig lengths"):
        model.embed(counts, wide)
    with pytest.raises(KmervaeError, match="reads 1-mers but the data holds only 4-mers"):
        model.embed(counts[:, wide.columns_for((4, 3, 2))], Layout((4, 3, 2)), lengths=lengths)


def test_family_config_errors_are_one_line_and_name_the_key():
    base = {"input": {"ks": [4, 3], "extra": ["gc"]}}
    cases = [
        ({"model": {"heads": {"4mer": "gated"}}}, "gated head needs the gated loss"),
        ({"loss": {"groups": {"4mer": "gated"}}}, "gated head needs the gated loss"),
        ({"model": {"architecture": "branched", "branches": {"4mer": [8]}}}, "one branch per input group"),
        ({"model": {"branches": {"4mer": [8], "3mer": [4]}}}, "only for model.architecture: branched"),
        ({"model": {"heads": {"7mer": "linear"}}}, "names '7mer', which is not"),
        ({"model": {"outputs": ["log_length"]}}, "model.outputs must be a list"),
        ({"loss": {"groups": {"4mer": {"kind": "log_mse", "ofset": 1}}}}, "has no parameter 'ofset'"),
        ({"loss": {"groups": {"4mer": "hinge"}}}, r"must be one of \['mse'"),
        ({"loss": {"weighting": "explicit", "weights": {"4mer": 1}}}, "needs loss.weights for every output"),
        ({"loss": {"weights": {"4mer": 1}}}, "only used with loss.weighting: explicit"),
        ({"input": {"ks": [4, 3], "extra": [], "group_transforms": {"4mer": "sqrt"}}}, "must be one of"),
        ({"input": {"ks": [4, 3], "extra": []}, "model": {"outputs": ["gc"]}}, "add gc to input.extra"),
        ({"training": {"float16_inputs": "yes"}}, "float16_inputs must be true or false"),
    ]
    for layer, message in cases:
        merged = {s: {**base.get(s, {}), **layer.get(s, {})} for s in set(base) | set(layer)}
        with pytest.raises(KmervaeError, match=message) as err:
            cfg.resolve(merged)
        assert "\n" not in str(err.value)


def test_default_config_is_unchanged_and_defaults_written_out_hash_alike():
    default = cfg.resolve()
    # the family adds no key to the default config, so its hash and saved models stay as they were
    assert default == cfg.DEFAULTS
    assert type(build_model(default)) is VAE and build_model(default).outputs == ["kmers"]
    spelled = cfg.resolve(
        {"loss": {"weighting": "per_feature", "scale": 1.0}, "model": {"heads": {}, "outputs": []}}
    )
    assert spelled == default and cfg.config_hash(spelled) == cfg.config_hash(default)
    assert type(build_model(tiny_branched())) is VAE
    gated = cfg.resolve(
        {"input": {"ks": [3]}, "model": {"heads": {"3mer": "gated"}}, "loss": {"groups": {"3mer": "gated"}}}
    )
    assert gated["loss"]["groups"] == {"3mer": {"kind": "gated", "threshold": 2e-4}}  # shorthand expanded
    assert gated["model"]["heads"] == {"3mer": {"kind": "gated"}}


# -- training --------------------------------------------------------------------------------


def _train_config(**sections):
    base = {
        "training": {"batch_size": 32, "epochs": 2, "lr": 0.003, "eval_batch_size": 50, "seed": 1},
        "loss": {"warmup_epochs": 1},
    }
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return cfg.resolve(base)


def test_branched_gated_model_trains_and_logs_the_diagnostics(tmp_path):
    from test_train import make_dataset, read_history

    from kmervae.data import DatasetBatches
    from kmervae.vae.files import load_model
    from kmervae.io.store import KmerStore
    from kmervae.train import train

    path = tmp_path / "d.zarr"
    counts, split = make_dataset(path, n=200)
    config = _train_config(
        input={"ks": [3, 2], "extra": ["gc", "log_length"], "group_transforms": {"3mer": "freq"}},
        model={
            "architecture": "branched",
            "hidden": [8],
            "latent": 3,
            "branches": {"3mer": [16, 8], "2mer": [8]},
            "heads": {"3mer": "gated"},
        },
        loss={"groups": {"3mer": {"kind": "gated", "threshold": 0.03}}},
        training={"eval_train_rows": 40, "float16_inputs": True},
    )
    train(config, path, tmp_path / "m", device="cpu", threads=1)
    history = read_history(tmp_path / "m/history.tsv")
    assert len(history) == 2
    row = history[-1]
    for key in (
        "mse_3mer",
        "bce_3mer",
        "mse_2mer",
        "bce_gc",
        "gate_acc_3mer",
        "mse_present_3mer",
        "train_eval_loss",
    ):
        assert math.isfinite(row[key]), key
    # dataset facts the diagnostics must reproduce, computed from the stored counts
    f3 = np_freq(counts[split == 1, :32].astype(np.float64))
    present = f3 > 0.03
    assert row["gate_base_3mer"] == pytest.approx((~present).mean(), rel=1e-6)
    assert row["present_3mer"] == pytest.approx(present.sum(axis=1).mean(), rel=1e-6)

    # the eval-mode training loss is the final model's loss on the first 40 training rows
    model = load_model(tmp_path / "m", weights="final")
    store = KmerStore(path)
    first = np.nonzero(split == 0)[0][:40]
    block = np.concatenate(
        [counts[first].astype(np.float32), store.lengths()[first, None].astype(np.float32)], axis=1
    )
    with torch.no_grad():
        x = model.transform(torch.from_numpy(block)).half().float()  # the float16 in-memory copy
        out, mean, log_var = model(x)
        loss = model.loss_of(x, out, mean, log_var, beta=config["loss"]["beta"]).loss
    assert row["train_eval_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert row["train_eval_loss"] != row["train_loss"]

    # the float16 copy holds the transformed rows; validation stays raw float32
    data = DatasetBatches(
        path,
        model.input_ks,
        32,
        1,
        10**9,
        64,
        lengths=True,
        transform=model.transform,
        transformed_width=model.input_width,
    )
    assert (
        data.train_transformed
        and data._train.dtype == torch.float16
        and data._train.shape == (int((split == 0).sum()), 44)
    )
    torch.testing.assert_close(data._train[:40].float(), x)
    assert next(data.validation_batches()).dtype == torch.float32
    # streamed, the fixed subset is the same rows (with their lengths), untransformed
    streamed = DatasetBatches(path, model.input_ks, 32, 1, 0, 64, eval_batch_size=16, lengths=True)
    assert not streamed.in_memory and not streamed.train_transformed
    np.testing.assert_array_equal(torch.cat(list(streamed.train_subset_batches(40))).numpy(), block)

    # embedding reads the lengths from the store
    z = model.embed(counts, Layout((3, 2, 1)), lengths=store.lengths())
    assert z.shape == (200, 3) and np.isfinite(z).all()


def test_vae65_style_losses_train_without_length_or_nan(tmp_path):
    from test_train import make_dataset, read_history

    from kmervae.train import train

    path = tmp_path / "d.zarr"
    make_dataset(path, n=120)
    config = _train_config(
        input={"ks": [3, 2], "transform": "freq", "group_transforms": {"2mer": "log"}, "extra": ["gc"]},
        model={"hidden": [16, 8], "latent": 3, "outputs": ["gc"]},
        loss={
            "groups": {"3mer": "bce", "2mer": "log_mse", "gc": "logit_mse"},
            "weighting": "equal",
            "scale": 100.0,
            "beta": 0.1,
        },
    )
    train(config, path, tmp_path / "m", device="cpu", threads=1)
    row = read_history(tmp_path / "m/history.tsv")[-1]
    assert all(math.isfinite(row[k]) for k in ("val_loss", "bce_3mer", "mse_2mer", "mse_gc"))

"""Regression of the model code against records made before it was reorganised.

* The default config trained for four epochs on a fixed dataset reproduces the recorded
  history, weight statistics and embeddings (tests/data/model_reference_default.npz, from
  tests/make_model_reference.py). The tolerances allow for what differs between CPUs and
  thread counts (float summation order in BLAS, which Adam amplifies in weights with
  near-zero gradients) and are far below what a changed computation moves: a different
  initialisation, loss, batch order or β shifts the epoch-1 loss by percent.
* The default config hash is the one every embedding store and index made so far carries.
* Weight files written by the earlier code (tests/data/old_models, from
  tests/make_old_models.py) still load and embed the same, and every shipped config loads
  a weight file with the earlier state-dict keys and shapes.
"""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import TEST_DATA
from model_reference import HISTORY_KEYS, make_reference_dataset, run
from safetensors.torch import save_file

from kmervae.vae import config as cfg
from kmervae.kmers import Layout
from kmervae.vae.files import build_model, load_model, upgrade_state

OLD = TEST_DATA / "old_models"


def test_default_model_trains_to_the_recorded_reference(tmp_path):
    ref = np.load(TEST_DATA / "model_reference_default.npz")
    make_reference_dataset(tmp_path / "data.zarr")
    got = run("default", tmp_path / "data.zarr", tmp_path / "model")
    assert got["config_hash"] == str(ref["config_hash"])
    assert list(ref["history_keys"]) == list(HISTORY_KEYS)
    history = np.array([[row[k] for k in HISTORY_KEYS] for row in got["history"]])
    np.testing.assert_allclose(history, ref["history"], rtol=1e-4)
    # the recorded names are those of the earlier layout: map them as loading a weight file does
    recorded = {
        name: torch.tensor([mean, abs_mean], dtype=torch.float64)
        for name, mean, abs_mean in zip(ref["weight_names"], ref["weight_mean"], ref["weight_abs_mean"])
    }
    recorded = upgrade_state(recorded, build_model(cfg.resolve()))
    names = sorted(got["weights"])
    assert names == sorted(recorded)
    w = [got["weights"][k].astype(np.float64) for k in names]
    expected = np.array([recorded[k].numpy() for k in names])
    # Adam moves every element by up to lr (1e-4 here) per step whatever its gradient's size:
    # where a gradient is rounding noise (z_mean.bias: means near 1e-5, |w| near 8e-4) its
    # sign, and so the element, differs between CPUs (AMD vs Intel: 8e-6 in mean |w|). The
    # absolute tolerance of mean |w| is a fifth of one step; the history above pins the computation.
    step = 0.2 * cfg.resolve()["training"]["lr"]
    np.testing.assert_allclose([a.mean() for a in w], expected[:, 0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose([np.abs(a).mean() for a in w], expected[:, 1], rtol=1e-3, atol=step)
    np.testing.assert_allclose(got["z"][: len(ref["z_head"])], ref["z_head"], rtol=1e-3, atol=2e-3)


def test_the_default_config_hash_is_the_one_outputs_carry():
    assert cfg.config_hash(cfg.resolve()) == "5031f3b694da6be4"


@pytest.mark.parametrize("name", ["flat", "hybrid", "branched"])
def test_weight_files_written_by_the_earlier_code_load_and_embed_the_same(name):
    expected = np.load(OLD / name / "expected.npz")
    model = load_model(OLD / name)
    z = model.embed(expected["counts"], Layout.parse("4..1"), lengths=expected["lengths"])
    np.testing.assert_allclose(z, expected["z"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(json.loads((OLD / "shipped_keys.json").read_text())))
def test_every_shipped_config_loads_weights_with_the_earlier_keys(name, tmp_path):
    from conftest import REPO

    keys = json.loads((OLD / "shipped_keys.json").read_text())[name]
    config = cfg.load(REPO / "config" / "models" / f"{name}.yaml")
    state = {k: torch.full(shape, 0.25) for k, shape in keys.items()}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    save_file(state, str(tmp_path / "best.safetensors"))
    model = load_model(tmp_path)
    assert all(bool((p == 0.25).all()) for p in model.parameters())


def test_per_group_linear_heads_of_the_earlier_layout_load_as_the_one_output_layer():
    # the earlier code gave a flat model with, e.g., a log input transform one linear head per
    # group (decoder.heads.<group>); the same model now reconstructs its input with one layer
    model = build_model(
        cfg.resolve({"input": {"ks": [3, 2, 1], "transform": "log"}, "model": {"hidden": [8]}})
    )
    state = model.state_dict()
    weight, bias = state.pop("decoder.heads.kmers.weight"), state.pop("decoder.heads.kmers.bias")
    for g in model.inputs.layout.groups:
        state[f"decoder.heads.{g.name}.weight"] = weight[g.start : g.stop]
        state[f"decoder.heads.{g.name}.bias"] = bias[g.start : g.stop]
    upgraded = upgrade_state(state, model)
    assert sorted(upgraded) == sorted(model.state_dict())
    assert torch.equal(upgraded["decoder.heads.kmers.weight"], weight)
    assert torch.equal(upgraded["decoder.heads.kmers.bias"], bias)

"""Write tests/data/old_models/: tiny model directories and the state-dict keys of every shipped config.

    PYTHONPATH=src python tests/make_old_models.py

Run once, with the code of the commit that added the files, so that
``tests/test_model_reference.py`` can check that weight files written before the model
code was reorganised still load and embed the same. Each directory holds ``config.yaml``,
``best.safetensors`` (freshly initialised, seed 3) and ``expected.npz`` (a fixed count
matrix and its embedding); ``shipped_keys.json`` maps every config of config/models/ to
its state-dict keys and shapes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_reference import REPO  # noqa: E402

from kmervae.vae import config as cfg  # noqa: E402
from kmervae.kmers import Layout  # noqa: E402
from kmervae.vae.files import build_model, save_weights  # noqa: E402

OUT = REPO / "tests" / "data" / "old_models"
LAYOUT = Layout.parse("4..1")
TINY = {
    "flat": {"input": {"ks": [3, 2, 1]}, "model": {"hidden": [16, 8], "latent": 4}},
    "hybrid": {
        "input": {"ks": [4, 3], "transform": "freq", "group_transforms": {"3mer": "log"}, "extra": ["gc"]},
        "model": {"hidden": [12, 8], "latent": 3, "outputs": ["gc"]},
        "loss": {
            "groups": {"4mer": "bce", "3mer": "log_mse", "gc": "logit_mse"},
            "weighting": "equal",
            "scale": 10.0,
        },
    },
    "branched": {
        "input": {"ks": [4, 3, 2], "extra": ["gc", "log_length"]},
        "model": {
            "architecture": "branched",
            "hidden": [12],
            "latent": 3,
            "branches": {"4mer": [16, 8], "3mer": [8, 4], "2mer": [4]},
            "heads": {
                "4mer": "gated",
                "3mer": {"kind": "lowrank", "rank": 2},
                "2mer": {"kind": "embedding", "dim": 3},
            },
        },
        "loss": {"groups": {"4mer": "gated"}},
    },
}


def main() -> None:
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 30, size=(6, LAYOUT.width)).astype(np.uint32)
    lengths = rng.integers(1000, 9000, 6)
    for name, layers in TINY.items():
        config = cfg.resolve(layers)
        torch.manual_seed(3)
        model = build_model(config)
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.yaml").write_text(cfg.dump(config))
        save_weights(model, d / "best.safetensors", config)
        z = model.embed(counts, LAYOUT, lengths=lengths)
        np.savez(d / "expected.npz", counts=counts, lengths=lengths, z=z)
    keys = {}
    for path in sorted((REPO / "config" / "models").glob("*.yaml")):
        model = build_model(cfg.load(path))
        keys[path.stem] = {k: list(v.shape) for k, v in model.state_dict().items()}
    (OUT / "shipped_keys.json").write_text(json.dumps(keys, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

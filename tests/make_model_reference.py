"""Write the recorded reference of the default model's training (tests/data/model_reference_default.npz).

    PYTHONPATH=src python tests/make_model_reference.py [--full DIR] [CONFIG ...]

Trains each named shipped config (default: ``default``) on the fixed dataset of
:mod:`model_reference`. The compact record (history, per-tensor weight statistics, the
embeddings of the first rows, the config hash) goes to tests/data for
``tests/test_model_reference.py``; with ``--full DIR`` the full weights and embeddings of
every config are written there too, for bit-for-bit comparisons on one machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_reference import HISTORY_KEYS, REPO, make_reference_dataset, run  # noqa: E402

RECORD = REPO / "tests" / "data" / "model_reference_default.npz"
Z_ROWS = 16


def compact(result: dict) -> dict:
    names = sorted(result["weights"])
    w = [result["weights"][k].astype(np.float64) for k in names]
    return {
        "config_hash": np.array(result["config_hash"]),
        "history_keys": np.array(HISTORY_KEYS),
        "history": np.array([[row[k] for k in HISTORY_KEYS] for row in result["history"]]),
        "weight_names": np.array(names),
        "weight_mean": np.array([a.mean() for a in w]),
        "weight_abs_mean": np.array([np.abs(a).mean() for a in w]),
        "z_head": result["z"][:Z_ROWS],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", type=Path, help="also write full weights and embeddings here")
    parser.add_argument("configs", nargs="*", default=["default"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.zarr"
        make_reference_dataset(data)
        for name in args.configs:
            result = run(name, data, Path(tmp) / name)
            if name == "default":
                np.savez_compressed(RECORD, **compact(result))
            if args.full:
                args.full.mkdir(parents=True, exist_ok=True)
                hist = np.array([[row[k] for k in sorted(row)] for row in result["history"]])
                np.savez(
                    args.full / f"{name}.npz",
                    config_hash=np.array(result["config_hash"]),
                    history_keys=np.array(sorted(result["history"][0])),
                    history=hist,
                    z=result["z"],
                    **{f"w/{k}": v for k, v in result["weights"].items()},
                )
                (args.full / f"{name}.final.safetensors").write_bytes(
                    (Path(tmp) / name / "final.safetensors").read_bytes()
                )
            print(name, result["config_hash"], [round(r["val_loss"], 6) for r in result["history"]])


if __name__ == "__main__":
    main()

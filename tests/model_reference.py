"""A fixed small training run of each shipped model config, for the model regression test.

:func:`make_reference_dataset` writes a deterministic 7..1-mer dataset (Dirichlet-multinomial
counts of a few 'genomes', so there is structure to learn); :func:`run` trains one shipped
config on it for a few epochs (single thread, CPU) and returns what the regression test
compares: the history, the final weights and the embeddings of every row.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kmervae.vae import config as cfg
from kmervae.kmers import Layout
from kmervae.io.store import KmerStore

REPO = Path(__file__).resolve().parents[1]
LAYOUT = Layout.parse("7..1")
ROWS = 240
#: small, fast settings layered over every shipped config (4 epochs, warm-up over after 2)
OVERRIDES = [
    "training.epochs=4",
    "loss.warmup_epochs=2",
    "training.batch_size=64",
    "training.eval_batch_size=50",
    "training.seed=7",
]
HISTORY_KEYS = ("train_loss", "train_kl", "train_mse", "val_loss", "kl", "mse")


def make_reference_dataset(path: Path, n: int = ROWS, seed: int = 0) -> None:
    """The recorded reference's dataset: 7..1-mer counts of 4 'genomes', 400 per k group."""
    from test_train import make_dataset

    make_dataset(path, n, LAYOUT, chunk_rows=64, seed=seed, splits=(0.75, 0.25, 0.0), sources=4, total=400)


def reference_config(name: str) -> dict:
    return cfg.load(REPO / "config" / "models" / f"{name}.yaml", OVERRIDES)


def read_history(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, (float(v) for v in line.split("\t")))) for line in lines[1:]]


def run(name: str, data: Path, out: Path) -> dict:
    """Train config ``name`` on ``data`` into ``out``: history, final weights and embeddings."""
    from safetensors.torch import load_file

    from kmervae.vae.files import load_model
    from kmervae.train import train

    torch.set_num_threads(1)
    config = reference_config(name)
    train(config, data, out, device="cpu", threads=1)
    history = read_history(out / "history.tsv")
    weights = {k: v.numpy() for k, v in load_file(str(out / "final.safetensors")).items()}
    model = load_model(out, weights="final")
    store = KmerStore(data)
    z = model.embed(store.rows(0, store.n), store.layout, lengths=store.lengths(0, store.n))
    return {"config_hash": cfg.config_hash(config), "history": history, "weights": weights, "z": z}

"""Models on disk: build a VAE from a config, save its weights, load a trained model directory.

A model directory holds ``config.yaml`` and ``best.safetensors`` / ``final.safetensors``
(plain tensors; metadata: the config and its hash, and the training split's lengths, see
:mod:`kmervae.lengths`). Weight files are written byte for byte
the same for the same tensors and config, and a model is identified downstream by its
config hash and by :func:`weights_hash`, the hash of its weight file (embeddings and
indexes carry both). Weight files written before the model code was reorganised (other
state-dict key names) load through :func:`upgrade_state`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path

import torch
from torch import nn

from ..errors import KmervaeError
from .config import canonical, config_hash, read_yaml, resolve
from .losses import WHOLE_INPUT
from .model import VAE


def build_model(config: dict) -> VAE:
    """A freshly initialised model (initialised from torch's global RNG: seed it first)."""
    return VAE(config)


def upgrade_state(state: dict, model: VAE) -> dict:
    """Weights with the key names of an earlier layout → this model's names.

    The flat VAE without the model family's keys kept its blocks in ``encoder.N`` /
    ``decoder.N`` with the output layer last; a flat family model with per-group linear
    heads (``decoder.heads.<group>``) whose decoder now reconstructs the whole input gets
    them concatenated into one layer.
    """
    if any(re.match(r"encoder\.\d+\.", k) for k in state):
        last = max(int(k.split(".")[1]) for k in state if k.startswith("decoder."))
        renamed = {}
        for key, value in state.items():
            part, *rest = key.split(".")
            if part in ("encoder", "decoder") and rest[0].isdigit():
                place = (
                    f"heads.{WHOLE_INPUT}"
                    if part == "decoder" and int(rest[0]) == last
                    else f"layers.{rest[0]}"
                )
                key = ".".join([part, place, *rest[1:]])
            renamed[key] = value
        state = renamed
    head = f"decoder.heads.{WHOLE_INPUT}"
    if f"{head}.weight" not in state and f"{head}.weight" in model.state_dict():
        groups = [g.name for g in model.inputs.layout.groups]
        if all(f"decoder.heads.{g}.weight" in state for g in groups):
            for p in ("weight", "bias"):
                state[f"{head}.{p}"] = torch.cat([state.pop(f"decoder.heads.{g}.{p}") for g in groups])
    return state


def _first_mismatch(state: dict, model: nn.Module) -> str | None:
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            return f"{key} is missing"
        if tuple(state[key].shape) != tuple(value.shape):
            return f"{key} has shape {list(state[key].shape)} but the model's is {list(value.shape)}"
    extra = sorted(set(state) - set(expected))
    return f"{extra[0]} is not a weight of the model" if extra else None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, with one error line for an empty or unreadable file."""
    from safetensors.torch import load_file

    if path.stat().st_size == 0:
        raise KmervaeError(f"{path}: the weight file is empty")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError (or OSError) for bad files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KmervaeError(f"{path}: not a safetensors weight file ({first})") from None


def read_training_lengths(path: Path) -> dict | None:
    """The training split's length summary recorded in a weight file (None when it has none)."""
    from safetensors import safe_open

    from ..lengths import METADATA_KEY, from_metadata

    with safe_open(str(path), "pt") as fh:
        text = (fh.metadata() or {}).get(METADATA_KEY)
    return from_metadata(text, str(path)) if text is not None else None


def weights_hash(path: str | os.PathLike) -> str:
    """A short hash of a weight file's bytes: identifies one trained model."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_model(model_dir: str | os.PathLike, weights: str = "best") -> VAE:
    """The trained model of ``model_dir`` (``best`` or ``final`` weights), in eval mode on CPU."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.yaml"
    weights_path = model_dir / f"{weights}.safetensors"
    for path in (config_path, weights_path):
        if not path.exists():
            raise KmervaeError(f"{path}: missing; is {model_dir} a trained kmervae model directory?")
    config = resolve((str(config_path), read_yaml(config_path)))
    model = build_model(config)
    state = upgrade_state(read_weights(weights_path), model)
    problem = _first_mismatch(state, model)
    if problem:
        raise KmervaeError(f"{weights_path}: weights do not fit {config_path} ({problem})")
    model.load_state_dict(state)
    model.model_dir = str(model_dir)
    model.weights_hash = weights_hash(weights_path)
    model.training_lengths = read_training_lengths(weights_path)
    return model.eval()


def safetensors_bytes(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose header is in a fixed order (metadata sorted, tensors by offset).

    safetensors writes its metadata map in an order that varies between processes; equal
    tensors and metadata should give equal files.
    """
    from safetensors.torch import save

    raw = save(state, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    ordered = {"__metadata__": dict(sorted(meta.items()))}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[0])))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def save_weights(model: nn.Module, path: str | os.PathLike, config: dict) -> None:
    """Write plain tensors as safetensors (atomically), with the config and its hash as metadata.

    A model with ``training_lengths`` (set by training) records them too
    (:mod:`kmervae.lengths`).
    """
    from ..io.atomic import atomic_path
    from ..lengths import METADATA_KEY, to_metadata

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"config_hash": config_hash(config), "config": json.dumps(canonical(config), sort_keys=True)}
    if getattr(model, "training_lengths", None):
        metadata[METADATA_KEY] = to_metadata(model.training_lengths)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(safetensors_bytes(state, metadata))


__all__ = [
    "VAE",
    "build_model",
    "load_model",
    "read_weights",
    "save_weights",
    "upgrade_state",
    "weights_hash",
]

"""Model configuration: the paper's model as defaults, YAML files and ``--set`` overrides on top.

A config is a nested dict with four sections (``input``, ``model``, ``loss``,
``training``). :func:`resolve` deep-merges user values onto :data:`DEFAULTS` and
validates every leaf against :data:`RULES`, so a typo or an impossible value is one
error line naming the key instead of a silently ignored setting. The resolved config is
stored with every model and its :func:`config_hash` identifies the model downstream.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import yaml

from . import family_config as family
from .errors import KmervaeError
from .kmers import MAX_K

#: The paper's final model (DESIGN.md, "The model"). Every key can be overridden.
DEFAULTS: dict = {
    "input": {
        "ks": [6, 5, 4, 3, 2, 1],  # k groups the model reads, in this order
        "transform": "clr",  # per-group input transform (kmervae.model.INPUT_TRANSFORMS)
        "extra": [],  # extra per-contig inputs: gc, log_length (kmervae.transforms)
    },
    "model": {
        "architecture": "flat",
        "hidden": [1024, 512],
        "latent": 384,
        "dropout": 0.0,
        "leaky_slope": 0.2,
        "batchnorm": True,
        "logvar_clip": [-20.0, 2.0],
    },
    "loss": {
        "reconstruction": "mse",  # mean squared error x input width (a per-row sum)
        "beta": 0.05,
        "warmup_epochs": 5,
    },
    "training": {
        "optimizer": "adam",
        "lr": 1.0e-4,
        "adam_eps": 1.0e-7,  # Keras' default, as in the author's runs
        "batch_size": 1024,
        "epochs": 500,
        "schedule": "plateau",
        "plateau": {"factor": 0.5, "patience": 20, "min_lr": 1.0e-6},
        "cosine": {"warmup_epochs": 5, "min_lr": 1.0e-6},
        "seed": 42,
        "precision": "fp32",
        "in_memory_budget_bytes": 4_000_000_000,
        "shuffle_buffer_rows": 65536,
        "eval_batch_size": 8192,
        "train_split": "train",
        "validation_split": "validation",
    },
}

ARCHITECTURES = family.ARCHITECTURES
TRANSFORMS = family.GROUP_TRANSFORMS
EXTRA_INPUTS: tuple[str, ...] = family.EXTRA_INPUTS
SCHEDULES = ("plateau", "cosine", "constant")
PRECISIONS = ("fp32", "bf16")


def _int(lo=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            return f"must be an integer{'' if lo is None else f' >= {lo}'}"

    return check


def _float(lo=None, hi=None, lo_open=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            return "must be a number"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {'>' if lo_open else '>='} {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"

    return check


def _choice(options):
    def check(v):
        if v not in options:
            return f"must be one of {list(options)}"

    return check


def _bool(v):
    if not isinstance(v, bool):
        return "must be true or false"


def _ks(v):
    if not isinstance(v, list) or not v or any(isinstance(k, bool) or not isinstance(k, int) for k in v):
        return "must be a non-empty list of integers"
    if len(set(v)) != len(v) or not all(1 <= k <= MAX_K for k in v):
        return f"must hold distinct k between 1 and {MAX_K}"


def _widths(v):
    if not isinstance(v, list) or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in v):
        return "must be a list of positive integers"


def _extra(v):
    if not isinstance(v, list) or any(x not in EXTRA_INPUTS for x in v) or len(set(v)) != len(v):
        return f"must be a list of distinct {list(EXTRA_INPUTS)}"


def _clip(v):
    if not (
        isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] < v[1]
    ):
        return "must be [low, high] with low < high"


def _split_name(v):
    if not isinstance(v, str) or not v:
        return "must be a split name such as 'train' or 'validation'"


#: dotted key -> check(value) returning None or the problem
RULES = {
    "input.ks": _ks,
    "input.transform": _choice(TRANSFORMS),
    "input.extra": _extra,
    "model.architecture": _choice(ARCHITECTURES),
    "model.hidden": _widths,
    "model.latent": _int(1),
    "model.dropout": _float(0.0, 0.99),
    "model.leaky_slope": _float(0.0, 1.0),
    "model.batchnorm": _bool,
    "model.logvar_clip": _clip,
    "loss.reconstruction": _choice(("mse",)),
    "loss.beta": _float(0.0),
    "loss.warmup_epochs": _int(0),
    "training.optimizer": _choice(("adam",)),
    "training.lr": _float(0.0, lo_open=True),
    "training.adam_eps": _float(0.0, lo_open=True),
    "training.batch_size": _int(2),
    "training.epochs": _int(1),
    "training.schedule": _choice(SCHEDULES),
    "training.plateau.factor": _float(0.0, 1.0, lo_open=True),
    "training.plateau.patience": _int(0),
    "training.plateau.min_lr": _float(0.0),
    "training.cosine.warmup_epochs": _int(0),
    "training.cosine.min_lr": _float(0.0),
    "training.seed": _int(0),
    "training.precision": _choice(PRECISIONS),
    "training.in_memory_budget_bytes": _int(0),
    "training.shuffle_buffer_rows": _int(1),
    "training.eval_batch_size": _int(1),
    "training.train_split": _split_name,
    "training.validation_split": _split_name,
}


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in RULES):
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _merge(base: dict, override: dict, source: str, prefix: str = "") -> None:
    """Merge ``override`` into ``base`` in place, checking every key and value it sets."""
    if not isinstance(override, dict):
        raise KmervaeError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping of keys")
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if dotted in family.OPTIONAL_DEFAULTS:  # optional family keys: set whole, never merged into
            problem = family.RULES[dotted](value)
            if problem:
                raise KmervaeError(f"{source}: {dotted} {problem}, got {value!r}")
            base[key] = copy.deepcopy(value)
            continue
        if not isinstance(key, str) or key not in base:
            known = ", ".join(sorted(base)) if isinstance(base, dict) else ""
            raise KmervaeError(f"{source}: unknown key {dotted!r} (known here: {known})")
        if isinstance(base[key], dict):
            _merge(base[key], value, source, dotted + ".")
            continue
        problem = RULES[dotted](value) if dotted in RULES else None
        if problem:
            raise KmervaeError(f"{source}: {dotted} {problem}, got {value!r}")
        base[key] = value


def resolve(*layers: dict | tuple[str, dict]) -> dict:
    """Defaults, then each layer (a dict or ``(source_name, dict)``) merged on top, validated."""
    config = copy.deepcopy(DEFAULTS)
    for layer in layers:
        source, values = layer if isinstance(layer, tuple) else ("config", layer)
        _merge(config, values or {}, source)
    family.normalize(config)
    validate(config)
    return config


def validate(config: dict, source: str = "config") -> None:
    """Raise KmervaeError naming the first key whose value is impossible."""
    leaves = _leaves(config)
    for key, check in RULES.items():
        if key not in leaves:
            raise KmervaeError(f"{source}: missing key {key!r}")
        problem = check(leaves[key])
        if problem:
            raise KmervaeError(f"{source}: {key} {problem}, got {leaves[key]!r}")
    for key in sorted(set(leaves) & set(family.RULES)):
        problem = family.RULES[key](leaves[key])
        if problem:
            raise KmervaeError(f"{source}: {key} {problem}, got {leaves[key]!r}")
    unknown = sorted(set(leaves) - set(RULES) - set(family.RULES))
    if unknown:
        raise KmervaeError(f"{source}: unknown key {unknown[0]!r}")
    family.check(config, source)
    if config["training"]["batch_size"] < 2 and config["model"]["batchnorm"]:
        raise KmervaeError(f"{source}: training.batch_size must be >= 2 with batch normalisation")


def parse_override(text: str) -> dict:
    """``"training.epochs=3"`` → ``{"training": {"epochs": 3}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise KmervaeError(f"--set {text!r}: expected KEY=VALUE, e.g. training.epochs=3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KmervaeError(f"--set {text!r}: cannot read the value as YAML ({exc.problem})") from None
    tree: dict = value
    for part in reversed(key.strip().split(".")):
        tree = {part: tree}
    return tree


def load(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> dict:
    """Resolve a YAML config file (or the defaults when ``path`` is None) plus ``--set`` overrides."""
    layers: list = []
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise KmervaeError(f"{path}: no such config file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise KmervaeError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
        layers.append((str(path), values or {}))
    layers += [(f"--set {o}", parse_override(o)) for o in overrides]
    return resolve(*layers)


def config_hash(config: dict) -> str:
    """A short stable hash of the resolved config (key order and YAML formatting do not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)

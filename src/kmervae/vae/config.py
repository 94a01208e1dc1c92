"""The model configuration: one table of keys that validates, documents and hashes.

A config is a nested dict with four sections (``input``, ``model``, ``loss``,
``training``); every leaf is a :class:`Key` of :data:`KEYS` — its dotted name, default,
check and one line of documentation. :func:`resolve` deep-merges user layers (YAML
files, ``--set`` overrides) onto the defaults, checks every value it sets and the rules
between keys, so a typo or an impossible value is one error line naming the key. A
resolved config holds every key, so every key is read the same way
(``config["loss"]["weighting"]``).

:func:`canonical` is the form saved with a model (``config.yaml``, checkpoints) and
hashed by :func:`config_hash`: keys marked ``omit_default`` (added after the first models
were saved) are left out while at their default, so models saved before they existed keep
their hash, and a config spelling out a default hashes like one that does not.
Torch-free: the workflow reads it at start-up.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import KmervaeError
from ..kmers import MAX_K, Layout

EXTRA_INPUTS = ("gc", "log_length")
EXTRA_OUTPUTS = ("gc",)
GROUP_TRANSFORMS = ("clr", "freq", "log")
GC_TRANSFORMS = ("logit", "raw")
ARCHITECTURES = ("flat", "branched")
WEIGHTINGS = ("per_feature", "equal", "explicit")
SCHEDULES = ("plateau", "cosine", "constant")
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("adam", "adamw")
CONSISTENCY_KINDS = ("infonce", "cosine", "mse")

#: head kind -> its parameters and their defaults
HEADS = {"linear": {}, "gated": {}, "embedding": {"dim": 64}, "lowrank": {"rank": 128}}
#: loss kind -> its parameters and their defaults
LOSSES = {
    "mse": {},  # squared error against the model's input columns of the output
    "bce": {"clip": 1e-7},  # BCE of sigmoid(output) against frequencies clipped to [clip, 1 - clip]
    "log_mse": {"offset": 0.01},  # squared error against log(frequency + offset)
    "logit_mse": {"clip": 1e-6},  # squared error against logit(clip(frequency)) (GC)
    "gated": {"threshold": 2e-4},  # BCE on presence (frequency > threshold) + MSE on present entries
}


# -- checks: value -> None or the problem -------------------------------------------------


def _is_number(v, positive=False) -> bool:
    return (
        not isinstance(v, bool)
        and isinstance(v, (int, float))
        and not math.isnan(v)
        and (v > 0 or not positive)
    )


def _int(lo=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            return f"must be an integer{'' if lo is None else f' >= {lo}'}"

    return check


def _float(lo=None, hi=None, lo_open=False):
    def check(v):
        if not _is_number(v):
            return "must be a number"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {'>' if lo_open else '>='} {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"

    return check


def _choice(options):
    return lambda v: None if v in options else f"must be one of {list(options)}"


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


def _distinct(options, note=""):
    def check(v):
        if not isinstance(v, list) or any(x not in options for x in v) or len(set(v)) != len(v):
            return f"must be a list of distinct {list(options)}{note}"

    return check


def _clip(v):
    if not (isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and v[0] < v[1]):
        return "must be [low, high] with low < high"


def _split_name(v):
    if not isinstance(v, str) or not v:
        return "must be a split name such as 'train' or 'validation'"


def _name_map(value_check, what):
    def check(v):
        if not isinstance(v, dict) or any(not isinstance(k, str) for k in v):
            return f"must map output names (e.g. '7mer', 'gc') to {what}"
        for name, value in v.items():
            problem = value_check(value)
            if problem:
                return f"[{name!r}] {problem}"

    return check


def _spec(table: dict, what: str):
    def check(value):
        kind = value.get("kind") if isinstance(value, dict) else value
        if kind not in table:
            return f"must be one of {list(table)} (or a mapping with 'kind')"
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"kind"} - set(table[kind]))
            if unknown:
                return f"{what} {kind!r} has no parameter {unknown[0]!r} (it takes {list(table[kind]) or 'none'})"
            for key, number in value.items():
                if key != "kind" and not _is_number(number, positive=True):
                    return f"{key} must be a positive number"

    return check


def _full_spec(value, table: dict) -> dict:
    kind = value["kind"] if isinstance(value, dict) else value
    return {"kind": kind, **table[kind], **(value if isinstance(value, dict) else {})}


def _branch(w):
    if (
        not isinstance(w, list)
        or not w
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in w)
    ):
        return "must be a non-empty list of positive integers"


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One config key: dotted name, default, check (value -> None or the problem), documentation.

    ``omit_default``: left out of the saved and hashed config while at its default.
    ``normalize``: turns a checked value into its saved form (e.g. expands shorthand specs).
    """

    name: str
    default: object
    check: Callable
    doc: str
    omit_default: bool = False
    normalize: Callable | None = None


def _specs_of(table):
    return lambda v: {n: _full_spec(s, table) for n, s in v.items()}


KEYS: tuple[Key, ...] = (
    Key("input.ks", [6, 5, 4, 3, 2, 1], _ks, "k-mer groups the model reads, in this column order"),
    Key("input.transform", "clr", _choice(GROUP_TRANSFORMS), "per-group input transform: clr, freq or log"),
    Key("input.extra", [], _distinct(EXTRA_INPUTS), "extra per-contig inputs: gc, log_length"),
    Key(
        "input.group_transforms",
        {},
        _name_map(_choice(GROUP_TRANSFORMS), "transforms"),
        "per-group input transforms overriding input.transform",
        omit_default=True,
    ),
    Key(
        "input.log_offset", 0.01, _float(0.0, lo_open=True), "offset of the log transform", omit_default=True
    ),
    Key(
        "input.gc_transform",
        "logit",
        _choice(GC_TRANSFORMS),
        "GC input: logit or raw fraction",
        omit_default=True,
    ),
    Key(
        "model.architecture",
        "flat",
        _choice(ARCHITECTURES),
        "flat (one MLP) or branched (one branch per group)",
    ),
    Key(
        "model.hidden",
        [1024, 512],
        _widths,
        "encoder hidden widths (branched: shared layers); the decoder mirrors them",
    ),
    Key("model.latent", 384, _int(1), "size of z (the embedding)"),
    Key("model.dropout", 0.0, _float(0.0, 0.99), "dropout after each hidden block of encoder and decoder"),
    Key(
        "model.input_dropout",
        0.0,
        _float(0.0, 0.99),
        "training only: dropout of input columns before the encoder (denoising; the target stays clean)",
        omit_default=True,
    ),
    Key("model.leaky_slope", 0.2, _float(0.0, 1.0), "LeakyReLU negative slope"),
    Key("model.batchnorm", True, _bool, "Linear -> BatchNorm -> LeakyReLU blocks"),
    Key("model.logvar_clip", [-20.0, 2.0], _clip, "z_log_var is clipped to this range"),
    Key(
        "model.branches",
        {},
        _name_map(_branch, "lists of layer widths"),
        "branched: hidden widths of each group's branch",
        omit_default=True,
    ),
    Key(
        "model.heads",
        {},
        _name_map(_spec(HEADS, "head"), "heads"),
        "output head per k group: linear, gated, embedding or lowrank",
        omit_default=True,
        normalize=_specs_of(HEADS),
    ),
    Key(
        "model.outputs",
        [],
        _distinct(EXTRA_OUTPUTS, " (length is an input only)"),
        "extra outputs reconstructed besides the k groups: gc",
        omit_default=True,
    ),
    Key(
        "loss.reconstruction",
        "mse",
        _choice(tuple(k for k in LOSSES if k != "gated")),
        "reconstruction loss of every output not named in loss.groups",
    ),
    Key(
        "loss.groups",
        {},
        _name_map(_spec(LOSSES, "loss"), "losses"),
        "loss per output, overriding loss.reconstruction",
        omit_default=True,
        normalize=_specs_of(LOSSES),
    ),
    Key(
        "loss.weighting",
        "per_feature",
        _choice(WEIGHTINGS),
        "output weights: per_feature, equal or explicit",
        omit_default=True,
    ),
    Key(
        "loss.weights",
        {},
        _name_map(lambda w: None if _is_number(w) and w >= 0 else "must be a number >= 0", "weights"),
        "weight per output with loss.weighting: explicit",
        omit_default=True,
    ),
    Key(
        "loss.scale",
        1.0,
        _float(0.0, lo_open=True),
        "constant factor of the reconstruction term",
        omit_default=True,
    ),
    Key("loss.beta", 0.05, _float(0.0), "final weight of the KL term"),
    Key("loss.warmup_epochs", 5, _int(0), "beta rises linearly from 0 over these epochs"),
    Key(
        "loss.warmup_steps",
        0,
        _int(0),
        "beta rises linearly from 0 over these optimizer steps instead (needs loss.warmup_epochs 0)",
        omit_default=True,
    ),
    Key(
        "loss.beta_cycle_epochs",
        0,
        _int(0),
        "cyclical β after the warm-up: β rises from 0 over the first half of each cycle of these epochs",
        omit_default=True,
    ),
    Key(
        "loss.consistency",
        0.0,
        _float(0.0),
        "weight of the fragment-consistency term between two thinned views of each row (0 = off)",
        omit_default=True,
    ),
    Key(
        "loss.consistency_kind",
        "infonce",
        _choice(CONSISTENCY_KINDS),
        "consistency of the views' z_mean: infonce (over the batch), cosine or mse",
        omit_default=True,
    ),
    Key(
        "loss.consistency_keep",
        0.5,
        _float(0.0, 1.0, lo_open=True),
        "binomial thinning: each k-mer occurrence of a view is kept with this probability",
        omit_default=True,
    ),
    Key(
        "loss.consistency_temperature",
        0.1,
        _float(0.0, lo_open=True),
        "temperature of the infonce consistency (cosine similarity / temperature)",
        omit_default=True,
    ),
    Key("training.optimizer", "adam", _choice(OPTIMIZERS), "adam or adamw (decoupled weight decay)"),
    Key("training.lr", 1.0e-4, _float(0.0, lo_open=True), "initial (peak, for cosine) learning rate"),
    Key("training.adam_eps", 1.0e-7, _float(0.0, lo_open=True), "Adam epsilon"),
    Key(
        "training.weight_decay",
        0.0,
        _float(0.0),
        "weight decay (adam: L2 in the gradient; adamw: decoupled)",
        omit_default=True,
    ),
    Key("training.batch_size", 1024, _int(2), "global batch (split over ranks under torchrun)"),
    Key("training.epochs", 500, _int(1), "total epochs; may be raised when resuming"),
    Key("training.schedule", "plateau", _choice(SCHEDULES), "plateau, cosine or constant learning rate"),
    Key(
        "training.plateau.factor",
        0.5,
        _float(0.0, 1.0, lo_open=True),
        "LR multiplier when validation loss stalls",
    ),
    Key("training.plateau.patience", 20, _int(0), "epochs without improvement before reducing"),
    Key("training.plateau.min_lr", 1.0e-6, _float(0.0), "lower bound of the LR"),
    Key("training.cosine.warmup_epochs", 5, _int(0), "linear LR warm-up epochs before the cosine decay"),
    Key("training.cosine.min_lr", 1.0e-6, _float(0.0), "LR at the last epoch"),
    Key("training.seed", 42, _int(0), "seeds the initial weights, batch order, dropout and sampling noise"),
    Key("training.precision", "fp32", _choice(PRECISIONS), "fp32 or bf16 (autocast; validation is fp32)"),
    Key(
        "training.in_memory_budget_bytes", 4_000_000_000, _int(0), "load the splits into memory when they fit"
    ),
    Key("training.shuffle_buffer_rows", 65536, _int(1), "streaming: rows shuffled together"),
    Key("training.eval_batch_size", 8192, _int(1), "validation batch size"),
    Key("training.train_split", "train", _split_name, "dataset split to train on"),
    Key("training.validation_split", "validation", _split_name, "dataset split for validation"),
    Key(
        "training.float16_inputs",
        False,
        _bool,
        "hold the transformed training rows as float16",
        omit_default=True,
    ),
    Key(
        "training.eval_train_rows",
        0,
        _int(0),
        "also report the eval-mode loss of this many training rows",
        omit_default=True,
    ),
)
TABLE: dict[str, Key] = {key.name: key for key in KEYS}


def _nested(pairs) -> dict:
    tree: dict = {}
    for dotted, value in pairs:
        *sections, leaf = dotted.split(".")
        node = tree
        for s in sections:
            node = node.setdefault(s, {})
        node[leaf] = copy.deepcopy(value)
    return tree


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted not in TABLE and isinstance(value, dict):
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


#: the resolved default config (the paper's final model): every key at its default
DEFAULTS: dict = _nested((key.name, key.default) for key in KEYS)
_SECTIONS = {k.name.rsplit(".", 1)[0] for k in KEYS} | {k.name.split(".")[0] for k in KEYS}


# -- resolving ------------------------------------------------------------------------------


def _set(config: dict, override, source: str, prefix: str = "") -> None:
    """Merge ``override`` into ``config`` in place, checking every key and value it sets."""
    if not isinstance(override, dict):
        raise KmervaeError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping of keys")
    for name, value in override.items():
        dotted = f"{prefix}{name}"
        if dotted in _SECTIONS:
            _set(config[name], value, source, dotted + ".")
            continue
        if dotted not in TABLE:
            raise KmervaeError(f"{source}: unknown key {dotted!r} (known here: {', '.join(sorted(config))})")
        key = TABLE[dotted]
        problem = key.check(value)
        if problem:
            raise KmervaeError(f"{source}: {dotted} {problem}, got {value!r}")
        config[name] = key.normalize(value) if key.normalize else copy.deepcopy(value)


def resolve(*layers: dict | tuple[str, dict]) -> dict:
    """Defaults, then each layer (a dict or ``(source_name, dict)``) merged on top, validated."""
    config = copy.deepcopy(DEFAULTS)
    for layer in layers:
        source, values = layer if isinstance(layer, tuple) else ("config", layer)
        _set(config, values or {}, source)
    validate(config)
    return config


def validate(config: dict, source: str = "config") -> None:
    """Raise KmervaeError naming the first key whose value is missing, unknown or impossible."""
    leaves = _leaves(config)
    for key in KEYS:
        if key.name not in leaves:
            raise KmervaeError(f"{source}: missing key {key.name!r}")
        problem = key.check(leaves[key.name])
        if problem:
            raise KmervaeError(f"{source}: {key.name} {problem}, got {leaves[key.name]!r}")
    unknown = sorted(set(leaves) - set(TABLE))
    if unknown:
        raise KmervaeError(f"{source}: unknown key {unknown[0]!r}")
    check_combination(config, source)


def canonical(config: dict) -> dict:
    """The saved and hashed form: ``omit_default`` keys left out while at their default."""
    out = copy.deepcopy(config)
    for key in KEYS:
        if key.omit_default:
            *sections, name = key.name.split(".")
            node = out
            for part in sections:
                node = node.get(part, {})
            if name in node and node[name] == key.default:
                del node[name]
    return out


def config_hash(config: dict) -> str:
    """A short stable hash of the canonical config (key order and YAML formatting do not matter)."""
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dump(config: dict) -> str:
    return yaml.safe_dump(canonical(config), sort_keys=False, default_flow_style=None)


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


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping file, with one error line for a missing or malformed file."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise KmervaeError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise KmervaeError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return values or {}


def load(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> dict:
    """Resolve a YAML config file (or the defaults when ``path`` is None) plus ``--set`` overrides."""
    layers: list = [] if path is None else [(str(path), read_yaml(path))]
    layers += [(f"--set {o}", parse_override(o)) for o in overrides]
    return resolve(*layers)


# -- what the keys mean together -------------------------------------------------------------


def read_ks(config: dict) -> tuple[int, ...]:
    """The k-mer groups a model reads from a store: its input groups, plus the 1-mers for GC."""
    ks = tuple(int(k) for k in config["input"]["ks"])
    return ks + ((1,) if "gc" in config["input"]["extra"] and 1 not in ks else ())


def require_groups(
    needed: tuple[int, ...],
    held: Layout,
    where: str = "",
    reader: str = "the model",
    holder: str = "the data",
) -> None:
    """The one error for data (a store, a dataset, the workflow's counts) lacking a k-mer group a model reads."""
    missing = ", ".join(f"{k}-mers" for k in needed if k not in held.ks)
    if missing:
        raise KmervaeError(
            f"{where + ': ' if where else ''}{reader} reads {missing} but {holder} holds only {held.describe()}: "
            f"missing {missing}; count the contigs with the model's k-mer groups ({Layout(tuple(needed)).describe()})"
        )


def output_names(config: dict) -> list[str]:
    """What the decoder reconstructs, in order: the k groups, then extra outputs (gc)."""
    names = [f"{k}mer" for k in config["input"]["ks"]]
    extra = list(config["model"]["outputs"])
    if config["model"]["architecture"] == "branched" and "gc" not in extra:
        extra.append("gc")  # every branch predicts GC; the model's GC is their mean
    return names + extra


def loss_spec(config: dict, name: str) -> dict:
    """The loss of output ``name``: ``loss.groups`` if named there, else ``loss.reconstruction``."""
    return _full_spec(config["loss"]["groups"].get(name, config["loss"]["reconstruction"]), LOSSES)


def head_spec(config: dict, name: str) -> dict:
    """The head of output ``name`` (GC: always linear)."""
    return _full_spec(config["model"]["heads"].get(name, "linear"), HEADS)


def check_combination(config: dict, source: str = "config") -> None:
    """The rules between keys (each key's own value was checked by its :class:`Key`)."""
    groups = [f"{k}mer" for k in config["input"]["ks"]]
    outputs = output_names(config)
    model, loss = config["model"], config["loss"]

    def fail(message):
        raise KmervaeError(f"{source}: {message}")

    def known(key, names, allowed, what):
        for name in names:
            if name not in allowed:
                fail(f"{key} names {name!r}, which is not {what} of this model ({', '.join(allowed)})")

    if loss["warmup_steps"] and loss["warmup_epochs"]:
        fail(
            f"loss.warmup_steps {loss['warmup_steps']} and loss.warmup_epochs {loss['warmup_epochs']} "
            "are both set: set loss.warmup_epochs: 0 to count the warm-up in steps"
        )
    known("input.group_transforms", config["input"]["group_transforms"], groups, "an input k group")
    known("model.heads", model["heads"], groups, "a k group output")
    known("loss.groups", loss["groups"], outputs, "an output")
    known("loss.weights", loss["weights"], outputs, "an output")
    if "gc" in outputs and "gc" not in config["input"]["extra"]:
        fail("GC is an output (model.outputs, or any branched model) but not an input: add gc to input.extra")
    if model["architecture"] == "branched":
        if sorted(model["branches"]) != sorted(groups):
            fail(
                f"model.branches must give the layer widths of one branch per input group {groups}, got {sorted(model['branches'])}"
            )
    elif model["branches"]:
        fail("model.branches is only for model.architecture: branched")
    for name in outputs:
        head = head_spec(config, name) if name in groups else {"kind": "linear"}
        spec = loss_spec(config, name)
        if (head["kind"] == "gated") != (spec["kind"] == "gated"):
            fail(
                f"{name}: a gated head needs the gated loss and the gated loss a gated head (head {head['kind']}, loss {spec['kind']})"
            )
    if loss["weighting"] == "explicit" and sorted(loss["weights"]) != sorted(outputs):
        fail(
            f"loss.weighting explicit needs loss.weights for every output {outputs}, got {sorted(loss['weights'])}"
        )
    if loss["weighting"] != "explicit" and loss["weights"]:
        fail("loss.weights is only used with loss.weighting: explicit")
    if loss["consistency"] > 0 and config["training"]["float16_inputs"]:
        fail(
            "loss.consistency thins the stored counts of each batch: it cannot train on "
            "training.float16_inputs (transformed rows); set one of them off"
        )
    if config["training"]["batch_size"] < 2 and model["batchnorm"]:
        fail("training.batch_size must be >= 2 with batch normalisation")

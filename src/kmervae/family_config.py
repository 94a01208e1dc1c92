"""Config keys of the model family (issue 6): per-group transforms, extra inputs and outputs,
branches, output heads and per-group losses.

Every key here is *optional*: absent means the default flat VAE's behaviour, so the
resolved default config (and its hash) is the same as before the family existed, and
model directories written before it still load. :func:`normalize` expands shorthand
specs (``gated`` → ``{kind: gated, threshold: 0.0002}``) so the saved config shows every
number the model used, and drops keys equal to their defaults so equal models hash alike.
Torch-free: :mod:`kmervae.config` imports it.
"""

from __future__ import annotations

import copy
import math

from .errors import KmervaeError

EXTRA_INPUTS = ("gc", "log_length")
EXTRA_OUTPUTS = ("gc",)
GROUP_TRANSFORMS = ("clr", "freq", "log")
GC_TRANSFORMS = ("logit", "raw")
ARCHITECTURES = ("flat", "branched")
WEIGHTINGS = ("per_feature", "equal", "explicit")

#: head kind -> its parameters and their defaults
HEADS = {"linear": {}, "gated": {}, "embedding": {"dim": 64}, "lowrank": {"rank": 128}}
#: loss kind -> its parameters and their defaults
LOSSES = {
    "mse": {},  # squared error against the model's input columns of the group
    "bce": {"clip": 1e-7},  # BCE of sigmoid(output) against frequencies clipped to [clip, 1 - clip]
    "log_mse": {"offset": 0.01},  # squared error against log(frequency + offset)
    "logit_mse": {"clip": 1e-6},  # squared error against logit(clip(frequency)) (GC)
    "gated": {"threshold": 2e-4},  # BCE on presence (frequency > threshold) + MSE on present entries
}

#: optional dotted key -> default (absent key = this value)
OPTIONAL_DEFAULTS: dict = {
    "input.group_transforms": {},
    "input.log_offset": 0.01,
    "input.gc_transform": "logit",
    "model.branches": {},
    "model.heads": {},
    "model.outputs": [],
    "loss.groups": {},
    "loss.weighting": "per_feature",
    "loss.weights": {},
    "loss.scale": 1.0,
    "training.float16_inputs": False,
    "training.eval_train_rows": 0,
}
#: keys that change the model itself (the others only change how it is trained)
MODEL_KEYS = tuple(k for k in OPTIONAL_DEFAULTS if not k.startswith("training."))


def setting(config: dict, dotted: str):
    """The value of an optional key (its default when absent)."""
    section, key = dotted.split(".")
    return config[section].get(key, copy.deepcopy(OPTIONAL_DEFAULTS[dotted]))


def read_ks(config: dict) -> tuple[int, ...]:
    """The k-mer groups a model reads from a store: its input groups, plus the 1-mers for GC."""
    ks = tuple(int(k) for k in config["input"]["ks"])
    return ks + ((1,) if "gc" in config["input"]["extra"] and 1 not in ks else ())


def is_family(config: dict) -> bool:
    """True when the config needs the family model rather than the default flat KmerVAE."""
    return (
        config["model"]["architecture"] != "flat"
        or bool(config["input"]["extra"])
        or config["input"]["transform"] not in ("clr", "freq")  # the flat KmerVAE's transforms
        or any(k.split(".")[1] in config[k.split(".")[0]] for k in MODEL_KEYS)
    )


# -- per-key checks (None or the problem, as kmervae.config.RULES) ------------------------


def _number(v, positive=True):
    return (
        not isinstance(v, bool)
        and isinstance(v, (int, float))
        and not math.isnan(v)
        and (v > 0 or not positive)
    )


def _name_map(v, value_check, what):
    if not isinstance(v, dict) or any(not isinstance(k, str) for k in v):
        return f"must map output names (e.g. '7mer', 'gc') to {what}"
    for name, value in v.items():
        problem = value_check(value)
        if problem:
            return f"[{name!r}] {problem}"


def _spec_check(table: dict, what: str):
    def check(value):
        kind = value.get("kind") if isinstance(value, dict) else value
        if kind not in table:
            return f"must be one of {list(table)} (or a mapping with 'kind')"
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"kind"} - set(table[kind]))
            if unknown:
                return f"{what} {kind!r} has no parameter {unknown[0]!r} (it takes {list(table[kind]) or 'none'})"
            for key, number in value.items():
                if key != "kind" and not _number(number):
                    return f"{key} must be a positive number"

    return check


def _transform_check(v):
    if v not in GROUP_TRANSFORMS:
        return f"must be one of {list(GROUP_TRANSFORMS)}"


def _branches_check(v):
    def widths(w):
        if (
            not isinstance(w, list)
            or not w
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in w)
        ):
            return "must be a non-empty list of positive integers"

    return _name_map(v, widths, "lists of layer widths")


def _outputs_check(v):
    if not isinstance(v, list) or any(x not in EXTRA_OUTPUTS for x in v) or len(set(v)) != len(v):
        return f"must be a list of distinct {list(EXTRA_OUTPUTS)} (length is an input only)"


def _positive(v):
    if not _number(v):
        return "must be a positive number"


def _weights_check(v):
    return _name_map(
        v, lambda w: None if _number(w, positive=False) and w >= 0 else "must be a number >= 0", "weights"
    )


def _choice(options):
    return lambda v: None if v in options else f"must be one of {list(options)}"


def _bool(v):
    if not isinstance(v, bool):
        return "must be true or false"


def _count(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        return "must be an integer >= 0"


RULES = {
    "input.group_transforms": lambda v: _name_map(v, _transform_check, "transforms"),
    "input.log_offset": _positive,
    "input.gc_transform": _choice(GC_TRANSFORMS),
    "model.branches": _branches_check,
    "model.heads": lambda v: _name_map(v, _spec_check(HEADS, "head"), "heads"),
    "model.outputs": _outputs_check,
    "loss.groups": lambda v: _name_map(v, _spec_check(LOSSES, "loss"), "losses"),
    "loss.weighting": _choice(WEIGHTINGS),
    "loss.weights": _weights_check,
    "loss.scale": _positive,
    "training.float16_inputs": _bool,
    "training.eval_train_rows": _count,
}


# -- normalisation and cross-key checks -------------------------------------------------


def _full_spec(value, table: dict) -> dict:
    kind = value["kind"] if isinstance(value, dict) else value
    return {"kind": kind, **table[kind], **(value if isinstance(value, dict) else {})}


def normalize(config: dict) -> dict:
    """Expand shorthand specs and drop optional keys equal to their defaults (in place)."""
    for name in ("model.heads", "loss.groups"):
        section, key = name.split(".")
        if key in config[section]:
            table = HEADS if key == "heads" else LOSSES
            config[section][key] = {n: _full_spec(v, table) for n, v in config[section][key].items()}
    for dotted, default in OPTIONAL_DEFAULTS.items():
        section, key = dotted.split(".")
        if key in config[section] and config[section][key] == default:
            del config[section][key]
    return config


def output_names(config: dict) -> list[str]:
    """What the decoder reconstructs, in order: the k groups, then extra outputs (gc)."""
    names = [f"{k}mer" for k in config["input"]["ks"]]
    extra = list(setting(config, "model.outputs"))
    if config["model"]["architecture"] == "branched" and "gc" not in extra:
        extra.append("gc")  # every branch predicts GC; the model's GC is their mean
    return names + extra


def loss_spec(config: dict, name: str) -> dict:
    """The loss of output ``name``: configured, else MSE on the model's input space."""
    return _full_spec(setting(config, "loss.groups").get(name, "mse"), LOSSES)


def head_spec(config: dict, name: str) -> dict:
    return _full_spec(setting(config, "model.heads").get(name, "linear"), HEADS)


def check(config: dict, source: str = "config") -> None:
    """Cross-key rules of the family (the single keys were checked by RULES)."""
    ks = list(config["input"]["ks"])
    groups = [f"{k}mer" for k in ks]
    extra = list(config["input"]["extra"])
    outputs = output_names(config)
    arch = config["model"]["architecture"]

    def fail(message):
        raise KmervaeError(f"{source}: {message}")

    def known(key, names, allowed, what):
        for name in names:
            if name not in allowed:
                fail(f"{key} names {name!r}, which is not {what} of this model ({', '.join(allowed)})")

    known("input.group_transforms", setting(config, "input.group_transforms"), groups, "an input k group")
    known("model.heads", setting(config, "model.heads"), groups, "a k group output")
    known("loss.groups", setting(config, "loss.groups"), outputs, "an output")
    known("loss.weights", setting(config, "loss.weights"), outputs, "an output")
    if "gc" in outputs and "gc" not in extra:
        fail("GC is an output (model.outputs, or any branched model) but not an input: add gc to input.extra")
    branches = setting(config, "model.branches")
    if arch == "branched":
        if sorted(branches) != sorted(groups):
            fail(
                f"model.branches must give the layer widths of one branch per input group {groups}, got {sorted(branches)}"
            )
    elif branches:
        fail("model.branches is only for model.architecture: branched")
    for name in outputs:
        head, loss = (
            (head_spec(config, name) if name in groups else {"kind": "linear"}),
            loss_spec(config, name),
        )
        if (head["kind"] == "gated") != (loss["kind"] == "gated"):
            fail(
                f"{name}: a gated head needs the gated loss and the gated loss a gated head (head {head['kind']}, loss {loss['kind']})"
            )
    weighting, weights = setting(config, "loss.weighting"), setting(config, "loss.weights")
    if weighting == "explicit" and sorted(weights) != sorted(outputs):
        fail(f"loss.weighting explicit needs loss.weights for every output {outputs}, got {sorted(weights)}")
    if weighting != "explicit" and weights:
        fail("loss.weights is only used with loss.weighting: explicit")

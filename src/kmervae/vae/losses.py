"""The loss contract (:class:`LossOutput`), the KL term and the per-output reconstruction losses.

Each output (the whole input ``kmers`` of the default model, a k group, or ``gc``) has a
loss kind (``loss.groups``, else ``loss.reconstruction``); its per-row value is a sum
over the output's columns:

* ``mse`` — squared error against the model's input columns of that output (the default).
* ``bce`` — binary cross-entropy of sigmoid(output) against the frequencies clipped to
  [clip, 1 - clip].
* ``log_mse`` — squared error against log(frequency + offset).
* ``logit_mse`` — squared error against logit(frequency clipped to [clip, 1 - clip]) (GC).
* ``gated`` — for a gated head: BCE of the gate against presence (frequency > threshold)
  plus the squared error of the softplus value on the row's present entries (their mean,
  times the width).

Targets other than ``mse`` are frequencies recovered from the input
(:meth:`kmervae.vae.inputs.InputSpec.frequencies`). The reconstruction term of a row is
``scale × Σ_outputs (weight / width) × loss`` with weight = the output's width
(``per_feature``: every column counts once — the default VAE's MSE × input width), 1
(``equal``: the sum of per-column means) or ``loss.weights`` (``explicit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import loss_spec
from .heads import gated_prediction
from .inputs import InputSpec, gc_inverse, group_frequencies

#: clip of predicted and true frequencies in the BCE diagnostic
BCE_EPS = 1e-7
#: the output of a decoder that reconstructs the whole input with one layer
WHOLE_INPUT = "kmers"


@dataclass
class LossOutput:
    """What a model's ``loss`` gives the trainer.

    ``loss``: the batch-mean objective (reconstruction + β·KL, plus the weighted consistency
    term of two thinned views when ``loss.consistency`` > 0 and the batch's counts were
    given); ``reconstruction`` and ``kl``: per row (float32), so sums over many batches are
    exact; ``metrics``: per diagnostic ``[numerator, denominator]`` (float64) to sum over
    batches, asked for in evaluation only (finished by the model's ``finish_metrics``).
    """

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def kl_rows(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) ‖ N(0, I)) per row."""
    mean, log_var = mean.float(), log_var.float()
    return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=1)


def consistency_rows(a: torch.Tensor, b: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """Per-row disagreement of two views' ``z_mean`` (rows i of ``a`` and ``b`` are one contig).

    ``infonce``: symmetric cross-entropy of finding row i of the other view among the batch
    by cosine similarity / ``temperature`` (pulls views together and other contigs apart);
    ``cosine``: 1 - cosine similarity; ``mse``: squared distance summed over z.
    """
    a, b = a.float(), b.float()
    if kind == "mse":
        return (a - b).pow(2).sum(dim=1)
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    if kind == "cosine":
        return 1.0 - (a * b).sum(dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    forward = F.cross_entropy(logits, target, reduction="none")
    return 0.5 * (forward + F.cross_entropy(logits.T, target, reduction="none"))


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def binary_cross_entropy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE of probabilities, both clipped to [BCE_EPS, 1 - BCE_EPS]."""
    p = pred.float().clamp(BCE_EPS, 1 - BCE_EPS)
    t = target.float().clamp(BCE_EPS, 1 - BCE_EPS)
    return -(t * torch.log(p) + (1 - t) * torch.log1p(-p))


class Reconstruction:
    """The configured reconstruction loss of every output, and its diagnostics.

    ``outputs``: output name → its columns in the input ``x`` (the whole input, a group or GC).
    """

    def __init__(self, config: dict, inputs: InputSpec, outputs: dict[str, slice]):
        self.inputs = inputs
        self.slices = outputs
        self.widths = {name: s.stop - s.start for name, s in outputs.items()}
        self.specs = {
            name: {"kind": "mse"} if name == WHOLE_INPUT else loss_spec(config, name) for name in outputs
        }
        loss = config["loss"]
        scale = float(loss["scale"])
        self.factors = {
            name: scale
            * (
                1.0
                if loss["weighting"] == "per_feature"
                else (1.0 if loss["weighting"] == "equal" else float(loss["weights"][name]))
                / self.widths[name]
            )
            for name in outputs
        }

    def frequencies(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self.inputs.frequencies(x, name)

    def target(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """What output ``name`` is compared with, in its loss's space."""
        spec = self.specs[name]
        kind = spec["kind"]
        if kind == "mse":
            return x[:, self.slices[name]].float()
        freq = self.frequencies(x, name)
        if kind == "bce":
            return freq.clamp(spec["clip"], 1 - spec["clip"])
        if kind == "log_mse":
            return (freq + spec["offset"]).log()
        if kind == "logit_mse":
            return _logit(freq.clamp(spec["clip"], 1 - spec["clip"]))
        return freq  # gated: linear frequencies

    def rows(self, name: str, out, target: torch.Tensor) -> torch.Tensor:
        """Per-row loss of one output, summed over its columns."""
        spec = self.specs[name]
        kind = spec["kind"]
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(out.float(), target, reduction="none").sum(dim=1)
        if kind == "gated":
            gate_logits, value = out
            present = (target > spec["threshold"]).float()
            bce = F.binary_cross_entropy_with_logits(gate_logits.float(), present, reduction="none")
            sq = ((value.float() - target).pow(2) * present).sum(dim=1)
            return bce.sum(dim=1) + self.widths[name] * sq / present.sum(dim=1).clamp_min(1.0)
        return (out.float() - target).pow(2).sum(dim=1)

    def __call__(self, x: torch.Tensor, outputs: dict) -> torch.Tensor:
        """The per-row reconstruction term."""
        return sum(self.factors[n] * self.rows(n, outputs[n], self.target(x, n)) for n in self.slices)

    # -- diagnostics ---------------------------------------------------------------------

    def predicted_frequencies(self, name: str, out) -> torch.Tensor:
        """The output's prediction turned into frequencies (for the BCE diagnostic)."""
        kind = self.specs[name]["kind"]
        if kind == "gated":
            return gated_prediction(out)
        if kind in ("bce", "logit_mse"):
            return torch.sigmoid(out.float())
        if kind == "log_mse":
            return (out.float().exp() - self.specs[name]["offset"]).clamp_min(0)
        if name == "gc":
            return gc_inverse(out, self.inputs.gc_transform)
        return group_frequencies(out, int(name[:-3]), self.inputs.transforms[name], self.inputs.log_offset)

    def metric_units(self) -> dict[str, int]:
        """Diagnostic name → the width it is averaged over per counted row (in model order)."""
        units: dict[str, int] = {}
        if WHOLE_INPUT in self.slices:  # the default model: the MSE of each group
            return {f"mse_{g.name}": g.width for g in self.inputs.layout.groups}
        gated = [n for n in self.slices if self.specs[n]["kind"] == "gated"]
        for kind in ("mse", "bce"):
            units.update({f"{kind}_{n}": self.widths[n] for n in self.slices})
        for kind in ("gate_acc", "gate_base", "present", "mse_present", "mse_absent"):
            per = (lambda n: self.widths[n]) if kind in ("gate_acc", "gate_base") else (lambda n: 1)
            units.update({f"{kind}_{n}": per(n) for n in gated})
        return units

    @torch.no_grad()
    def metric_sums(self, x: torch.Tensor, outputs: dict) -> dict[str, torch.Tensor]:
        """Per diagnostic ``[numerator, denominator]`` (float64) to sum over batches.

        ``mse_<out>``: mean squared error in the loss's space (bce: frequencies; gated:
        gate × value against frequencies) — for the whole-input output, per k group;
        ``bce_<out>``: BCE of the predicted against the true frequencies; gated outputs add
        ``gate_acc`` (gate > 0.5 agrees with presence), ``gate_base`` (accuracy of calling
        everything absent), ``present`` (present k-mers per row), ``mse_present`` and
        ``mse_absent`` (of gate × value).
        """
        n = float(len(x))
        sums: dict[str, torch.Tensor] = {}

        def put(key, num, den):
            sums[key] = torch.stack(
                [torch.as_tensor(num, dtype=torch.float64), torch.as_tensor(den, dtype=torch.float64)]
            )

        if WHOLE_INPUT in self.slices:
            err = (outputs[WHOLE_INPUT].float() - self.target(x, WHOLE_INPUT)).pow(2)
            for g in self.inputs.layout.groups:
                put(f"mse_{g.name}", err[:, g.start : g.stop].sum().double(), n)
            return sums
        for name in self.slices:
            out, kind = outputs[name], self.specs[name]["kind"]
            target = self.target(x, name)
            pred = self.predicted_frequencies(name, out)
            err = (pred - target if kind in ("bce", "gated") else out.float() - target).pow(2)
            put(f"mse_{name}", err.sum().double(), n)
            put(f"bce_{name}", binary_cross_entropy(pred, self.frequencies(x, name)).sum().double(), n)
            if kind == "gated":
                present = target > self.specs[name]["threshold"]
                put(f"gate_acc_{name}", ((out[0] > 0) == present).sum().double(), n)
                put(f"gate_base_{name}", (~present).sum().double(), n)
                put(f"present_{name}", present.sum().double(), n)
                put(f"mse_present_{name}", err[present].sum().double(), present.sum().double())
                put(f"mse_absent_{name}", err[~present].sum().double(), (~present).sum().double())
        return sums


def finish_metrics(sums: dict[str, torch.Tensor], units: dict[str, int]) -> dict[str, float]:
    """Summed ``[numerator, denominator]`` pairs → numerator / denominator / unit (NaN where nothing was counted)."""
    return {k: float(v[0] / v[1] / units[k]) if float(v[1]) > 0 else float("nan") for k, v in sums.items()}

"""Per-output reconstruction losses of the family (``loss.groups``), their weighting, and
the per-group diagnostics of the development logs.

Each output (a k group, or ``gc``) has a loss kind; its per-row value is a mean over the
output's columns:

* ``mse`` — squared error against the model's input columns of that output (the default).
* ``bce`` — binary cross-entropy of sigmoid(output) against the frequencies clipped to
  [clip, 1 - clip].
* ``log_mse`` — squared error against log(frequency + offset).
* ``logit_mse`` — squared error against logit(frequency clipped to [clip, 1 - clip]) (GC).
* ``gated`` — for a gated head: BCE of the gate against presence (frequency > threshold)
  plus the squared error of the softplus value on the row's present entries only.

Targets other than ``mse`` are frequencies recovered from the input
(:meth:`kmervae.transforms.InputSpec.frequencies`). The reconstruction term of a row is
``scale × Σ weight_g × loss_g`` with weight_g = the output's width (``per_feature``: every
column counts once — the default VAE's MSE × input width), 1 (``equal``: the sum of group
means) or ``loss.weights`` (``explicit``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .family_config import loss_spec, output_names, setting
from .heads import gated_prediction
from .transforms import InputSpec, gc_inverse, group_frequencies

#: clip of predicted and true frequencies in the BCE diagnostic
BCE_EPS = 1e-7


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def kl_rows(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    mean, log_var = mean.float(), log_var.float()
    return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=1)


def binary_cross_entropy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE of probabilities, both clipped to [BCE_EPS, 1 - BCE_EPS]."""
    p = pred.float().clamp(BCE_EPS, 1 - BCE_EPS)
    t = target.float().clamp(BCE_EPS, 1 - BCE_EPS)
    return -(t * torch.log(p) + (1 - t) * torch.log1p(-p))


class FamilyLoss:
    """The configured reconstruction loss + β·KL, and the diagnostics per output."""

    def __init__(self, config: dict, inputs: InputSpec):
        self.inputs = inputs
        self.outputs = output_names(config)
        self.specs = {name: loss_spec(config, name) for name in self.outputs}
        self.widths = {name: inputs.slices[name].stop - inputs.slices[name].start for name in self.outputs}
        weighting = setting(config, "loss.weighting")
        explicit = setting(config, "loss.weights")
        scale = float(setting(config, "loss.scale"))
        self.weights = {
            name: scale
            * float(
                self.widths[name]
                if weighting == "per_feature"
                else 1.0
                if weighting == "equal"
                else explicit[name]
            )
            for name in self.outputs
        }

    # -- targets and per-row losses --------------------------------------------------------

    def target(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """What output ``name`` is compared with, in its loss's space."""
        spec = self.specs[name]
        kind = spec["kind"]
        if kind == "mse":
            return self.inputs.input_space(x, name)
        freq = self.inputs.frequencies(x, name)
        if kind == "bce":
            return freq.clamp(spec["clip"], 1 - spec["clip"])
        if kind == "log_mse":
            return (freq + spec["offset"]).log()
        if kind == "logit_mse":
            return _logit(freq.clamp(spec["clip"], 1 - spec["clip"]))
        return freq  # gated: linear frequencies

    def rows(self, name: str, out, target: torch.Tensor) -> torch.Tensor:
        """Per-row loss of one output (a mean over its columns; gated: BCE mean + present-MSE mean)."""
        spec = self.specs[name]
        kind = spec["kind"]
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(out.float(), target, reduction="none").mean(dim=1)
        if kind == "gated":
            gate_logits, value = out
            present = (target > spec["threshold"]).float()
            bce = F.binary_cross_entropy_with_logits(gate_logits.float(), present, reduction="none").mean(
                dim=1
            )
            sq = ((value.float() - target).pow(2) * present).sum(dim=1)
            return bce + sq / present.sum(dim=1).clamp_min(1.0)
        return (out.float() - target).pow(2).mean(dim=1)

    def __call__(
        self, x: torch.Tensor, outputs: dict, mean: torch.Tensor, log_var: torch.Tensor, beta: float
    ):
        """(batch-mean loss, per-row weighted reconstruction term, per-row KL), as ``model.vae_loss``."""
        recon = sum(self.weights[n] * self.rows(n, outputs[n], self.target(x, n)) for n in self.outputs)
        kl = kl_rows(mean, log_var)
        return (recon + beta * kl).mean(), recon, kl

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

    def metric_names(self) -> list[str]:
        """The keys of :meth:`metric_sums`, grouped by kind, outputs in model order."""
        gated = [n for n in self.outputs if self.specs[n]["kind"] == "gated"]
        names = [f"{kind}_{n}" for kind in ("mse", "bce") for n in self.outputs]
        kinds = ("gate_acc", "gate_base", "present", "mse_present", "mse_absent")
        return names + [f"{kind}_{n}" for kind in kinds for n in gated]

    @torch.no_grad()
    def metric_sums(self, x: torch.Tensor, outputs: dict) -> dict[str, torch.Tensor]:
        """Per output: ``name -> [numerator, denominator]`` (float64) to sum over batches.

        ``mse_<out>``: mean squared error in the loss's space (bce: frequencies; gated:
        gate × value against frequencies); ``bce_<out>``: BCE of the predicted against the
        true frequencies; gated outputs add ``gate_acc`` (gate > 0.5 agrees with presence),
        ``gate_base`` (accuracy of calling everything absent), ``present`` (present k-mers
        per row), ``mse_present`` and ``mse_absent`` (of gate × value).
        """
        n = float(len(x))
        sums: dict[str, torch.Tensor] = {}

        def put(key, num, den):
            sums[key] = torch.stack(
                [torch.as_tensor(num, dtype=torch.float64), torch.as_tensor(den, dtype=torch.float64)]
            )

        for name in self.outputs:
            out, kind = outputs[name], self.specs[name]["kind"]
            target = self.target(x, name)
            freq = self.inputs.frequencies(x, name)
            width = self.widths[name]
            pred = self.predicted_frequencies(name, out)
            if kind in ("bce", "gated"):
                err = (pred - target).pow(2)
            else:
                err = (out.float() - target).pow(2)
            put(f"mse_{name}", err.sum().double(), n * width)
            put(f"bce_{name}", binary_cross_entropy(pred, freq).sum().double(), n * width)
            if kind == "gated":
                present = target > self.specs[name]["threshold"]
                agree = (out[0] > 0) == present
                put(f"gate_acc_{name}", agree.sum().double(), n * width)
                put(f"gate_base_{name}", (~present).sum().double(), n * width)
                put(f"present_{name}", present.sum().double(), n)
                put(f"mse_present_{name}", err[present].sum().double(), present.sum().double())
                put(f"mse_absent_{name}", err[~present].sum().double(), (~present).sum().double())
        return sums


def finish_metrics(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """Summed ``[numerator, denominator]`` pairs → values (NaN where nothing was counted)."""
    return {k: float(v[0] / v[1]) if float(v[1]) > 0 else float("nan") for k, v in sums.items()}

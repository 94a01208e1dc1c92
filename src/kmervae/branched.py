"""Bodies of the family's VAEs: the flat MLP with per-output heads and the branched
multi-scale encoder/decoder.

Branched (``model.architecture: branched``): one branch per k group, each fed its group's
columns plus a copy of every extra input (GC, log length); the branch outputs are
concatenated, go through the shared layers (``model.hidden``) and then to the latent.
The decoder mirrors it: shared layers, then per branch its layers reversed, ending in the
group's head plus a one-column GC prediction; the model's GC is the mean of the branch
predictions. Length is an input only. Branch widths are ``model.branches`` (e.g.
``7mer: [512, 128]`` makes the 7-mer branch 8,194 → 512 → 128 with GC and length).

Both decoders return ``{output name: tensor}`` (a gated head gives ``(gate_logits, value)``).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from .family_config import head_spec, setting
from .heads import make_head
from .model import _block
from .transforms import InputSpec


def _stack(widths: list[int], m: dict) -> nn.Sequential:
    """Linear → BatchNorm → LeakyReLU (→ Dropout) blocks through ``widths`` (as the flat VAE)."""
    return nn.Sequential(*[layer for a, b in pairwise(widths) for layer in _block(a, b, m)])


class FlatEncoder(nn.Module):
    def __init__(self, inputs: InputSpec, m: dict):
        super().__init__()
        self.layers = _stack([inputs.width, *m["hidden"]], m)
        self.out_width = ([inputs.width, *m["hidden"]])[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class FlatDecoder(nn.Module):
    """latent → hidden reversed → one head per k group (+ a linear column per extra output)."""

    def __init__(self, inputs: InputSpec, config: dict, outputs: list[str]):
        super().__init__()
        m = config["model"]
        widths = [int(m["latent"]), *reversed(m["hidden"])]
        self.layers = _stack(widths, m)
        width = widths[-1]
        self.heads = nn.ModuleDict()
        for name in outputs:
            size = inputs.slices[name].stop - inputs.slices[name].start
            spec = head_spec(config, name) if name != "gc" else {"kind": "linear"}
            self.heads[name] = make_head(spec, width, size)

    def forward(self, z: torch.Tensor) -> dict:
        h = self.layers(z)
        return {name: head(h) for name, head in self.heads.items()}


class BranchedEncoder(nn.Module):
    def __init__(self, inputs: InputSpec, m: dict, branches: dict):
        super().__init__()
        self.groups = [(g.name, g.start, g.stop) for g in inputs.layout.groups]
        self.extra_start = inputs.layout.width
        n_extra = len(inputs.extra)
        self.branches = nn.ModuleDict(
            {name: _stack([stop - start + n_extra, *branches[name]], m) for name, start, stop in self.groups}
        )
        self.concat_width = sum(branches[name][-1] for name, _, _ in self.groups)
        self.shared = _stack([self.concat_width, *m["hidden"]], m)
        self.out_width = ([self.concat_width, *m["hidden"]])[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = x[:, self.extra_start :]
        parts = [
            self.branches[name](torch.cat([x[:, start:stop], extra], dim=1))
            for name, start, stop in self.groups
        ]
        return self.shared(torch.cat(parts, dim=1))


class BranchedDecoder(nn.Module):
    def __init__(self, inputs: InputSpec, config: dict, branches: dict):
        super().__init__()
        m = config["model"]
        shared = [int(m["latent"]), *reversed(m["hidden"])]
        self.shared = _stack(shared, m)
        self.branches = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.gc_heads = nn.ModuleDict()
        for g in inputs.layout.groups:
            widths = [shared[-1], *reversed(branches[g.name])]
            self.branches[g.name] = _stack(widths, m)
            self.heads[g.name] = make_head(head_spec(config, g.name), widths[-1], g.width)
            self.gc_heads[g.name] = nn.Linear(widths[-1], 1)

    def forward(self, z: torch.Tensor) -> dict:
        h = self.shared(z)
        out, gc = {}, []
        for name, branch in self.branches.items():
            hb = branch(h)
            out[name] = self.heads[name](hb)
            gc.append(self.gc_heads[name](hb))
        out["gc"] = torch.stack(gc).mean(dim=0)
        return out


def make_body(inputs: InputSpec, config: dict, outputs: list[str]) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of the configured architecture; ``encoder.out_width`` feeds the latent."""
    m = config["model"]
    if m["architecture"] == "branched":
        branches = setting(config, "model.branches")
        return BranchedEncoder(inputs, m, branches), BranchedDecoder(inputs, config, branches)
    return FlatEncoder(inputs, m), FlatDecoder(inputs, config, outputs)

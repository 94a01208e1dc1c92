"""Bodies: the flat MLP and the branched multi-scale encoder/decoder.

Flat (``model.architecture: flat``): input → ``model.hidden`` blocks → (latent) →
``model.hidden`` reversed → one head per output. When the decoder reconstructs the input
itself (every output a k group with a linear head and an MSE loss, no extra inputs or
outputs: the default model) the heads are one Linear layer over all columns, output
``kmers``.

Branched (``model.architecture: branched``): one branch per k group, each fed its group's
columns plus a copy of every extra input (GC, log length); the branch outputs are
concatenated, go through the shared layers (``model.hidden``) and then to the latent.
The decoder mirrors it: shared layers, then per branch its layers reversed, ending in the
group's head plus a one-column GC prediction; the model's GC is the mean of the branch
predictions. Length is an input only. Branch widths are ``model.branches`` (e.g.
``7mer: [512, 128]`` makes the 7-mer branch 8,194 → 512 → 128 with GC and length).

Decoders return ``{output name: tensor}`` (a gated head gives ``(gate_logits, value)``);
``encoder.out_width`` is the width that feeds the latent.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import stack
from .config import head_spec
from .heads import make_head
from .inputs import InputSpec


class FlatEncoder(nn.Module):
    def __init__(self, inputs: InputSpec, m: dict):
        super().__init__()
        widths = [inputs.width, *m["hidden"]]
        self.layers = stack(widths, m)
        self.out_width = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class FlatDecoder(nn.Module):
    """latent → hidden reversed → one head per output (``outputs``: name → (head spec, width))."""

    def __init__(self, m: dict, outputs: dict[str, tuple[dict, int]]):
        super().__init__()
        widths = [int(m["latent"]), *reversed(m["hidden"])]
        self.layers = stack(widths, m)
        self.heads = nn.ModuleDict(
            {name: make_head(spec, widths[-1], n) for name, (spec, n) in outputs.items()}
        )

    def forward(self, z: torch.Tensor) -> dict:
        h = self.layers(z)
        return {name: head(h) for name, head in self.heads.items()}


class BranchedEncoder(nn.Module):
    def __init__(self, inputs: InputSpec, m: dict):
        super().__init__()
        branches = m["branches"]
        self.groups = [(g.name, g.start, g.stop) for g in inputs.layout.groups]
        self.extra_start = inputs.layout.width
        n_extra = len(inputs.extra)
        self.branches = nn.ModuleDict(
            {name: stack([stop - start + n_extra, *branches[name]], m) for name, start, stop in self.groups}
        )
        self.concat_width = sum(branches[name][-1] for name, _, _ in self.groups)
        self.shared = stack([self.concat_width, *m["hidden"]], m)
        self.out_width = ([self.concat_width, *m["hidden"]])[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = x[:, self.extra_start :]
        parts = [
            self.branches[name](torch.cat([x[:, start:stop], extra], dim=1))
            for name, start, stop in self.groups
        ]
        return self.shared(torch.cat(parts, dim=1))


class BranchedDecoder(nn.Module):
    def __init__(self, inputs: InputSpec, config: dict):
        super().__init__()
        m = config["model"]
        shared = [int(m["latent"]), *reversed(m["hidden"])]
        self.shared = stack(shared, m)
        self.branches = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.gc_heads = nn.ModuleDict()
        for g in inputs.layout.groups:
            widths = [shared[-1], *reversed(m["branches"][g.name])]
            self.branches[g.name] = stack(widths, m)
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


def make_body(inputs: InputSpec, config: dict, outputs: dict[str, tuple[dict, int]]):
    """(encoder, decoder) of the configured architecture."""
    if config["model"]["architecture"] == "branched":
        return BranchedEncoder(inputs, config["model"]), BranchedDecoder(inputs, config)
    return FlatEncoder(inputs, config["model"]), FlatDecoder(config["model"], outputs)

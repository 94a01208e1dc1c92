"""The model input: a transform per k group, plus GC and log length as extra columns.

Per-group transforms (``input.transform`` for all groups, ``input.group_transforms`` per
group): ``clr`` (frequencies + Jeffreys pseudocount, log, centre: the default), ``freq``
(raw frequencies) and ``log`` (log(frequency + ``input.log_offset``)). Extra inputs
(``input.extra``): ``gc`` — the GC fraction from the 1-mer group, as its logit (clipped to
[1e-6, 1 - 1e-6]) or raw — and ``log_length``, the natural log of the contig length.

A model reads a *block* of store rows: the counts or frequencies of ``read_ks`` (its input
groups, plus the 1-mers when GC is an input), then the contig length when it reads length
(:meth:`InputSpec.read_block`). Its input ``x`` is the transformed groups in ``input.ks``
order, then the extras in ``input.extra`` order. Every transform can be inverted back to
frequencies (:meth:`InputSpec.frequencies`), so the losses that need frequencies (BCE,
log-MSE, gated) are computed from ``x`` alone: no second copy of the data, and a float16
in-memory copy of ``x`` is all training needs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import KmervaeError
from ..kmers import Layout, counts_to_clr, frequencies, gc_fraction, group_width
from .config import read_ks, require_groups

GC_CLIP = 1e-6


def group_transform(block: torch.Tensor, k: int, kind: str, log_offset: float) -> torch.Tensor:
    """Counts or frequencies of one k group → its model input columns."""
    layout = Layout((k,))
    if kind == "clr":
        return counts_to_clr(block, layout)
    if kind == "log":
        return frequencies(block, layout).add(log_offset).log()
    return frequencies(block, layout)


def group_frequencies(x: torch.Tensor, k: int, kind: str, log_offset: float) -> torch.Tensor:
    """Invert :func:`group_transform`: model input columns of one group → frequencies.

    CLR: softmax(clr) = (f + p) / Σ(f + p) = (f + p) / (1 + w·p), so f = (1 + w·p)·softmax − p
    (exact for rows whose group is not all zero; an all-zero group comes back uniform).
    """
    x = x.float()
    if kind == "clr":
        width = group_width(k)
        p = 0.5 / width
        return (torch.softmax(x, dim=1) * (1 + width * p) - p).clamp_min(0)
    if kind == "log":
        return (x.exp() - log_offset).clamp_min(0)
    return x


def gc_forward(gc: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "logit":
        g = gc.clamp(GC_CLIP, 1 - GC_CLIP)
        return torch.log(g) - torch.log1p(-g)
    return gc


def gc_inverse(x: torch.Tensor, kind: str) -> torch.Tensor:
    return torch.sigmoid(x.float()) if kind == "logit" else x.float()


class InputSpec:
    """Where each group and extra lives in the input, and how it was transformed."""

    def __init__(self, config: dict):
        inp = config["input"]
        self.ks = tuple(int(k) for k in inp["ks"])
        self.layout = Layout(self.ks)
        self.extra = tuple(inp["extra"])
        per_group = inp["group_transforms"]
        self.transforms = {g.name: per_group.get(g.name, inp["transform"]) for g in self.layout.groups}
        self.log_offset = float(inp["log_offset"])
        self.gc_transform = inp["gc_transform"]
        self.read_ks = read_ks(config)
        self.read_layout = Layout(self.read_ks)
        self.reads_length = "log_length" in self.extra
        self.read_width = self.read_layout.width + int(self.reads_length)
        self.width = self.layout.width + len(self.extra)
        self.slices: dict[str, slice] = {g.name: slice(g.start, g.stop) for g in self.layout.groups}
        for i, name in enumerate(self.extra):
            self.slices[name] = slice(self.layout.width + i, self.layout.width + i + 1)

    def read_block(self, matrix, layout: Layout, lengths=None) -> torch.Tensor:
        """Store rows (counts or frequencies in any ``layout`` holding ``read_ks``) → the read block (float32).

        Selected and converted in torch (the float32 copy is torch-allocated, as the
        training batches are, so an embedding repeats the numbers of training exactly).
        """
        require_groups(self.read_ks, layout)
        block = torch.as_tensor(np.asarray(matrix))
        if tuple(layout.ks) != self.read_ks:
            block = block[:, torch.from_numpy(layout.columns_for(self.read_ks))]
        block = block.float()
        if self.reads_length:
            if lengths is None:
                raise KmervaeError(
                    "the model reads contig lengths (input.extra log_length) but none were given"
                )
            length = torch.as_tensor(np.asarray(lengths, dtype=np.float32)).reshape(-1, 1)
            block = torch.cat([block, length], dim=1)
        return block

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        """A read block (counts or frequencies of ``read_ks``, then the length if read) → x.

        Every part is written into one float32 tensor (no concatenation); CLR groups read
        integer counts as they are (the conversion is part of the CLR's add).
        """
        kmers = block[:, : self.read_layout.width]
        x = torch.empty((len(block), self.width), dtype=torch.float32, device=block.device)
        floats = None
        for g in self.layout.groups:
            r, kind = self.read_layout.group(g.k), self.transforms[g.name]
            part = x[:, self.slices[g.name]]
            if kind == "clr":
                counts_to_clr(kmers[:, r.start : r.stop], Layout((g.k,)), out=part)
                continue
            floats = kmers.float() if floats is None else floats
            part.copy_(group_transform(floats[:, r.start : r.stop], g.k, kind, self.log_offset))
        for name in self.extra:
            part = x[:, self.slices[name]]
            if name == "gc":
                part.copy_(gc_forward(gc_fraction(kmers, self.read_layout), self.gc_transform).unsqueeze(1))
            else:  # log_length
                part.copy_(block[:, -1:].float().clamp_min(1.0).log())
        return x

    def thin(self, block: torch.Tensor, keep: float) -> torch.Tensor:
        """A random view of a read block of counts: each k-mer occurrence kept with probability ``keep``.

        Binomial thinning of the counts (before any transform) is close to the counts of a
        random sub-fragment of ``keep`` times the length; the length column, when read, is
        scaled by ``keep``. Draws from torch's global generator (seeded per epoch in
        training): on CPU it seeds numpy's binomial sampler, several times faster than torch's.
        """
        kmers = block[:, : self.read_layout.width].float()
        if not torch.equal(kmers, kmers.round()):
            raise KmervaeError(
                "loss.consistency thins k-mer counts, but the training rows are not counts "
                "(a store of frequencies?); train on a store of counts or set loss.consistency: 0"
            )
        if kmers.device.type == "cpu":
            seed = int(torch.randint(0, 2**62, (1,)).item())
            drawn = np.random.default_rng(seed).binomial(kmers.numpy().astype(np.int64), keep)
            view = torch.from_numpy(drawn.astype(np.float32))
        else:
            view = torch.binomial(kmers, torch.full_like(kmers, keep))
        if self.reads_length:
            view = torch.cat([view, block[:, -1:].float() * keep], dim=1)
        return view

    def frequencies(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Frequencies (or the GC fraction, n × 1) of output ``name`` recovered from the input ``x``."""
        part = x[:, self.slices[name]]
        if name == "gc":
            return gc_inverse(part, self.gc_transform)
        return group_frequencies(part, int(name[:-3]), self.transforms[name], self.log_offset)

    def input_space(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x[:, self.slices[name]].float()

"""Output heads: the decoder's last layer for one output (``model.heads``).

* ``linear`` — one Linear layer (the default).
* ``gated`` — sparse groups (7-mers in short contigs are mostly absent): a sigmoid
  presence gate and a softplus value in linear frequency space; the prediction is
  gate × value. Returns ``(gate_logits, value)`` so the gated loss can train the gate
  with BCE on presence and the value with MSE on present entries only.
* ``embedding`` — a learned width × dim k-mer embedding matrix times a dim-d query
  computed from the hidden layer (8,192 × 64 for the 7-mers): dim·(hidden + width)
  weights instead of hidden·width.
* ``lowrank`` — a bottleneck hidden → rank → width (… → 128 → 8,192) for the same saving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedHead(nn.Module):
    def __init__(self, n_in: int, width: int):
        super().__init__()
        self.gate = nn.Linear(n_in, width)
        self.value = nn.Linear(n_in, width)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gate(h), F.softplus(self.value(h))


def gated_prediction(out: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Gate × value: the gated head's predicted frequencies."""
    gate_logits, value = out
    return torch.sigmoid(gate_logits) * value


class EmbeddingHead(nn.Module):
    """output[i] = <query(h), E[i]> + b[i] with a learned k-mer embedding E (width × dim)."""

    def __init__(self, n_in: int, width: int, dim: int):
        super().__init__()
        self.query = nn.Linear(n_in, dim)
        self.kmer_embedding = nn.Parameter(torch.empty(width, dim))
        self.bias = nn.Parameter(torch.zeros(width))
        nn.init.xavier_uniform_(self.kmer_embedding)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(self.query(h), self.kmer_embedding, self.bias)


def output_bias(head: nn.Module) -> torch.Tensor:
    """The bias of a head's output columns (a gated head: of its value)."""
    if isinstance(head, GatedHead):
        return head.value.bias
    if isinstance(head, nn.Sequential):
        return head[-1].bias
    return head.bias


def make_head(spec: dict, n_in: int, width: int) -> nn.Module:
    """The head of ``spec`` (a normalised ``model.heads`` entry) from ``n_in`` features to ``width`` columns."""
    kind = spec["kind"]
    if kind == "linear":
        return nn.Linear(n_in, width)
    if kind == "gated":
        return GatedHead(n_in, width)
    if kind == "embedding":
        return EmbeddingHead(n_in, width, int(spec["dim"]))
    if kind == "lowrank":
        return nn.Sequential(
            nn.Linear(n_in, int(spec["rank"]), bias=False), nn.Linear(int(spec["rank"]), width)
        )
    raise ValueError(f"unknown head {kind!r}")

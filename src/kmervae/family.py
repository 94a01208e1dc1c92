"""The family VAE: any config the default flat KmerVAE does not cover (issue 6).

Same interface as :class:`kmervae.model.KmerVAE` — ``transform``, ``encode``,
``forward``, ``embed``, ``loss``, ``latent_dim``, ``input_ks`` (the groups read from a
store, including the 1-mers when GC is an input), ``config_hash`` — with the input
(:class:`kmervae.transforms.InputSpec`), body (:mod:`kmervae.branched`), heads
(:mod:`kmervae.heads`) and losses (:mod:`kmervae.losses`) chosen by the config.
Initialised like KmerVAE (Glorot-uniform, zero biases), except that outputs whose loss
is not in the (centred) input space start at a uniform composition — frequency 1 / width
(GC 0.5) in the loss's space: a gated value at 1 / width, a BCE logit at logit(1 / width),
a log-MSE output at log(1 / width + offset). A zero start there would be far off the data
(sigmoid(0) = 0.5 for a 6-mer frequency of ~5e-4), costing many early steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .branched import make_body
from .config import config_hash
from .errors import KmervaeError
from .family_config import output_names
from .heads import EmbeddingHead, output_bias
from .kmers import Layout
from .losses import FamilyLoss
from .model import encode_in_batches, require_groups, sample_z


class FamilyVAE(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        from .transforms import InputSpec

        self.config = config
        self.config_hash = config_hash(config)
        self.inputs = InputSpec(config)
        self.input_ks: tuple[int, ...] = self.inputs.read_ks
        self.input_layout = self.inputs.read_layout
        self.input_width = self.inputs.width
        self.reads_length = self.inputs.reads_length
        self.outputs = output_names(config)
        m = config["model"]
        self.latent_dim = int(m["latent"])
        self.logvar_clip = tuple(float(v) for v in m["logvar_clip"])
        self.encoder, self.decoder = make_body(self.inputs, config, self.outputs)
        self.z_mean = nn.Linear(self.encoder.out_width, self.latent_dim)
        self.z_log_var = nn.Linear(self.encoder.out_width, self.latent_dim)
        self.loss_fn = FamilyLoss(config, self.inputs)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            if isinstance(module, EmbeddingHead):
                nn.init.xavier_uniform_(module.kmer_embedding)
        self._start_at_uniform_composition()

    @torch.no_grad()
    def _start_at_uniform_composition(self) -> None:
        heads = self.decoder.heads
        for name in self.outputs:
            spec = self.loss_fn.specs[name]
            p0 = 0.5 if name == "gc" else 1.0 / self.loss_fn.widths[name]
            if spec["kind"] == "gated":
                start = math.log(math.expm1(p0))  # softplus(start) = p0
            elif spec["kind"] in ("bce", "logit_mse"):
                start = math.log(p0) - math.log1p(-p0)
            elif spec["kind"] == "log_mse":
                start = math.log(p0 + spec["offset"])
            else:
                continue
            if name == "gc" and "gc" not in heads:  # branched: every branch's GC column
                for head in self.decoder.gc_heads.values():
                    head.bias.fill_(start)
            else:
                output_bias(heads[name]).fill_(start)

    def transform(self, block: torch.Tensor) -> torch.Tensor:
        """Rows of the ``input_ks`` groups (+ a length column when the model reads length) → input."""
        return self.inputs(block)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h).clamp(*self.logvar_clip)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """({output name: reconstruction}, z_mean, z_log_var); samples z only in training mode."""
        mean, log_var = self.encode(x)
        return self.decoder(sample_z(mean, log_var, self.training, noise)), mean, log_var

    def loss(self, x, outputs, mean, log_var, beta: float):
        """(batch-mean loss, per-row reconstruction term, per-row KL)."""
        return self.loss_fn(x, outputs, mean, log_var, beta)

    def metric_sums(self, x, outputs) -> dict[str, torch.Tensor]:
        return self.loss_fn.metric_sums(x, outputs)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def read_block(self, matrix, layout: Layout, lengths=None) -> np.ndarray:
        """The store rows (any layout holding ``input_ks``) as this model's read block."""
        require_groups(self.input_ks, layout)
        block = np.asarray(matrix)
        if tuple(layout.ks) != self.input_ks:
            block = block[:, layout.columns_for(self.input_ks)]
        block = block.astype(np.float32, copy=False)
        if self.reads_length:
            if lengths is None:
                raise KmervaeError(
                    "the model reads contig lengths (input.extra log_length) but none were given"
                )
            block = np.concatenate([block, np.asarray(lengths, dtype=np.float32).reshape(-1, 1)], axis=1)
        return block

    @torch.no_grad()
    def embed(self, matrix, layout: Layout, lengths=None, batch_size: int = 4096) -> np.ndarray:
        """z_mean (float32, n × latent) of counts or frequencies in ``layout`` (and ``lengths``)."""

        def rows(start: int, stop: int) -> torch.Tensor:
            part = None if lengths is None else np.asarray(lengths)[start:stop]
            return torch.from_numpy(self.read_block(matrix[start:stop], layout, part))

        return encode_in_batches(self, len(matrix), rows, batch_size)

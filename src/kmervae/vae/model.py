"""The VAE: input transform, body (flat or branched), latent, heads and losses, chosen by one config.

Default (the paper's final model): the 6..1-mer groups (2772 columns), each turned into
its own CLR, go through Linear → BatchNorm → LeakyReLU(0.2) blocks 2772 → 1024 → 512, then
two linear layers give ``z_mean`` and ``z_log_var`` (384 each, log-variance clipped to
[-20, 2]). The decoder mirrors the encoder and ends in one linear layer reconstructing the
input; the loss per row is the squared error summed over the input columns + β·KL against
N(0, I), averaged over the batch. Embedding uses ``z_mean`` only; sampling happens in
training.

Every other config picks its parts: the input (:mod:`.inputs`), the body (:mod:`.bodies`),
the heads (:mod:`.heads`) and the per-output losses (:mod:`.losses`). Layers start
Glorot-uniform with zero biases (encoder, latent, decoder, in that order); outputs whose
loss is not in the (centred) input space start at a uniform composition — frequency
1 / width (GC 0.5) in the loss's space: a gated value at 1 / width, a BCE logit at
logit(1 / width), a log-MSE output at log(1 / width + offset). A zero start there would be
far off the data (sigmoid(0) = 0.5 for a 6-mer frequency of ~5e-4), costing many early steps.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import glorot
from .bodies import make_body
from .config import config_hash, head_spec, loss_spec, output_names, resolve
from .heads import EmbeddingHead, output_bias
from .inputs import InputSpec, require_groups
from .losses import WHOLE_INPUT, LossOutput, Reconstruction, consistency_rows, finish_metrics, kl_rows


def reconstructs_input(config: dict) -> bool:
    """True when the decoder's target is the input itself: one linear layer, per-feature MSE."""
    groups = [f"{k}mer" for k in config["input"]["ks"]]
    return (
        config["model"]["architecture"] == "flat"
        and not config["input"]["extra"]
        and output_names(config) == groups
        and all(
            head_spec(config, g)["kind"] == "linear" and loss_spec(config, g)["kind"] == "mse" for g in groups
        )
        and config["loss"]["weighting"] == "per_feature"
    )


def sample_z(mean: torch.Tensor, log_var: torch.Tensor, training: bool, noise: torch.Tensor | None = None):
    """The reparameterised sample in training, ``z_mean`` itself otherwise (embeddings are deterministic).

    ``noise`` (standard normal, shape of z) may be passed so that data-parallel ranks use
    slices of one global draw and match a single process exactly.
    """
    if not training:
        return mean
    if noise is None:
        noise = torch.randn_like(mean)
    return mean + torch.exp(0.5 * log_var) * noise.to(mean.dtype)


class VAE(nn.Module):
    """The k-mer VAE of ``config`` (resolved, or as saved with a model); see the module docstring."""

    def __init__(self, config: dict):
        super().__init__()
        config = resolve(config)  # a saved (canonical) config holds only some keys
        self.config = config
        self.config_hash = config_hash(config)
        self.model_dir = ""  # where it was loaded from (kmervae.vae.files.load_model)
        self.weights_hash: str | None = None  # hash of the weight file it was loaded from
        self.training_lengths: dict | None = None  # the training split's lengths (kmervae.lengths)
        self.inputs = InputSpec(config)
        self.input_ks: tuple[int, ...] = self.inputs.read_ks
        self.input_layout = self.inputs.read_layout
        self.input_width = self.inputs.width
        self.reads_length = self.inputs.reads_length
        m = config["model"]
        self.latent_dim = int(m["latent"])
        self.input_dropout = float(m["input_dropout"])
        self.logvar_clip = tuple(float(v) for v in m["logvar_clip"])
        if reconstructs_input(config):
            slices = {WHOLE_INPUT: slice(0, self.input_width)}
            heads = {WHOLE_INPUT: ({"kind": "linear"}, self.input_width)}
        else:
            slices = {name: self.inputs.slices[name] for name in output_names(config)}
            heads = {
                name: (head_spec(config, name) if name != "gc" else {"kind": "linear"}, s.stop - s.start)
                for name, s in slices.items()
            }
        self.outputs = list(slices)
        self.reconstruction = Reconstruction(config, self.inputs, slices)
        self.metric_units = self.reconstruction.metric_units()
        encoder, decoder = make_body(self.inputs, config, heads)
        self.encoder = encoder
        self.z_mean = nn.Linear(encoder.out_width, self.latent_dim)
        self.z_log_var = nn.Linear(encoder.out_width, self.latent_dim)
        self.decoder = decoder
        glorot(self)
        for module in self.modules():
            if isinstance(module, EmbeddingHead):
                nn.init.xavier_uniform_(module.kmer_embedding)
        self._start_at_uniform_composition()

    @torch.no_grad()
    def _start_at_uniform_composition(self) -> None:
        heads = self.decoder.heads
        for name in self.outputs:
            spec = self.reconstruction.specs[name]
            p0 = 0.5 if name == "gc" else 1.0 / self.reconstruction.widths[name]
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
        """A read block (counts or frequencies of ``input_ks``, then the length if read) → input x."""
        return self.inputs(block)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h).clamp(*self.logvar_clip)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """({output name: reconstruction}, z_mean, z_log_var); samples z only in training mode.

        In training, ``model.input_dropout`` > 0 drops input columns before the encoder (the
        losses compare the output with the clean ``x``).
        """
        seen = F.dropout(x, self.input_dropout, training=True) if self.training and self.input_dropout else x
        mean, log_var = self.encode(seen)
        return self.decoder(sample_z(mean, log_var, self.training, noise)), mean, log_var

    def loss(
        self,
        x: torch.Tensor,
        beta: float,
        noise: torch.Tensor | None = None,
        metrics: bool = False,
        block: torch.Tensor | None = None,
    ) -> LossOutput:
        """The objective of input ``x`` at KL weight ``beta`` (and the diagnostics when ``metrics``).

        ``block``: the read block ``x`` was transformed from (counts); in training, with
        ``loss.consistency`` > 0, two thinned views of it add the consistency term.
        """
        outputs, mean, log_var = self(x, noise)
        out = self.loss_of(x, outputs, mean, log_var, beta, metrics)
        weight = float(self.config["loss"]["consistency"])
        if weight > 0 and self.training and block is not None:
            out.loss = out.loss + weight * self.consistency(block).mean()
        return out

    def consistency(self, block: torch.Tensor) -> torch.Tensor:
        """Per-row consistency term of two thinned views of ``block`` (their ``z_mean``).

        The views pass the encoder in training mode (dropout, batch statistics) but leave
        the BatchNorm running statistics alone: those stay the statistics of whole rows,
        which is what embedding sees.
        """
        loss = self.config["loss"]
        keep = float(loss["consistency_keep"])
        views = [self.transform(self.inputs.thin(block, keep)) for _ in range(2)]
        with _frozen_running_stats(self):
            a, b = (self.encode(v)[0] for v in views)
        return consistency_rows(a, b, loss["consistency_kind"], float(loss["consistency_temperature"]))

    def loss_of(self, x, outputs: dict, mean, log_var, beta: float, metrics: bool = False) -> LossOutput:
        """The objective of given decoder ``outputs`` and latent ``mean``/``log_var`` for input ``x``."""
        recon = self.reconstruction(x, outputs)
        kl = kl_rows(mean, log_var)
        sums = self.reconstruction.metric_sums(x, outputs) if metrics else {}
        return LossOutput((recon + beta * kl).mean(), recon, kl, sums)

    def finish_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """Diagnostic sums over batches (keys of :attr:`metric_units`) → values."""
        return finish_metrics(sums, self.metric_units)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def read_block(self, matrix, layout, lengths=None) -> torch.Tensor:
        """Store rows (any layout holding ``input_ks``) as this model's read block."""
        return self.inputs.read_block(matrix, layout, lengths)

    @torch.no_grad()
    def embed(self, matrix, layout, lengths=None, batch_size: int = 4096) -> np.ndarray:
        """z_mean (float32, n × latent) of counts or frequencies in ``layout`` (and ``lengths``).

        Deterministic: eval mode, no sampling.
        """
        require_groups(self.input_ks, layout)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        n = len(matrix)
        out = np.empty((n, self.latent_dim), dtype=np.float32)
        try:
            for start in range(0, n, batch_size):
                part = None if lengths is None else np.asarray(lengths)[start : start + batch_size]
                block = self.read_block(matrix[start : start + batch_size], layout, part)
                mean, _ = self.encode(self.transform(block.to(device)))
                out[start : start + len(block)] = mean.float().cpu().numpy()
        finally:
            self.train(was_training)
        return out


@contextlib.contextmanager
def _frozen_running_stats(model: nn.Module):
    """BatchNorm layers normalise with batch statistics but do not update their running ones."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)

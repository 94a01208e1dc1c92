"""The multi-scale k-mer VAE: input transform, encoder/decoder, reparameterisation and loss.

Default (DESIGN.md, the paper's final model): the 6..1-mer groups (2772 columns), each
turned into its own CLR, go through Linear → BatchNorm → LeakyReLU(0.2) blocks
2772 → 1024 → 512, then two linear heads give ``z_mean`` and ``z_log_var`` (384 each,
log-variance clipped to [-20, 2]). The decoder mirrors the encoder and ends linear.

Loss per row = squared error summed over the input columns (MSE × input width) + β·KL
against N(0, I), averaged over the batch. Embedding uses ``z_mean`` only; sampling
happens in :meth:`KmerVAE.forward` during training.

Layers start like the author's Keras model (Glorot-uniform weights, zero biases,
BatchNorm momentum 0.99 / epsilon 1e-3 in Keras terms) so results are comparable. The
Linear layers that feed a BatchNorm have no bias: BatchNorm's shift makes it redundant
(the function class is the same), and Adam would turn its pure rounding-noise gradient
into steps of the size of the learning rate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import config_hash
from .errors import KmervaeError
from .kmers import Layout, counts_to_clr, frequencies


def require_groups(input_ks: tuple[int, ...], layout: Layout) -> None:
    """One clear error when data in ``layout`` lacks a k-mer group the model reads."""
    missing = [k for k in input_ks if k not in layout.ks]
    if missing:
        raise KmervaeError(
            f"the model reads {Layout(input_ks).describe()} but the data lacks "
            f"{', '.join(f'{k}-mers' for k in missing)} (it holds {layout.describe()})"
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


#: per-group input transforms (counts or frequencies of one group → model input columns)
INPUT_TRANSFORMS = {"clr": counts_to_clr, "freq": frequencies}


def transform_input(matrix: torch.Tensor, layout: Layout, transform: str = "clr") -> torch.Tensor:
    """Counts/frequencies of ``layout``'s groups → float32 model input.

    Each entry of :data:`INPUT_TRANSFORMS` works group by group (vectorised over all
    groups at once); a per-group choice of transform is a loop over ``layout.groups``
    calling the table with one-group layouts.
    """
    x = matrix if matrix.is_floating_point() else matrix.float()
    return INPUT_TRANSFORMS[transform](x, layout)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks with its gradient (the sum of the ranks' output gradients)."""

    @staticmethod
    def forward(ctx, tensor):
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that uses the statistics of the *global* batch under torch.distributed.

    ``nn.SyncBatchNorm`` refuses CPU tensors; this one all-reduces the sums with a
    differentiable all-reduce, so DDP over gloo on CPU
    normalises exactly like one process on the whole batch (within float rounding).
    Same parameters and buffers as BatchNorm1d, so weights load either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (
            self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        ):
            return super().forward(x)
        x32 = x.float()
        n_local = torch.tensor([float(x.shape[0])], device=x.device)
        stats = torch.cat([n_local, x32.sum(0), (x32 * x32).sum(0)])
        stats = _AllReduceSum.apply(stats)
        n = stats[0]
        mean = stats[1 : 1 + x.shape[1]] / n
        var = (stats[1 + x.shape[1] :] / n - mean * mean).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
        out = (x32 - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return out.to(x.dtype)


def _block(n_in: int, n_out: int, cfg: dict) -> list[nn.Module]:
    # no bias before BatchNorm: BN's shift replaces it; a bias there only drifts on rounding noise
    layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not cfg["batchnorm"])]
    if cfg["batchnorm"]:
        layers.append(BatchNorm(n_out, eps=1e-3, momentum=0.01))
    layers.append(nn.LeakyReLU(cfg["leaky_slope"], inplace=True))  # saves a pass over memory
    if cfg["dropout"] > 0:
        layers.append(nn.Dropout(cfg["dropout"]))
    return layers


class KmerVAE(nn.Module):
    """VAE over per-group transformed k-mer profiles; see the module docstring."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        self.config_hash = config_hash(config)
        self.input_ks: tuple[int, ...] = tuple(config["input"]["ks"])
        self.input_layout = Layout(self.input_ks)
        self.input_width = self.input_layout.width
        m = config["model"]
        self.latent_dim: int = int(m["latent"])
        self.logvar_clip = tuple(float(v) for v in m["logvar_clip"])
        widths = [self.input_width, *m["hidden"]]
        self.encoder = nn.Sequential(
            *[layer for a, b in zip(widths, widths[1:]) for layer in _block(a, b, m)]
        )
        self.z_mean = nn.Linear(widths[-1], self.latent_dim)
        self.z_log_var = nn.Linear(widths[-1], self.latent_dim)
        back = [self.latent_dim, *reversed(m["hidden"])]
        self.decoder = nn.Sequential(
            *[layer for a, b in zip(back, back[1:]) for layer in _block(a, b, m)],
            nn.Linear(back[-1], self.input_width),
        )
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def transform(self, matrix: torch.Tensor) -> torch.Tensor:
        """Counts or frequencies of the model's groups (in ``input_ks`` order) → model input."""
        return transform_input(matrix, self.input_layout, self.config["input"]["transform"])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h).clamp(*self.logvar_clip)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """Reconstruction, z_mean, z_log_var; samples z only in training mode.

        ``noise`` (standard normal, shape of z) may be passed so that data-parallel ranks
        use slices of one global draw and match a single process exactly.
        """
        mean, log_var = self.encode(x)
        return self.decoder(sample_z(mean, log_var, self.training, noise)), mean, log_var

    @torch.no_grad()
    def embed(self, matrix, layout: Layout, lengths=None, batch_size: int = 4096) -> np.ndarray:
        """z_mean (float32, n × latent) of counts or frequencies in the store's ``layout``.

        Selects the model's groups itself; ``lengths`` is used by the family models that
        read length (:class:`kmervae.family.FamilyVAE`). Deterministic: eval mode, no sampling.
        """
        require_groups(self.input_ks, layout)
        columns = (
            None if tuple(layout.ks) == self.input_ks else torch.from_numpy(layout.columns_for(self.input_ks))
        )

        def rows(start: int, stop: int) -> torch.Tensor:
            block = torch.as_tensor(np.asarray(matrix[start:stop]))
            return block if columns is None else block[:, columns]

        return encode_in_batches(self, len(matrix), rows, batch_size)


@torch.no_grad()
def encode_in_batches(model, n: int, rows, batch_size: int) -> np.ndarray:
    """z_mean (float32, n × latent) in eval mode; ``rows(start, stop)`` gives a batch of the model's read block."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.empty((n, model.latent_dim), dtype=np.float32)
    try:
        for start in range(0, n, batch_size):
            block = rows(start, start + batch_size)
            mean, _ = model.encode(model.transform(block.to(device)))
            out[start : start + len(block)] = mean.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, beta: float):
    """Batch-mean loss and its parts: (loss, per-row squared error sum, per-row KL).

    The parts are per row (float32) so callers can sum them exactly over many batches.
    """
    sq_err = (recon.float() - x.float()).pow(2).sum(dim=1)
    mean, log_var = mean.float(), log_var.float()
    kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(dim=1)
    loss = (sq_err + beta * kl).mean()
    return loss, sq_err, kl


def group_squared_error(x: torch.Tensor, recon: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Squared error summed over rows and columns within each group (one value per group)."""
    d = (recon.float() - x.float()).pow(2)
    return torch.stack([d[:, g.start : g.stop].sum() for g in layout.groups])


def build_model(config: dict) -> KmerVAE:
    """A freshly initialised model (initialised from torch's global RNG: seed it first).

    The default flat VAE is :class:`KmerVAE`; configs using the model family's keys
    (branches, heads, per-group losses, extra inputs) build :class:`kmervae.family.FamilyVAE`.
    """
    from .family_config import is_family

    if is_family(config):
        from .family import FamilyVAE

        return FamilyVAE(config)
    return KmerVAE(config)


def load_model(model_dir: str | os.PathLike, weights: str = "best") -> KmerVAE:
    """The trained model of ``model_dir`` (``best`` or ``final`` weights), in eval mode on CPU."""
    import yaml
    from safetensors.torch import load_file

    from .config import validate

    model_dir = Path(model_dir)
    config_path = model_dir / "config.yaml"
    weights_path = model_dir / f"{weights}.safetensors"
    for path in (config_path, weights_path):
        if not path.exists():
            raise KmervaeError(f"{path}: missing; is {model_dir} a trained kmervae model directory?")
    config = yaml.safe_load(config_path.read_text())
    validate(config, source=str(config_path))
    model = build_model(config)
    state = load_file(str(weights_path), device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise KmervaeError(f"{weights_path}: weights do not fit {config_path} ({first})") from None
    return model.eval()


def save_weights(model: nn.Module, path: str | os.PathLike, config: dict) -> None:
    """Write plain tensors as safetensors (atomically), with the config hash as metadata."""
    from safetensors.torch import save_file

    from .atomic import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(
            state, str(tmp), metadata={"config_hash": config_hash(config), "config": json.dumps(config)}
        )

"""Layers shared by every body: Linear → BatchNorm → LeakyReLU (→ Dropout) blocks.

Layers start like the Keras model of the paper (Glorot-uniform weights, zero biases,
BatchNorm momentum 0.99 / epsilon 1e-3 in Keras terms) so results are comparable. The
Linear layers that feed a BatchNorm have no bias: BatchNorm's shift makes it redundant
(the function class is the same), and Adam would turn its pure rounding-noise gradient
into steps of the size of the learning rate.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn


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
    differentiable all-reduce, so DDP over gloo on CPU normalises exactly like one process
    on the whole batch (within float rounding). Same parameters and buffers as
    BatchNorm1d, so weights load either way.
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


def block(n_in: int, n_out: int, m: dict) -> list[nn.Module]:
    """One hidden block from the ``model`` section: Linear (→ BatchNorm) → LeakyReLU (→ Dropout)."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not m["batchnorm"])]
    if m["batchnorm"]:
        layers.append(BatchNorm(n_out, eps=1e-3, momentum=0.01))
    layers.append(nn.LeakyReLU(m["leaky_slope"], inplace=True))  # saves a pass over memory
    if m["dropout"] > 0:
        layers.append(nn.Dropout(m["dropout"]))
    return layers


def stack(widths: list[int], m: dict) -> nn.Sequential:
    """Hidden blocks through ``widths`` (``[in, h1, h2]`` → two blocks)."""
    return nn.Sequential(*[layer for a, b in pairwise(widths) for layer in block(a, b, m)])


def glorot(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every Linear layer under ``module``, in order."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

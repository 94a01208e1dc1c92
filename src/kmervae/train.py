"""The training plan: epochs, β warm-up, LR schedules, validation, checkpoints, resume, DDP.

Reproducibility is by construction: everything random in an epoch (batch order,
dropout masks, the reparameterisation noise) is seeded from ``(seed, epoch)``, so a
run resumed from the checkpoint of epoch e repeats the uninterrupted run bit for bit on
CPU, and data-parallel ranks draw slices of one global batch and one global noise
tensor, matching a single process on the same global batch within float rounding.

Warm-up (``loss.warmup_epochs`` = W): epoch e (0-based) trains with β·min(1, e/W), so
epochs 0..W-1 are warm-up and epoch W is the first with the final β. The plateau
scheduler is not stepped during warm-up and starts fresh at epoch W, and the best
checkpoint is chosen from epoch W on only: ``best.safetensors`` is the best *post*-warm-up
epoch (a warm-up epoch is never "best", its loss has a smaller β), and when every epoch
is in warm-up it is the final weights, as the log says. With ``loss.warmup_steps`` = S
(and ``loss.warmup_epochs`` 0) β rises per optimizer step instead, over steps 0..S-1
whatever the epoch's size, and the warm-up epochs are those holding those steps.

The run's log warns about settings that make a run say less than it seems to: a batch
larger than the training split, every epoch inside the β warm-up, a validation split
of fewer than :data:`MIN_VALIDATION_ROWS` rows. The weight files record the lengths of the
training contigs (:mod:`kmervae.lengths`), which embedding checks its input against.

Outputs in ``out_dir`` (rank 0 writes, every file atomically; ``train.log`` ends with the
weights hashes that embeddings and indexes carry): ``config.yaml``,
``checkpoint.pt`` (full state after every epoch, ``torch.load(weights_only=True)``),
``best.safetensors``, ``final.safetensors``, ``history.tsv`` (one row per epoch ever
trained), ``train.log`` (appended) and ``curves.png``/``.pdf``.

Every model trains through its ``loss`` (a :class:`kmervae.vae.losses.LossOutput`) and adds
its diagnostics to each epoch's row: the default model ``mse_`` per k group; models with
per-output losses per output ``mse_``/``bce_`` (gated heads ``gate_acc_``,
``gate_base_``, ``present_``, ``mse_present_``, ``mse_absent_``). With
``training.eval_train_rows`` > 0 every model also reports ``train_eval_loss``: the loss of
a fixed training subset recomputed in eval mode, beside ``val_loss`` (a gap between
``train_loss`` and ``train_eval_loss`` is BatchNorm's train/eval difference, not overfitting).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .io.atomic import atomic_path, files_directory, prepare_output
from .vae.config import canonical, config_hash, dump, resolve
from .data import DatasetBatches
from .errors import KmervaeError
from .lengths import describe as describe_lengths
from .lengths import training_lengths
from .vae.files import build_model, save_weights, upgrade_state, weights_hash
from .progress import progress
from .vae.losses import LossOutput
from .vae.model import VAE

log = logging.getLogger("kmervae.train")

CHECKPOINT_FORMAT = "kmervae-checkpoint"
CHECKPOINT_VERSION = 1
#: config keys that may change when resuming (they do not change what was trained so far)
RESUMABLE_CHANGES = {("training", "epochs"), ("training", "eval_batch_size")}
CURVES_EVERY_SECONDS = 60.0
#: a validation split with fewer rows gives a noisy validation loss (and best epoch): warned
MIN_VALIDATION_ROWS = 100
#: what a model directory holds (and Snakemake's mark on a finished directory output); an
#: existing directory is replaced or trained into only when it holds nothing else
MODEL_DIR = files_directory(
    "kmervae model directory",
    ("config.yaml", "checkpoint.pt", "best.safetensors", "final.safetensors", "history.tsv", "train.log")
    + ("curves.png", "curves.pdf", ".snakemake_timestamp"),
)


# -- schedules --------------------------------------------------------------------------


def warmup_epochs(config: dict, steps_per_epoch: int) -> int:
    """Epochs that train with a β below the final one at some step: ``loss.warmup_epochs``,
    or with ``loss.warmup_steps`` = S > 0 the epochs holding steps 0..S-1."""
    steps = config["loss"]["warmup_steps"]
    return -(-steps // max(1, steps_per_epoch)) if steps else config["loss"]["warmup_epochs"]


def beta_at(config: dict, epoch: int, batch: int = 0, steps_per_epoch: int = 1) -> float:
    """β of 0-based ``epoch`` (and ``batch`` of its ``steps_per_epoch``): linear from 0 to
    ``loss.beta`` over ``loss.warmup_epochs`` epochs, or over ``loss.warmup_steps``
    optimizer steps when that is set (step ``epoch * steps_per_epoch + batch``).

    With ``loss.beta_cycle_epochs`` = C > 0, after the warm-up β restarts every C epochs:
    it rises linearly from 0 over the first half of each cycle and holds ``loss.beta`` for
    the rest (cyclical annealing).
    """
    loss = config["loss"]
    warmup, cycle = warmup_epochs(config, steps_per_epoch), loss["beta_cycle_epochs"]
    if cycle and epoch >= warmup:
        return float(loss["beta"]) * min(1.0, ((epoch - warmup) % cycle) / max(1, cycle // 2))
    if loss["warmup_steps"]:
        return float(loss["beta"]) * min(1.0, (epoch * steps_per_epoch + batch) / loss["warmup_steps"])
    return float(loss["beta"]) * (min(1.0, epoch / warmup) if warmup else 1.0)


def _warmup_setting(config: dict) -> str:
    loss = config["loss"]
    if loss["warmup_steps"]:
        return f"loss.warmup_steps {loss['warmup_steps']}"
    return f"loss.warmup_epochs {loss['warmup_epochs']}"


def cosine_lr(config: dict, epoch: int) -> float:
    """Linear LR warm-up over ``cosine.warmup_epochs``, then cosine decay to ``min_lr`` at the last epoch."""
    t = config["training"]
    lr, low, warm, total = t["lr"], t["cosine"]["min_lr"], t["cosine"]["warmup_epochs"], t["epochs"]
    if epoch < warm:
        return lr * (epoch + 1) / warm
    span = max(1, total - warm - 1)
    return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - warm) / span)))


def make_plateau(optimizer: torch.optim.Optimizer, config: dict):
    p = config["training"]["plateau"]
    # threshold as Keras' min_delta (absolute 1e-4), the setting of the paper's runs
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=p["factor"],
        patience=p["patience"],
        min_lr=p["min_lr"],
        threshold=1e-4,
        threshold_mode="abs",
    )


def _seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed per (run seed, epoch, stream) — streams: 0 noise, 1+rank dropout."""
    return int(
        np.random.SeedSequence([int(seed), int(epoch), int(stream)])
        .generate_state(2, np.uint32)
        .view(np.uint64)[0]
        >> 1
    )


# -- distributed -------------------------------------------------------------------------


class _Dist:
    """Rank, world size and collectives; a no-op single process unless started by torchrun."""

    def __init__(self, device_kind: str):
        self.created = False
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
            self.created = True
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def barrier(self):
        if self.active:
            dist.barrier()

    def close(self):
        if self.created:
            dist.destroy_process_group()


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise KmervaeError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device != "cpu":
        raise KmervaeError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device("cpu")


# -- one epoch ---------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _inputs(model: VAE, batch: torch.Tensor, transformed: bool, device) -> torch.Tensor:
    """Model input of a batch: already transformed (float16 in-memory copy) or transformed here."""
    batch = batch.to(device, non_blocking=True)
    return batch.float() if transformed else model.transform(batch)


class _Objective(nn.Module):
    """``model.loss`` as a module's forward, so DistributedDataParallel sees the pass it syncs."""

    def __init__(self, model: VAE):
        super().__init__()
        self.model = model

    def forward(
        self,
        x: torch.Tensor,
        beta: float,
        noise: torch.Tensor | None = None,
        block: torch.Tensor | None = None,
    ) -> LossOutput:
        """``block``: the batch's stored counts, given only to a model with a consistency term."""
        if block is None:
            return self.model.loss(x, beta, noise)
        return self.model.loss(x, beta, noise, block=block)


def _batch_sums(out: LossOutput, beta: float, rows: int) -> torch.Tensor:
    """(loss, reconstruction, KL, rows) summed over a batch's rows, float64."""
    r, kl = out.reconstruction, out.kl
    total = r.sum()  # the row count filled on the device: no host-to-device copy per batch
    return torch.stack([(r + beta * kl).sum(), total, kl.sum(), total.new_full((), rows, dtype=torch.float64)]).double()


def train_epoch(
    model: VAE, net, optimizer, data: DatasetBatches, config: dict, epoch: int, device, world: _Dist
):
    """One pass over the training split; returns summed (loss, reconstruction, KL, rows) over all ranks.

    ``net`` is ``model``'s objective (:class:`_Objective`, DDP-wrapped when distributed).
    """
    seed = config["training"]["seed"]
    torch.manual_seed(_seed(seed, epoch, 1 + world.rank))  # dropout masks
    # the noise is drawn where the model runs (reproducible per device kind; on CPU as ever)
    noise_gen = torch.Generator(device=device).manual_seed(_seed(seed, epoch, 0))
    precision = config["training"]["precision"]
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    guard = _FiniteGuard(device, world, epoch)
    thins = config["loss"]["consistency"] > 0 and not data.train_transformed
    model.train()
    n_batches = steps_per_epoch(data)
    bar_context = (
        progress(f"epoch {epoch + 1}", total=n_batches, unit="batch") if world.rank == 0 else _NoProgress()
    )
    with bar_context as bar:
        for b, (part, n, lo, hi) in enumerate(_rank_batches(data, epoch, world)):
            beta = beta_at(config, epoch, b, n_batches)
            noise = torch.randn((n, model.latent_dim), generator=noise_gen, device=device)
            part = part.to(device, non_blocking=True)
            x = _inputs(model, part, data.train_transformed, device)
            counts = part if thins else None
            with _autocast(device, precision):
                out = net(x, beta, noise[lo:hi], counts)
            guard.step(b, out.loss)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; weight each rank by its share of the global batch
            (out.loss * ((hi - lo) * world.world / n)).backward()
            optimizer.step()
            with torch.no_grad():
                sums += _batch_sums(out, beta, hi - lo)
            bar.update(1)
    guard.check()
    if world.rank == 0:
        log.info("epoch %d: the training loop waited %.2f s for the data loader", epoch + 1, data.wait_seconds)
    return world.sum(sums).cpu().numpy()


def steps_per_epoch(data: DatasetBatches) -> int:
    """Optimizer steps (global batches) of one epoch."""
    return math.ceil(data.n_train / data.batch_size)


def _rank_batches(data: DatasetBatches, epoch: int, world: _Dist):
    """(this rank's part of a global batch, global rows n, the part's rows [lo, hi) in it).

    Ranks slice every global batch, except when streaming sharded: each rank then reads
    its own chunks and the loader says how large every rank's part is.
    """
    if data.sharded:
        sizes = data.shard_sizes(epoch)
        for part, row in zip(data.train_batches(epoch), sizes, strict=True):
            lo = int(row[: world.rank].sum())
            yield part, int(row.sum()), lo, lo + int(row[world.rank])
        return
    for batch in data.train_batches(epoch, min_rows=max(2, world.world)):
        n = len(batch)
        lo, hi = (n * world.rank) // world.world, (n * (world.rank + 1)) // world.world
        yield batch[lo:hi], n, lo, hi


#: training steps between looks at the non-finite-loss guard (each look syncs host and device)
FINITE_CHECK_EVERY = 64


class _FiniteGuard:
    """Stops training at a non-finite loss without a host-device sync per step: the first
    bad batch's index and loss are kept on the device and looked at every
    :data:`FINITE_CHECK_EVERY` steps and at the end of the epoch (all ranks together).
    Steps after a bad batch until the check only train a model that is then discarded."""

    NONE = 2**62

    def __init__(self, device, world: _Dist, epoch: int):
        self.world, self.epoch = world, epoch
        self.first = torch.full((), self.NONE, dtype=torch.int64, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def step(self, b: int, loss: torch.Tensor) -> None:
        with torch.no_grad():
            loss = loss.detach().float()
            new = ~torch.isfinite(loss) & (self.first == self.NONE)
            self.first = torch.where(new, b, self.first)
            self.value = torch.where(new, loss, self.value)
        if (b + 1) % FINITE_CHECK_EVERY == 0:
            self.check()

    def check(self) -> None:
        first = self.first.clone()
        if self.world.active:  # every rank must stop together, at the earliest bad batch of any
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        b = int(first.item())
        if b != self.NONE:
            value = float(self.value.item()) if int(self.first.item()) == b else math.nan
            raise _NonFinite(self.epoch, b, value)


class _NoProgress(contextlib.nullcontext):
    """Ranks other than 0 stay quiet."""

    def __enter__(self):
        return self

    def update(self, n=1):
        pass


class _NonFinite(Exception):
    def __init__(self, epoch: int, batch: int, value: float):
        super().__init__(epoch, batch, value)
        self.epoch, self.batch, self.value = epoch, batch, value


@torch.no_grad()
def evaluate(
    model: VAE, data: DatasetBatches, beta: float, device, world: _Dist, batches=None, transformed=False
) -> dict:
    """Loss, KL, MSE and the model's diagnostics on the whole validation split, eval mode, fp32.

    Batches are dealt round-robin to the ranks and the sums all-reduced. ``batches``
    (model inputs when ``transformed``) replaces the validation split, e.g. a training subset.
    """
    model.eval()
    names = list(model.metric_units)
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    metrics = torch.zeros(len(names), 2, dtype=torch.float64, device=device)
    for i, batch in enumerate(data.validation_batches() if batches is None else batches):
        if i % world.world != world.rank:
            continue
        x = _inputs(model, batch, transformed, device)
        out = model.loss(x, beta, metrics=True)
        sums += _batch_sums(out, beta, len(x))
        if names:
            metrics += torch.stack([out.metrics[k] for k in names]).to(device)
    s = world.sum(sums).cpu().numpy()
    n = s[3]
    result = {"val_loss": s[0] / n, "kl": s[2] / n, "mse": s[1] / n / model.input_width}
    result.update(model.finish_metrics(dict(zip(names, world.sum(metrics).cpu()))))
    return result


# -- checkpoint and outputs ---------------------------------------------------------------


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: Path, model, optimizer, scheduler, config: dict, epoch: int, history: list, best: dict
):
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "epoch": epoch,  # epochs completed
        "config": canonical(config),
        "config_hash": config_hash(config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "rng": _rng_state(),
        "history": history,
        "best": best,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device) -> dict:
    """The state saved by :func:`save_checkpoint`, or one error line saying why ``path`` is not one."""
    if path.stat().st_size == 0:
        raise KmervaeError(
            f"{path}: the checkpoint is empty (a run killed while writing it?); delete it to start afresh"
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # noqa: BLE001 (torch advises unsafe loading here; the file is simply not ours)
        state = None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise KmervaeError(f"{path}: not a kmervae checkpoint (unreadable or written by something else)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise KmervaeError(f"{path}: checkpoint version {state.get('version')} is not supported")
    return state


def _check_resumable(old: dict, new: dict, path: Path) -> None:
    def leaves(tree, prefix=()):
        for k, v in tree.items():
            yield from leaves(v, prefix + (k,)) if isinstance(v, dict) else [(prefix + (k,), v)]

    a, b = dict(leaves(canonical(old))), dict(leaves(canonical(new)))
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]
    if changed:
        key = ".".join(changed[0])
        raise KmervaeError(
            f"{path}: cannot resume: {key} was {a.get(changed[0])!r} in the checkpoint and is "
            f"{b.get(changed[0])!r} now (only training.epochs may change when resuming)"
        )


HISTORY_FIXED = ["epoch", "train_loss", "train_kl", "train_mse", "val_loss", "kl", "mse"]
HISTORY_TAIL = ["lr", "beta", "warmup", "epoch_seconds", "samples_per_s", "best"]


def write_history(path: Path, history: list[dict]) -> None:
    if not history:
        return
    groups = [k for k in history[0] if k not in HISTORY_FIXED and k not in HISTORY_TAIL]
    columns = HISTORY_FIXED + groups + HISTORY_TAIL
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\t".join(columns) + "\n")
            for row in history:
                fh.write("\t".join(_fmt(row[c]) for c in columns) + "\n")


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    return str(v)


def plot_curves(out_dir: Path, history: list[dict], config: dict) -> None:
    """curves.png/.pdf: losses, KL, per-group MSE, learning rate and speed, warm-up shaded."""
    from .plots import figure, save_figure

    if not history:
        return
    epochs = [r["epoch"] for r in history]
    fig, axes = figure(2, 3, figsize=(15, 8))
    axes = axes.ravel()
    panels = [
        (
            "loss",
            [("train_loss", "train"), ("val_loss", "validation")]
            + ([("train_eval_loss", "train (eval mode)")] if "train_eval_loss" in history[0] else []),
            True,
        ),
        ("KL (per row)", [("train_kl", "train"), ("kl", "validation")], True),
        ("reconstruction MSE", [("train_mse", "train"), ("mse", "validation")], True),
        (
            "validation MSE per k group",
            [
                (k, k[4:])
                for k in history[0]
                if k.startswith("mse_") and not k.startswith(("mse_present_", "mse_absent_"))
            ],
            True,
        ),
        ("learning rate", [("lr", "lr")], True),
        ("β", [("beta", "β")], False),
    ]
    warm = sum(bool(r["warmup"]) for r in history)  # the warm-up epochs come first
    for ax, (title, series, logy) in zip(axes, panels):
        for key, label in series:
            values = [r[key] for r in history]
            ax.plot(epochs, values, label=label, lw=1)
        if warm:
            ax.axvspan(0.5, warm + 0.5, color="0.85", zorder=0, label="β warm-up")
        if logy and all(r[k] > 0 for r in history for k, _ in series):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    best = [r["epoch"] for r in history if r["best"]]
    if best:
        axes[0].axvline(best[-1], color="k", ls=":", lw=1, label="best checkpoint")
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "curves")


# -- the plan ------------------------------------------------------------------------------


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """``training.optimizer``: Adam (weight decay as L2 in the gradient) or AdamW (decoupled)."""
    t = config["training"]
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[t["optimizer"]]
    # fused: one kernel over all parameters, ~5x faster than the foreach version on CPU
    return kind(model.parameters(), lr=t["lr"], eps=t["adam_eps"], weight_decay=t["weight_decay"], fused=True)


def train(
    config: dict,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "auto",
    threads: int | None = None,
    *,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train ``config`` on the dataset store ``data_path`` into ``out_dir``; return ``out_dir``.

    ``resume`` continues from ``out_dir/checkpoint.pt`` (starting fresh when there is
    none). ``stop_after_epoch`` ends this run after that many epochs in total, as if it
    had been killed there (tests and time-boxed jobs). Started by ``torchrun`` with
    WORLD_SIZE > 1 it trains data-parallel (gloo on CPU, NCCL on CUDA).
    """
    config = resolve(config)  # checked; a saved (canonical) config gets its omitted keys back
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.exists() and not resume:
        raise KmervaeError(
            f"{out_dir}: holds a checkpoint from an earlier run; use --resume or another directory"
        )
    if threads is not None:
        if threads < 1:
            raise KmervaeError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    kind = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    if kind == "cuda" and torch.cuda.is_available():
        # one GPU per rank, chosen before NCCL starts (it would otherwise put every rank on GPU 0)
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    world = _Dist(kind)
    dev = pick_device(device, world.local_rank)
    handler, created, failed = None, False, True
    try:
        if world.rank == 0:
            prepare_output(out_dir, MODEL_DIR)
            created = not out_dir.exists()
            handler = _log_to(out_dir / "train.log")
        run = _Run.begin(config, Path(data_path), out_dir, resume, dev, world)
        done = run.fit(stop_after_epoch)
        failed = False
        return done
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        world.close()
        if failed and created and not checkpoint_path.exists():
            shutil.rmtree(out_dir, ignore_errors=True)  # no epoch finished: nothing to resume or keep


def _log_to(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


@dataclass
class _Run:
    """One training run: the model and its objective, data, optimizer, schedule and history."""

    config: dict
    data_path: Path
    out_dir: Path
    dev: torch.device
    world: _Dist
    model: VAE
    net: nn.Module
    data: DatasetBatches
    optimizer: torch.optim.Optimizer
    scheduler: object
    start: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"score": math.inf, "epoch": 0})

    @property
    def warmup(self) -> int:
        """The β warm-up's epochs (:func:`warmup_epochs`)."""
        return warmup_epochs(self.config, steps_per_epoch(self.data))

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @classmethod
    def begin(cls, config, data_path: Path, out_dir: Path, resume: bool, dev, world: _Dist) -> _Run:
        """Build the model and the data, restore the checkpoint when resuming, announce the run."""
        t = config["training"]
        torch.manual_seed(t["seed"])
        model = build_model(config).to(dev)
        data = DatasetBatches(
            data_path,
            tuple(model.input_ks),
            t["batch_size"],
            t["seed"],
            t["in_memory_budget_bytes"],
            t["shuffle_buffer_rows"],
            t["train_split"],
            t["validation_split"],
            t["eval_batch_size"],
            lengths=model.reads_length,
            device=dev,
            rank=world.rank,
            world=world.world,
            transform=model.transform if t["float16_inputs"] else None,
            transformed_width=model.input_width,
        )
        optimizer = make_optimizer(model, config)
        scheduler = make_plateau(optimizer, config) if t["schedule"] == "plateau" else None
        net: nn.Module = _Objective(model)
        if world.active:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None, forward_sync_buffers=False
            )
        run = cls(config, data_path, out_dir, dev, world, model, net, data, optimizer, scheduler)
        if resume and run.checkpoint_path.exists():
            run.restore()
        elif resume:
            log.info("no checkpoint in %s: starting from epoch 1", out_dir)
        if world.rank == 0:
            run.announce()
        return run

    def restore(self) -> None:
        state = load_checkpoint(self.checkpoint_path, self.dev)
        _check_resumable(state["config"], self.config, self.checkpoint_path)
        self.model.load_state_dict(upgrade_state(state["model"], self.model))
        self.optimizer.load_state_dict(state["optimizer"])
        for p in self.model.parameters():
            if (
                "exp_avg" in self.optimizer.state.get(p, {})
                and self.optimizer.state[p]["exp_avg"].shape != p.shape
            ):
                raise KmervaeError(
                    f"{self.checkpoint_path}: the optimizer state does not fit the model's parameters "
                    "(a checkpoint of an earlier kmervae version?); train into a new directory"
                )
        if self.scheduler is not None and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.start, self.history, self.best = int(state["epoch"]), list(state["history"]), dict(state["best"])
        log.info(
            "resuming %s after epoch %d of %d", self.out_dir, self.start, self.config["training"]["epochs"]
        )

    def announce(self) -> None:
        """Rank 0: config.yaml, the data and model lines of the log, the training lengths, warnings."""
        with atomic_path(self.out_dir / "config.yaml") as tmp:
            tmp.write_text(dump(self.config))
        log.info("%s", self.data.describe())
        self.model.training_lengths = training_lengths(self.data_path, self.config["training"]["train_split"])
        summary = describe_lengths(self.model.training_lengths)
        log.info("training split: %s (recorded in the weight files)", summary)
        self.warn_small()
        log.info(
            "model %s (%s parameters), device %s, %d rank(s), %d thread(s), %s",
            self.model.config_hash,
            f"{self.model.parameter_count():,}",
            self.dev,
            self.world.world,
            torch.get_num_threads(),
            self.config["training"]["precision"],
        )

    def warn_small(self) -> None:
        """Warnings about a batch, a warm-up or a validation split that make the run less than it seems."""
        t, warmup = self.config["training"], self.warmup
        if t["batch_size"] > self.data.n_train:
            log.warning(
                "training.batch_size %d is larger than the %d rows of the training split: "
                "every epoch is one batch (one optimizer step)",
                t["batch_size"],
                self.data.n_train,
            )
        if t["epochs"] <= warmup:
            log.warning(
                "all %d epochs are in the β warm-up (%s): β never reaches %g, "
                "and best.safetensors will be the final weights",
                t["epochs"],
                _warmup_setting(self.config),
                self.config["loss"]["beta"],
            )
        if self.data.n_val < MIN_VALIDATION_ROWS:
            log.warning(
                "the validation split has only %d rows (fewer than %d): the validation loss, and so "
                "the best epoch, is noisy",
                self.data.n_val,
                MIN_VALIDATION_ROWS,
            )

    def fit(self, stop_after_epoch: int | None) -> Path:
        t = self.config["training"]
        end = t["epochs"] if stop_after_epoch is None else min(t["epochs"], stop_after_epoch)
        last_plot = time.monotonic()
        for epoch in range(self.start, end):
            row = self.epoch(epoch)
            if self.world.rank == 0:
                self.record(row)
                if time.monotonic() - last_plot > CURVES_EVERY_SECONDS:
                    plot_curves(self.out_dir, self.history, self.config)
                    last_plot = time.monotonic()
            self.world.barrier()
        if self.world.rank == 0:
            self.finish(end)
        self.world.barrier()
        return self.out_dir

    def learning_rate(self, epoch: int) -> float:
        """Set and return the LR of ``epoch``; at the end of β warm-up, reset the plateau and best."""
        t, warmup_end = self.config["training"], self.warmup
        if epoch == warmup_end and warmup_end > 0:
            # warm-up is over: losses with the final β are not comparable with earlier ones
            if self.scheduler is not None:
                self.scheduler = make_plateau(self.optimizer, self.config)
            self.best = {"score": math.inf, "epoch": 0}
            log.info(
                "β warm-up over after epoch %d: plateau scheduler reset; the best checkpoint is chosen "
                "from epoch %d on",
                epoch,
                epoch + 1,
            )
        if t["schedule"] == "cosine":
            lr = cosine_lr(self.config, epoch)
        elif t["schedule"] == "constant":
            lr = t["lr"]
        else:
            lr = self.optimizer.param_groups[0]["lr"]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def epoch(self, epoch: int) -> dict:
        """Train and validate one epoch; step the schedule; return its history row."""
        lr = self.learning_rate(epoch)
        began = time.perf_counter()
        try:
            sums = train_epoch(
                self.model, self.net, self.optimizer, self.data, self.config, epoch, self.dev, self.world
            )
        except _NonFinite as bad:
            kept = f"{self.checkpoint_path} (epoch {epoch}) is kept" if epoch else "no epoch had completed"
            raise KmervaeError(
                f"{self.data_path}: the training loss became {bad.value} at epoch {bad.epoch + 1}, batch {bad.batch + 1}; "
                f"training stopped, {kept} (try a lower training.lr or check the data)"
            ) from None
        train_seconds = time.perf_counter() - began
        steps = steps_per_epoch(self.data)
        beta = beta_at(self.config, epoch, steps - 1, steps)  # the β of the epoch's last step
        val = self.validate(beta, epoch)
        if self.scheduler is not None and epoch >= self.warmup:
            self.scheduler.step(val["val_loss"])
        # a warm-up epoch is never the best: its loss has a smaller β than the final one
        improved = epoch >= self.warmup and val["val_loss"] < self.best["score"]
        if improved:
            self.best = {"score": float(val["val_loss"]), "epoch": epoch + 1}
        n = sums[3]
        row = {
            "epoch": epoch + 1,
            "train_loss": float(sums[0] / n),
            "train_kl": float(sums[2] / n),
            "train_mse": float(sums[1] / n / self.model.input_width),
            **{k: float(v) for k, v in val.items()},
            "lr": float(lr),
            "beta": beta,
            "warmup": epoch < self.warmup,
            "epoch_seconds": round(time.perf_counter() - began, 3),
            "samples_per_s": round(float(n) / train_seconds, 1),
            "best": bool(improved),
        }
        self.history.append(row)
        return row

    def validate(self, beta: float, epoch: int) -> dict:
        """Validation metrics (and the eval-mode loss of a training subset when configured)."""
        val = evaluate(self.model, self.data, beta, self.dev, self.world)
        rows = self.config["training"]["eval_train_rows"]
        if rows:
            subset = self.data.train_subset_batches(rows)
            subset_val = evaluate(
                self.model, self.data, beta, self.dev, self.world, subset, self.data.train_transformed
            )
            val = {**val, "train_eval_loss": subset_val["val_loss"]}
        if not math.isfinite(val["val_loss"]):
            raise KmervaeError(
                f"{self.data_path}: the validation loss became {val['val_loss']} at epoch {epoch + 1}; "
                f"training stopped, {self.checkpoint_path} (epoch {epoch}) is kept"
            )
        return val

    def record(self, row: dict) -> None:
        """Rank 0: best weights, checkpoint, history and the log line of one epoch."""
        if row["best"]:
            save_weights(self.model, self.out_dir / "best.safetensors", self.config)
        save_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            self.scheduler,
            self.config,
            row["epoch"],
            self.history,
            self.best,
        )
        write_history(self.out_dir / "history.tsv", self.history)
        log.info(
            "epoch %d/%d: train %.4f, validation %.4f (KL %.3f, MSE %.5f), lr %.3g, β %.4f, %.1f s, %.0f rows/s%s",
            row["epoch"],
            self.config["training"]["epochs"],
            row["train_loss"],
            row["val_loss"],
            row["kl"],
            row["mse"],
            row["lr"],
            row["beta"],
            row["epoch_seconds"],
            row["samples_per_s"],
            ", best" if row["best"] else "",
        )

    def finish(self, end: int) -> None:
        """Rank 0: final history and curves; final weights when all epochs ran (and best = final
        when no epoch after the β warm-up ran)."""
        finished = end == self.config["training"]["epochs"]
        # no epoch after the β warm-up: best = final (a warm-up epoch is never the best)
        best_is_final = finished and self.best["epoch"] <= self.warmup
        if best_is_final:
            self.best = {"score": float(self.history[-1]["val_loss"]), "epoch": end}
            self.history[-1]["best"] = True
        write_history(self.out_dir / "history.tsv", self.history)
        plot_curves(self.out_dir, self.history, self.config)
        if finished:
            save_weights(self.model, self.out_dir / "final.safetensors", self.config)
            if best_is_final:
                save_weights(self.model, self.out_dir / "best.safetensors", self.config)
                log.info("all %d epochs were in the β warm-up: best = final (epoch %d)", end, end)
            log.info(
                "finished %d epochs; best epoch %d (validation loss %.4f); weights best %s, final %s",
                end,
                self.best["epoch"],
                self.best["score"],
                weights_hash(self.out_dir / "best.safetensors"),
                weights_hash(self.out_dir / "final.safetensors"),
            )


def train_in_work_dir(
    config: dict,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    device: str = "auto",
    threads: int | None = None,
) -> Path:
    """Train in a directory under ``work_dir`` (resuming its checkpoint), then move it to ``out_dir``.

    For workflow managers that delete an unfinished output before redoing a job
    (Snakemake does, even with ``--rerun-incomplete``): the work directory survives an
    interruption, so the next attempt continues after the last finished epoch instead of
    at epoch 1. It is named by the config hash and the dataset's metadata (its
    ``zarr.json``: sources, provenance, n), so a changed config or dataset starts afresh
    rather than resuming another run's checkpoint.
    """
    import hashlib

    from .io.atomic import publish

    data_meta = Path(data_path) / "zarr.json"
    if not data_meta.is_file():
        raise KmervaeError(f"{data_path}: not a dataset store (no zarr.json)")
    key = hashlib.sha256(config_hash(config).encode() + data_meta.read_bytes()).hexdigest()[:16]
    work = Path(work_dir) / key
    if int(os.environ.get("RANK", "0")) == 0:
        prepare_output(out_dir, MODEL_DIR)  # refuse a foreign directory before training, not after
    try:
        train(config, data_path, work, resume=True, device=device, threads=threads)
        if int(os.environ.get("RANK", "0")) == 0:
            publish(work, out_dir, MODEL_DIR)
    finally:
        with contextlib.suppress(OSError):
            Path(work_dir).rmdir()  # only when no other run's work is left there
    return Path(out_dir)

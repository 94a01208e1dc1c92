"""Training throughput of the default model: fp32/bf16 x in-memory/streaming, the data
loader alone, a per-phase profile of the training step, and the Keras/JAX reference.

    .venv/bin/python bench/train.py                       # torch only
    .venv/bin/python bench/train.py --keras-python /tmp/kerasjax/bin/python

Random Poisson counts (20,480 training rows by default, batch 1024) in a store under a
temporary directory; every torch number is the real ``kmervae.train.train`` loop
(data loading and CLR included) with the median samples/s of the epochs after the
first. Machines are shared: read the numbers relative to each other within one run,
next to the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kmervae.vae import config as cfg
from kmervae.data import DatasetBatches
from kmervae.kmers import Layout
from kmervae.vae.files import build_model
from kmervae.io.store import StoreWriter
from kmervae.train import train

HERE = Path(__file__).resolve().parent


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_dataset(path: Path, n_train: int, n_val: int, seed: int = 0) -> None:
    layout = Layout()
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    split = np.zeros(n, np.int8)
    split[rng.choice(n, n_val, replace=False)] = 1
    with StoreWriter(path, layout, chunk_rows=4096, extra=("sample", "split")) as w:
        for a in range(0, n, 4096):
            b = min(a + 4096, n)
            counts = rng.poisson(rng.gamma(2.0, 2.0, size=(b - a, layout.width))).astype(np.uint32)
            w.append(
                [f"r{i}" for i in range(a, b)],
                np.full(b - a, 5000),
                counts,
                sample=["s"] * (b - a),
                split=split[a:b],
            )


def loader_rows_per_s(data: DatasetBatches, model, transform: bool) -> float:
    start, rows = time.perf_counter(), 0
    for batch in data.train_batches(0):
        if transform:
            model.transform(batch)
        rows += len(batch)
    return rows / (time.perf_counter() - start)


def endless_batches(data: DatasetBatches):
    epoch = 0
    while True:
        yield from data.train_batches(epoch)
        epoch += 1


def profile_step(config: dict, data: DatasetBatches, steps: int, precision: str) -> dict:
    """Seconds per phase of the training step (the same calls as kmervae.train.train_epoch)."""
    torch.manual_seed(0)
    model = build_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7, fused=True)
    phases = dict.fromkeys(
        ["batch gathering", "CLR transform", "forward", "loss", "backward", "optimiser"], 0.0
    )
    batches = endless_batches(data)
    ctx = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if precision == "bf16"
        else (lambda: torch.autocast("cpu", enabled=False))
    )
    for i in range(steps + 2):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        x = model.transform(batch)
        t2 = time.perf_counter()
        with ctx():
            recon, mean, log_var = model(x)
        t3 = time.perf_counter()
        loss = model.loss_of(x, recon, mean, log_var, 0.05).loss
        t4 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t5 = time.perf_counter()
        opt.step()
        t6 = time.perf_counter()
        if i >= 2:  # the first steps allocate
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                phases[name] += dt / steps
    return phases


def op_table(config: dict, data: DatasetBatches, steps: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7, fused=True)
    batches = endless_batches(data)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            x = model.transform(next(batches))
            recon, mean, log_var = model(x)
            loss = model.loss_of(x, recon, mean, log_var, 0.05).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)


def rss_child(mode: str, data_path: str, buffer_rows: int) -> None:
    """In a fresh process: peak RSS (MB) after opening the store, and after one epoch of batches."""
    data = DatasetBatches(data_path, Layout().ks, 1024, 42, 1 << 40 if mode == "memory" else 0, buffer_rows)
    if mode != "open":
        for batch in data.train_batches(0):
            data_model_input = batch  # noqa: F841 (the batch is what training holds)
    # VmHWM is this process's own peak (ru_maxrss would include the parent's from before exec)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(peak_kb / 1024)


def peak_rss_mb(mode: str, data_path: Path, buffer_rows: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", mode, str(data_path), str(buffer_rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def torch_run(config: dict, data_path: Path, out: Path, threads: int) -> dict:
    train(config, data_path, out, device="cpu", threads=threads)
    rows = [line.split("\t") for line in (out / "history.tsv").read_text().splitlines()]
    rows = [dict(zip(rows[0], r)) for r in rows[1:]]
    speeds = [float(r["samples_per_s"]) for r in rows[1:]] or [float(rows[0]["samples_per_s"])]
    return {
        "samples_per_s": statistics.median(speeds),
        "epochs": speeds,
        "val_loss": float(rows[-1]["val_loss"]),
    }


def keras_run(args, inputs) -> dict | None:
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    if args.threads == 1:  # match torch's single intra-op thread
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    out = subprocess.run(
        [
            args.keras_python,
            str(HERE / "keras_vae.py"),
            str(inputs[0]),
            str(inputs[1]),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        print(f"keras reference failed:\n{out.stderr[-2000:]}")
        return None
    k = json.loads(out.stdout.strip().splitlines()[-1])
    speed = statistics.median(k["samples_per_s"][1:] or k["samples_per_s"])
    print(
        f"keras {k['keras']}/{k['backend']} fp32 in memory {speed:8,.0f} samples/s   "
        f"val loss {k['val_loss']:.2f}   load {load_average()}",
        flush=True,
    )
    return {
        "samples_per_s": speed,
        "epochs": k["samples_per_s"][1:] or k["samples_per_s"],
        "val_loss": k["val_loss"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20480, help="training rows")
    ap.add_argument("--val-rows", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--rss-rows", type=int, default=0, help="also measure streaming RSS on a store this big")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds of the training runs")
    ap.add_argument("--keras-python", help="python of a venv with keras + jax, for the reference")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="subset of: loader rss profile fp32-mem bf16-mem fp32-stream bf16-stream keras",
    )
    ap.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], args.rss_child[1], int(args.rss_child[2]))
        return 0
    only = set(args.only) if args.only else None
    wanted = lambda name: only is None or name in only  # noqa: E731
    torch.set_num_threads(args.threads)

    print(
        f"# kmervae bench/train.py — torch {torch.__version__}, {args.threads} threads, "
        f"{os.cpu_count()} CPUs; load average {load_average()}"
    )
    base = [
        f"training.epochs={args.epochs}",
        f"training.batch_size={args.batch_size}",
        "loss.warmup_epochs=0",
        "training.shuffle_buffer_rows=8192",
    ]
    config = cfg.load(None, base)
    results = {}
    with tempfile.TemporaryDirectory(prefix="kmervae-bench-") as tmp:
        tmp = Path(tmp)
        data_path = tmp / "bench.zarr"
        make_dataset(data_path, args.rows, args.val_rows)
        model = build_model(config)
        t = config["training"]

        def batches(in_memory: bool) -> DatasetBatches:
            return DatasetBatches(
                data_path,
                tuple(config["input"]["ks"]),
                args.batch_size,
                42,
                t["in_memory_budget_bytes"] if in_memory else 0,
                8192,
            )

        if wanted("loader"):
            print("\n## data loader alone (rows/s, one epoch)")
            for in_memory in (True, False):
                data = batches(in_memory)
                raw = loader_rows_per_s(data, model, transform=False)
                clr = loader_rows_per_s(data, model, transform=True)
                mode = "in memory" if in_memory else "streaming"
                print(f"{mode:10s}  batches {raw:12,.0f}   batches + CLR {clr:10,.0f}")
                results[f"loader-{'mem' if in_memory else 'stream'}"] = clr

        if wanted("rss"):
            print("\n## peak RSS of one epoch of batches (fresh process each)")
            stores = [(data_path, args.rows + args.val_rows)]
            if args.rss_rows:
                big = tmp / "big.zarr"
                make_dataset(big, args.rss_rows, args.rss_rows // 10)
                stores.append((big, args.rss_rows + args.rss_rows // 10))
            for path, n in stores:
                data_mb = n * model.input_width * 4 / 2**20
                print(f"{n:,} rows ({data_mb:,.0f} MB as float32):")
                print(f"  open the store only          {peak_rss_mb('open', path, 8192):8,.0f} MB")
                if n == stores[0][1]:
                    print(f"  in memory                    {peak_rss_mb('memory', path, 8192):8,.0f} MB")
                for buffer_rows in (8192, 65536):
                    buffer_mb = buffer_rows * model.input_width * 4 / 2**20
                    print(
                        f"  streaming, buffer {buffer_rows:6,d} rows {peak_rss_mb('stream', path, buffer_rows):8,.0f} MB "
                        f"(buffer {buffer_mb:,.0f} MB)",
                        flush=True,
                    )

        if wanted("profile"):
            data = batches(True)
            for precision in ("fp32", "bf16"):
                phases = profile_step(config, data, args.profile_steps, precision)
                total = sum(phases.values())
                print(
                    f"\n## one training step, {precision} ({args.batch_size} rows): {total * 1000:.0f} ms "
                    f"= {args.batch_size / total:,.0f} samples/s; load {load_average()}"
                )
                for name, dt in phases.items():
                    print(f"  {name:16s} {dt * 1000:8.1f} ms  {100 * dt / total:5.1f} %")
            print("\n## top operators, fp32 (torch.profiler)")
            print(op_table(config, data, args.profile_steps))

        print(
            f"\n## training (kmervae.train.train, {args.epochs} epochs of {args.rows:,} rows; "
            f"median samples/s after epoch 1, validation loss after the last epoch; "
            f"{args.repeat} interleaved round(s), each run with the load average when it ended)"
        )
        keras_inputs = None
        if args.keras_python and wanted("keras"):
            data = batches(True)
            keras_inputs = tmp / "train.npy", tmp / "val.npy"
            np.save(keras_inputs[0], model.transform(data._train).numpy())
            np.save(keras_inputs[1], model.transform(data._val).numpy())
            del data
        runs: dict[str, list[dict]] = {}
        for round_ in range(args.repeat):
            for precision in ("fp32", "bf16"):
                for mode in ("mem", "stream"):
                    name = f"{precision}-{mode}"
                    if not wanted(name):
                        continue
                    budget = t["in_memory_budget_bytes"] if mode == "mem" else 0
                    c = cfg.resolve(
                        config, {"training": {"precision": precision, "in_memory_budget_bytes": budget}}
                    )
                    r = torch_run(c, data_path, tmp / f"{name}-{round_}", args.threads)
                    runs.setdefault(name, []).append(r)
                    print(
                        f"torch {precision} {'in memory' if mode == 'mem' else 'streaming':10s} "
                        f"{r['samples_per_s']:8,.0f} samples/s   val loss {r['val_loss']:.2f}   "
                        f"load {load_average()}",
                        flush=True,
                    )
            if keras_inputs:
                r = keras_run(args, keras_inputs)
                if r:
                    runs.setdefault("keras", []).append(r)
        for name, rs in runs.items():
            epochs = [e for r in rs for e in r["epochs"]]
            results[name] = {
                "samples_per_s": statistics.median(epochs),
                "best": max(epochs),
                "val_loss": rs[-1]["val_loss"],
            }

    ref = results.get("keras", results.get("fp32-mem"))
    if ref:
        name = "Keras/JAX fp32 in memory" if "keras" in results else "torch fp32 in memory"
        print(f"\n## all rounds: median and best epoch (samples/s), relative to {name}")
        print(f"  {'run':12s} {'median':>8s} {'ratio':>6s} {'best':>8s} {'ratio':>6s}  val loss")
        for key, r in results.items():
            if isinstance(r, dict):
                print(
                    f"  {key:12s} {r['samples_per_s']:8,.0f} {r['samples_per_s'] / ref['samples_per_s']:5.2f}x "
                    f"{r['best']:8,.0f} {r['best'] / ref['best']:5.2f}x  {r['val_loss']:.2f}"
                )
    print(f"# load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

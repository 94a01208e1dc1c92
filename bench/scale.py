"""The scale run: about a million real-sequence contigs through the whole pipeline, stage by stage.

    .venv/bin/python bench/scale.py --genomes DIR --workdir /data/scale            # the 1 M run
    .venv/bin/python bench/scale.py --genomes resources/demo --seeds 2 --workdir /tmp/s --map-sample 0

Contigs of 1-3 kb (log-uniform) are cut from every genome FASTA in ``--genomes`` with many
seeds (``kmervae.chop_genomes`` once per seed, each seed's IDs prefixed ``s<seed>_``), split
round-robin into ``--samples`` samples, then each stage runs as the ``kmervae`` command a
user would type, in its own process: count (per sample) -> select 1 kb -> merge -> train
(``--epochs``, streaming) -> embed -> index (``auto`` under ``--memory-gb``) -> query of new
contigs from FASTA (one more seed, never trained on) -> spearman (50 k pool) -> map.

For each stage it prints wall time, CPU time (user + system of the stage's processes) and
peak RSS (the largest of its processes), and beside them a projection to ``--project``
contigs on the same cores: time scaled linearly with the rows a stage handles, except the
spearman pool (fixed, not scaled), the query (the same queries; IVF lists grow as the
square root of n) and the map, projected to the paper's 4.8 M-point map as n log n.
Memory: every stage but the index and the map is bounded by its chunk or buffer size, so
its projection is the measured peak; the index's is ``kmervae.index.plan_index``'s
estimate for the projected size; the map's is scaled linearly with the mapped points.
Results go to
``WORKDIR/scale.json``; a rerun skips the stages already measured (``--redo STAGE ...``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KMERVAE = [sys.executable, "-m", "kmervae"]
PAPER_MAP_POINTS = 4_800_000
STAGES = ("count", "select", "merge", "train", "embed", "index", "query", "spearman", "map")


def run_measured(commands: list[list[str]], log: Path, parallel: int = 1) -> dict:
    """Run ``commands`` (at most ``parallel`` at once); wall, CPU and the largest peak RSS."""
    start, cpu, peak = time.perf_counter(), 0.0, 0
    pending, running = list(commands), {}
    with open(log, "a") as out:
        while pending or running:
            while pending and len(running) < parallel:
                cmd = pending.pop(0)
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
                running[proc.pid] = cmd
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            cmd = running.pop(pid)
            cpu += usage.ru_utime + usage.ru_stime
            peak = max(peak, usage.ru_maxrss * 1024)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"scale: {' '.join(cmd[:4])} ... failed (see {log})")
    return {"wall_s": time.perf_counter() - start, "cpu_s": cpu, "peak_rss": peak}


def make_contigs(genomes: list[Path], work: Path, seeds: int, samples: int) -> list[Path]:
    """``samples`` FASTA files of 1-3 kb fragments, ``seeds`` tilings of every genome."""
    from kmervae.chop import chop_genomes

    fastas = [work / "contigs" / f"s{i}.fa" for i in range(min(samples, seeds))]
    if all(p.exists() for p in fastas) and (work / "contigs" / "query.fa").exists():
        return fastas
    (work / "contigs").mkdir(parents=True, exist_ok=True)
    outs = [open(p, "wb") for p in fastas]
    for seed in range(seeds + 1):
        fa, labels = work / "contigs" / "tmp.fa", work / "contigs" / f"labels.{seed}.tsv"
        chop_genomes(genomes, fa, labels, seed=1000 + seed, min_length=1000, max_length=3000,
                     distribution="loguniform")
        data = fa.read_bytes().replace(b">", f">s{seed}_".encode())
        if seed == seeds:  # one more seed, never trained on: the query contigs
            (work / "contigs" / "query.fa").write_bytes(data)
        else:
            outs[seed % samples].write(data)
        fa.unlink()
        print(f"scale: chopped seed {seed + 1}/{seeds + 1}", file=sys.stderr, flush=True)
    for o in outs:
        o.close()
    return fastas


def stage_commands(stage: str, work: Path, fastas: list[Path], a) -> tuple[list[list[str]], int]:
    """The ``kmervae`` command lines of one stage and how many may run at once."""
    t = str(a.threads)
    names = [p.stem for p in fastas]
    if stage == "count":
        return [KMERVAE + ["count", str(p), "-o", str(work / f"{p.stem}.zarr"), "--threads", t]
                for p in fastas], 1
    if stage == "select":
        return [KMERVAE + ["select", str(work / f"{n}.zarr"), "-o", str(work / f"{n}.min1000.zarr"),
                           "--min-length", "1000"] for n in names], a.threads
    if stage == "merge":
        return [KMERVAE + ["merge", *(str(work / f"{n}.min1000.zarr") for n in names),
                           "-o", str(work / "dataset.zarr")]], 1
    if stage == "train":
        return [KMERVAE + ["train", "--data", str(work / "dataset.zarr"), "-o", str(work / "model"),
                           "--threads", t, "--set", f"training.epochs={a.epochs}"]], 1
    if stage == "embed":
        return [KMERVAE + ["embed", str(work / "dataset.zarr"), "--model", str(work / "model"),
                           "-o", str(work / "embeddings.zarr"), "--threads", t]], 1
    if stage == "index":
        return [KMERVAE + ["index", str(work / "embeddings.zarr"), "-o", str(work / "index.faiss"),
                           "--memory-gb", str(a.memory_gb), "--threads", t]], 1
    if stage == "query":
        return [KMERVAE + ["query", "--index", str(work / "index.faiss"), "--fasta",
                           str(work / "contigs" / "query.fa"), "--model", str(work / "model"),
                           "-o", str(work / "neighbours.tsv"), "--threads", t]], 1
    if stage == "spearman":
        return [KMERVAE + ["evaluate", "spearman", "--embeddings", str(work / "embeddings.zarr"),
                           "--store", str(work / "dataset.zarr"), "-o", str(work / "spearman"),
                           "--split", "all", "--pool", "50000", "--threads", t]], 1
    return [KMERVAE + ["evaluate", "map", "--embeddings", str(work / "embeddings.zarr"),
                       "--store", str(work / "dataset.zarr"), "-o", str(work / "map"), "--split", "all",
                       "--sample", str(a.map_sample), "--threads", t]], 1


def stage_rows(stage: str, work: Path, a) -> int:
    """The number of contigs a stage handled (read back from its output)."""
    from kmervae.io.store import KmerStore

    if stage in ("count", "select"):
        suffix = ".zarr" if stage == "count" else ".min1000.zarr"
        return sum(KmerStore(p).n for p in work.glob(f"s*{suffix}") if p.name.count(".") == suffix.count("."))
    if stage == "query":
        return sum(1 for line in open(work / "contigs" / "query.fa", "rb") if line.startswith(b">"))
    if stage == "spearman":
        return min(50_000, KmerStore(work / "dataset.zarr").n)
    n = KmerStore(work / "dataset.zarr").n
    if stage == "train":
        return n * a.epochs
    if stage == "map":
        return n if a.map_sample == 0 else min(n, a.map_sample)
    return n


def projection(stage: str, result: dict, rows: int, n_data: int, target: int, dim: int) -> tuple[float, float]:
    """Projected (seconds, bytes) at ``target`` contigs; see the module docstring."""
    from kmervae.index import IndexParams, plan_index

    ratio = target / max(n_data, 1)
    seconds, memory = result["wall_s"] * ratio, result["peak_rss"]
    if stage == "spearman":
        seconds = result["wall_s"]
    elif stage == "query":  # the same queries; IVF lists grow as sqrt(n) with the default nlist
        seconds = result["wall_s"] * math.sqrt(ratio)
    elif stage == "map":  # the paper's map: 4.8 M points
        points = PAPER_MAP_POINTS
        seconds = result["wall_s"] * points * math.log(points) / (rows * math.log(max(rows, 2)))
        memory = result["peak_rss"] * points / rows
    elif stage == "index":
        plan = plan_index(target, dim, IndexParams(kind="auto", memory_gb=result["memory_gb"]), 30)
        memory = plan.estimated_bytes
        result["projected_kind"] = plan.kind
    return seconds, memory


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def print_table(results: dict, n_data: int, target: int, dim: int, threads: int) -> None:
    print(f"\n{n_data:,} contigs, {threads} threads; projection to {target:,} contigs on the same cores\n")
    print("| stage | contigs | wall | CPU | peak RSS (GB) | projected wall | projected memory (GB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage in STAGES:
        if stage not in results:
            continue
        r = results[stage]
        seconds, memory = projection(stage, r, r["rows"], n_data, target, dim)
        note = f" ({r['projected_kind']})" if stage == "index" else ""
        print(f"| {stage} | {r['rows']:,} | {human(r['wall_s'])} | {human(r['cpu_s'])} | "
              f"{r['peak_rss'] / 1e9:.2f} | {human(seconds)} | {memory / 1e9:.2f}{note} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--genomes", type=Path, default=HERE.parent / "resources" / "demo")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=116, help="tilings of every genome (116: ~1 M contigs)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--memory-gb", type=float, default=8.0)
    p.add_argument("--map-sample", type=int, default=0, help="contigs mapped (0 = all)")
    p.add_argument("--project", type=int, default=18_000_000)
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--redo", nargs="*", default=[], choices=STAGES)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    genomes = sorted(p for p in a.genomes.iterdir() if p.name.endswith((".fa", ".fa.gz", ".fna", ".fasta")))
    fastas = make_contigs(genomes, a.workdir, a.seeds, a.samples)
    state_path = a.workdir / "scale.json"
    results = json.loads(state_path.read_text()) if state_path.exists() else {}
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; uptime: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    for stage in a.stages:
        if stage in results and stage not in a.redo:
            continue
        print(f"scale: {stage} ...", file=sys.stderr, flush=True)
        for leftover in (a.workdir / "model", a.workdir / "map", a.workdir / "spearman"):
            if stage in leftover.name and leftover.exists():
                shutil.rmtree(leftover)
        commands, parallel = stage_commands(stage, a.workdir, fastas, a)
        r = run_measured(commands, a.workdir / f"{stage}.log", parallel)
        r.update(rows=stage_rows(stage, a.workdir, a), memory_gb=a.memory_gb,
                 load=os.getloadavg()[0])
        results[stage] = r
        state_path.write_text(json.dumps(results, indent=1))
        print(f"scale: {stage} {human(r['wall_s'])}, {r['peak_rss'] / 1e9:.2f} GB", file=sys.stderr, flush=True)
    from kmervae.io.store import KmerStore

    n_data = KmerStore(a.workdir / "dataset.zarr").n
    print_table(results, n_data, a.project, 384, a.threads)
    print("# uptime: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

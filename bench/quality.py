"""Retrieval quality on real genomes with held-out queries: model configs against k-mer baselines.

    .venv/bin/python bench/quality.py --genomes DIR [--train-seeds 2] [--epochs 30] [--threads 2]
        [--model NAME=config/models/X.yaml ...] [--set NAME:KEY=VALUE ...] [--work DIR]

No leakage: every record of every genome is cut in two, its first ``--train-fraction``
(70 %) for training and the rest for the queries, so no query fragment shares a base with
a training fragment. The training part is chopped (``kmervae.chop``, log-uniform lengths
in ``--lengths``) once per seed in ``--train-seeds`` (different tilings of the same
sequence: more, overlapping fragments), counted (``kmervae.count``) and merged into one
dataset (``kmervae.merge``, ``--validation`` of it for validation); the held-out part is
chopped once with another seed and counted. Every model trains (``kmervae.train``, CPU,
``--threads``, ``--epochs`` for every model: the fixed budget) on that dataset and embeds
the held-out fragments with its final weights.

On the held-out pool (all held-out fragments, labelled by genome), the same seeded
queries take their exact nearest neighbours (``kmervae.evaluate.neighbours.exact_knn``,
the query itself excluded) for every method: each model's z_mean, CLR of the 6..1-mers
(2772), PCA of that CLR at each model's width (fitted on the training split only),
4-mer CLR and 4+5-mer CLR, each euclidean and cosine, and random Gaussian vectors (an
oracle of no signal). Printed per row: precision@1/@10/@50 of same-genome neighbours
(``kmervae.evaluate.retrieval.precision_at``) and the Spearman of latent distance vs
k-mer MSE (``kmervae.evaluate.spearman.local_distance_protocol``, the paper's protocol,
on the same pool), with each model's training wall and CPU seconds.

``--model NAME=PATH`` adds a model config (default: the shipped default and retrieval
configs); ``--set NAME:KEY=VALUE`` overrides one key of model NAME (repeatable). The
prepared data is kept in ``--work`` and reused by later runs with the same data options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kmervae.chop import chop_genomes, genome_name_of
from kmervae.count import count_fasta
from kmervae.evaluate.baselines import fit_pca, pca_fit_rows, project
from kmervae.evaluate.neighbours import clr_rows, knn_in_memory
from kmervae.evaluate.retrieval import precision_at, read_labels
from kmervae.evaluate.spearman import local_distance_protocol
from kmervae.io.fasta import read_fasta_chunks
from kmervae.io.store import KmerStore
from kmervae.kmers import Layout
from kmervae.merge import merge_stores
from kmervae.train import train
from kmervae.vae import config as cfg
from kmervae.vae.files import load_model

REPO = Path(__file__).resolve().parents[1]
KS = (1, 10, 50)
METRICS = ("euclidean", "cosine")
ALL_KS = (6, 5, 4, 3, 2, 1)


def split_genomes(fastas: list[Path], out: Path, fraction: float) -> dict[str, tuple[Path, Path]]:
    """Every record cut at ``fraction`` of its length: genome -> (training part, held-out part) FASTA."""
    out.mkdir(parents=True, exist_ok=True)
    parts = {}
    for path in fastas:
        genome = genome_name_of(path)
        first, rest = out / f"{genome}.train.fa", out / f"{genome}.held.fa"
        with open(first, "wb") as a, open(rest, "wb") as b:
            for chunk in read_fasta_chunks(path):
                for i, record in enumerate(chunk.ids.tolist()):
                    seq = chunk.seq[chunk.offsets[i] : chunk.offsets[i + 1]].tobytes()
                    cut = int(len(seq) * fraction)
                    a.write(b">" + record.encode() + b"\n" + seq[:cut] + b"\n")
                    b.write(b">" + record.encode() + b"\n" + seq[cut:] + b"\n")
        parts[genome] = (first, rest)
    return parts


def prepare(args) -> dict:
    """Chop, count and merge (once per data options; reused from ``--work``): the paths of the data."""
    work = Path(args.work)
    key = {
        "genomes": sorted(str(p) for p in Path(args.genomes).glob("*.fa.gz")),
        "fraction": args.train_fraction,
        "lengths": args.lengths,
        "seeds": args.train_seeds,
        "validation": args.validation,
    }
    done = work / "data.json"
    if done.exists() and json.loads(done.read_text())["key"] == key:
        return json.loads(done.read_text())["paths"]
    lo, hi = (int(v) for v in args.lengths.split("-"))
    chop = dict(min_length=lo, max_length=hi, distribution="loguniform")
    parts = split_genomes([Path(p) for p in key["genomes"]], work / "parts", args.train_fraction)
    train_fastas = [p[0] for p in parts.values()]
    names = {str(p[i]): g for g, p in parts.items() for i in (0, 1)}
    stores = []
    for seed in range(1, args.train_seeds + 1):
        out = work / f"train_s{seed}"
        fa, _ = chop_genomes(
            train_fastas, f"{out}.fa", f"{out}.tsv", seed=seed, genome_names=names, **chop
        )
        stores.append(count_fasta(fa, work / f"train_s{seed}.zarr", Layout(ALL_KS), threads=2))
    dataset = work / "dataset.zarr"
    if dataset.exists():
        import shutil

        shutil.rmtree(dataset)
    merge_stores(stores, dataset, seed=1, fractions=(1 - args.validation, args.validation, 0.0))
    held_parts = [p[1] for p in parts.values()]
    held_fa, held_labels = chop_genomes(
        held_parts, work / "held.fa", work / "held.tsv", seed=1000, genome_names=names, **chop
    )
    held = count_fasta(held_fa, work / "held.zarr", Layout(ALL_KS), threads=2)
    paths = {"dataset": str(dataset), "held": str(held), "held_labels": str(held_labels)}
    done.write_text(json.dumps({"key": key, "paths": paths}))
    return paths


def model_configs(args) -> dict[str, dict]:
    """NAME -> resolved config: the file, ``--epochs`` and seed for every model, then its ``--set`` keys."""
    models = args.model or ["default=config/models/default.yaml", "retrieval=config/models/retrieval.yaml"]
    out = {}
    for item in models:
        name, path = item.split("=", 1)
        sets = [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == name]
        budget = [f"training.epochs={args.epochs}"] if args.epochs else []
        out[name] = cfg.load(REPO / path if not Path(path).is_absolute() else path, budget + sets)
    return out


def train_models(configs: dict, dataset: str, work: Path, threads: int) -> dict:
    """NAME -> (model with final weights, wall seconds, CPU seconds); a model trained before is reused."""
    trained = {}
    for name, config in configs.items():
        out = work / "models" / cfg.config_hash(config)  # the same config under another name is reused
        timing = out / "bench_timing.json"
        if not timing.exists():
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            wall, cpu = time.perf_counter(), time.process_time()
            train(config, dataset, out, device="cpu", threads=threads)
            seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            timing.write_text(json.dumps(seconds))
        seconds = json.loads(timing.read_text())
        trained[name] = (load_model(out, "final"), seconds["wall"], seconds["cpu"])
        line = f"# {name}: {cfg.config_hash(config)}, {seconds['wall']:.0f} s wall"
        print(line, file=sys.stderr, flush=True)
    return trained


def method_vectors(trained: dict, dataset: KmerStore, held: KmerStore, fit_sample: int, seed: int) -> list:
    """(method, width, train seconds or None, pool vectors) for the models and every baseline."""
    rows = np.arange(len(held))
    counts = held.rows()
    methods = []
    for name, (model, wall, cpu) in trained.items():
        lengths = held.lengths() if model.reads_length else None
        methods.append((name, model.latent_dim, (wall, cpu), model.embed(counts, held.layout, lengths)))
    methods.append(("clr", held.layout.width, None, clr_rows(held, rows, ALL_KS)))
    widths = sorted({m.latent_dim for m, _, _ in trained.values()})
    _, fit_rows = pca_fit_rows(dataset, np.arange(len(dataset)), fit_sample, seed)
    pca, feasible, _ = fit_pca(dataset, fit_rows, ALL_KS, widths)
    coords = project(pca, held, rows, ALL_KS) if pca is not None else None
    for w in feasible:
        methods.append(("pca_clr", w, None, np.ascontiguousarray(coords[:, :w])))
    methods.append(("clr_4mer", Layout((4,)).width, None, clr_rows(held, rows, (4,))))
    methods.append(("clr_45mer", Layout((5, 4)).width, None, clr_rows(held, rows, (5, 4))))
    width = max(widths)
    noise = np.random.default_rng(seed).normal(size=(len(held), width)).astype(np.float32)
    methods.append(("random", width, None, noise))
    return methods


def score(methods: list, held: KmerStore, labels: np.ndarray, args) -> list[dict]:
    """One row per method and metric: precision@k of same-genome neighbours and the Spearman protocol."""
    rng = np.random.default_rng(args.seed)
    query = np.sort(rng.choice(len(held), size=min(args.queries, len(held)), replace=False))
    rows = []
    for name, width, seconds, vectors in methods:
        for metric in METRICS:
            nb, _ = knn_in_memory(vectors[query], vectors, max(KS), metric, exclude=query)
            precision = precision_at(labels[nb], labels[query], KS)
            sp = local_distance_protocol(
                lambda p, v=vectors: v[p],
                held,
                np.arange(len(held)),
                ALL_KS,
                args.spearman_queries,
                50,
                metric,
                0,
                args.seed,
            )
            rows.append(
                {
                    "method": name,
                    "width": int(width),
                    "metric": metric,
                    **{f"p@{k}": v for k, v in precision.items()},
                    "spearman": sp["spearman"],
                    "train_wall_s": None if seconds is None else seconds[0],
                    "train_cpu_s": None if seconds is None else seconds[1],
                }
            )
    return rows


def format_rows(rows: list[dict]) -> str:
    heads = "".join(f"{h:>7}" for h in ("P@1", "P@10", "P@50"))
    lines = [f"{'method':<14}{'width':>6} {'metric':<10}{heads}"]
    lines[0] += f"{'Spearman':>10}{'wall s':>8}{'CPU s':>7}"
    for r in rows:
        t = "" if r["train_wall_s"] is None else f"{r['train_wall_s']:>8.0f}{r['train_cpu_s']:>7.0f}"
        lines.append(
            f"{r['method']:<14}{r['width']:>6} {r['metric']:<10}{r['p@1']:>7.3f}{r['p@10']:>7.3f}"
            f"{r['p@50']:>7.3f}{r['spearman']:>10.3f}{t}"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs; uptime: {uptime}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genomes", required=True, help="directory of *.fa.gz genomes (one label each)")
    ap.add_argument("--work", default="bench_quality_work", help="data and models (reused between runs)")
    ap.add_argument("--train-fraction", type=float, default=0.7)
    ap.add_argument("--lengths", default="1000-3000", help="fragment lengths MIN-MAX (log-uniform)")
    ap.add_argument("--train-seeds", type=int, default=2, help="tilings of the training part")
    ap.add_argument("--validation", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of every model (0: the config's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--spearman-queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fit-sample", type=int, default=20_000)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--set", action="append", default=[], metavar="NAME:KEY=VALUE")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    began = machine()
    paths = prepare(args)
    dataset, held = KmerStore(paths["dataset"]), KmerStore(paths["held"])
    label_of = read_labels(paths["held_labels"], "genome")
    labels = np.array([label_of[i] for i in held.ids()])
    trained = train_models(model_configs(args), paths["dataset"], Path(args.work), args.threads)
    rows = score(method_vectors(trained, dataset, held, args.fit_sample, args.seed), held, labels, args)
    n_train = len(dataset.split_index("train"))
    print(f"before: {began}")
    print(f"after:  {machine()}")
    print(
        f"train {n_train} fragments ({args.train_seeds} tilings of the first "
        f"{args.train_fraction:.0%} of each record), held-out pool {len(held)} fragments, "
        f"{len(set(labels))} genomes, lengths {args.lengths}; "
        f"{args.queries} retrieval queries, Spearman {args.spearman_queries} queries x 50; budget per model: "
        f"{args.epochs or 'config'} epochs on {args.threads} CPU thread(s); train s: wall and CPU seconds of each model's training"
    )
    print(format_rows(rows))
    Path(args.work, "quality.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

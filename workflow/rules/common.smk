# Helpers shared by the rules: config and samples checked at start-up, the experiment plan,
# wildcard constraints, the input functions that map wildcards to files, and each stage's
# options from the config.

import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from kmervae.chop import OPTIONS as CHOP_OPTIONS
from kmervae.compare import OPTIONS as COMPARE_OPTIONS
from kmervae.count import OPTIONS as COUNT_OPTIONS
from kmervae.embed import OPTIONS as EMBED_OPTIONS
from kmervae.errors import KmervaeError
from kmervae.evaluate.map_groups import group_arguments
from kmervae.evaluate.reports import REPORTS as EVALUATION_REPORTS
from kmervae.merge import OPTIONS as MERGE_OPTIONS
from kmervae.options import workflow_arguments
from kmervae.workflow_config import (
    map_groups_for,
    parse_run,
    parse_testset,
    plan,
    read_samples,
    testset_name,
    validate_config,
)

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"

try:
    validate_config(config, SCHEMAS / "config.schema.yaml", source="config")
    MODELS_DIR = Path(config["models_dir"])
    SAMPLES = read_samples(
        config["samples"], SCHEMAS / "samples.schema.yaml", config["data_root"]
    )
    PLAN = plan(config, SAMPLES, MODELS_DIR)
except KmervaeError as error:
    sys.exit(f"kmervae: error: {error}")

DATASETS = config["datasets"]
RUNS = PLAN.run_names
TESTSETS = PLAN.testset_names
REPORTS = config["evaluation"]["reports"]

# Rules run `kmervae ...` in their shell: the conda environment's command under --sdm conda,
# else the kmervae of the Python running Snakemake (so the venv's bin need not be on PATH).
if not any(
    "conda" in str(m).lower() for m in workflow.deployment_settings.deployment_method
):
    shell.prefix(
        "set -euo pipefail; kmervae() {{ "
        + shlex.quote(sys.executable)
        + ' -m kmervae "$@"; }}; '
    )


def stage_options(options, **wildcards):
    """The config's values of a stage's options (those with a workflow key), as kmervae
    arguments in one shell-quoted string: a rule's params, so a job reruns when one of its
    own settings changes and only then."""
    return shlex.join(str(a) for a in workflow_arguments(options, config, **wildcards))


def report_options(name):
    return stage_options(EVALUATION_REPORTS[name].options)


def alternation(names):
    """A regex matching exactly one of ``names`` (dots escaped)."""
    return (
        "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)"
    )


wildcard_constraints:
    sample=alternation(SAMPLES),
    dataset=alternation(DATASETS),
    threshold=r"\d+",
    model=alternation(config["models"]),
    run=alternation(RUNS),
    testset=alternation(set(TESTSETS) | {testset_name(d, t) for d, t, _ in PLAN.runs}),


def sample_fasta(wildcards):
    """FASTA to count for a sample: the chopped fragments when the sample is chopped genomes."""
    sample = SAMPLES[wildcards.sample]
    if sample.chop:
        return [f"results/chopped/{sample.name}.fa.gz"]
    return list(sample.fasta)


def sample_labels(name):
    sample = SAMPLES[name]
    if sample.chop:
        return f"results/chopped/{name}.labels.tsv"
    return sample.labels


def dataset_labels(wildcards):
    """Labels tables of a test set's samples; empty when any sample has none."""
    dataset = parse_testset(wildcards.testset).dataset
    labels = [sample_labels(s) for s in DATASETS[dataset]["samples"]]
    return labels if all(labels) else []


def own_reports(report_name):
    """Report directories of one kind on each run's own test set."""
    return [
        f"results/reports/{run}/{parse_run(run).testset}/{report_name.replace('-', '_')}"
        for run in RUNS
        if report_name != "retrieval" or has_labels(parse_run(run).testset)
    ]


def has_labels(testset):
    return bool(dataset_labels(SimpleNamespace(testset=testset)))


def map_groups(wildcards):
    """evaluation.map_groups when the test set's dataset holds all their samples, else {}."""
    return map_groups_for(config, parse_testset(wildcards.testset).dataset)


def evaluation_targets():
    """Spearman for every run x test set (the matrix); the other reports on each run's own test set."""
    targets = expand(
        "results/reports/{run}/{testset}/spearman", run=RUNS, testset=TESTSETS
    )
    for report_name in REPORTS:
        if report_name != "spearman":
            targets += own_reports(report_name)
    return targets


COMPARE_FIGURES = [
    "results/reports/cross_comparison.png",
    "results/figures/length_sweep.png",
    "results/figures/loss_curves.png",
    "results/figures/lr_curves.png",
    "results/figures/mse_by_kmer.png",
    "results/figures/grand_comparison.png",
]


def all_targets():
    return (
        [
            "results/reports/cross_comparison.tsv",
            "results/reports/cross_comparison_matrix.tsv",
            "results/figures/grand_comparison.tsv",
        ]
        + COMPARE_FIGURES
        + [f"results/index/{run}/{parse_run(run).testset}.faiss" for run in RUNS]
        + evaluation_targets()
    )


def log_path(rule_name, pattern=""):
    return f"logs/{rule_name}/{pattern}.log" if pattern else f"logs/{rule_name}.log"


def benchmark_path(rule_name, pattern=""):
    return (
        f"benchmarks/{rule_name}/{pattern}.tsv"
        if pattern
        else f"benchmarks/{rule_name}.tsv"
    )

"""Each stage's options are declared once: the stage functions' defaults, the CLI and the workflow
schema's defaults are checked against the ``OPTIONS`` beside each function, and the arguments the
workflow renders from a config parse back to that config's values."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from kmervae import chop, compare, count, embed, merge, select
from kmervae.cli import build_parser
from kmervae.evaluate.reports import REPORTS
from kmervae.index import QUERY_OPTIONS, IndexParams, query_index
from kmervae.options import config_value, workflow_arguments
from kmervae.workflow_config import validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def report_argv(name: str) -> list[str]:
    report = REPORTS[name]
    return [
        "evaluate", name, "--embeddings", "e.zarr", "-o", "out",
        *(["--store", "s.zarr"] if report.store else []),
        *(["--labels", "l.tsv"] if report.labels else []),
    ]


#: stage: (the CLI's required arguments, the stage function, its options)
STAGES = {
    "count": (["count", "x.fa", "-o", "o.zarr"], count.count_fasta, count.OPTIONS),
    "select": (["select", "s.zarr", "-o", "o.zarr"], select.select_min_length, select.OPTIONS),
    "merge": (["merge", "s.zarr", "-o", "o.zarr"], merge.merge_stores, merge.OPTIONS),
    "chop": (["chop", "g.fa", "-o", "o.fa", "--labels", "l.tsv"], chop.chop_genomes, chop.OPTIONS),
    "embed": (["embed", "s.zarr", "--model", "m", "-o", "e.zarr"], embed.embed_path, embed.OPTIONS),
    "compare": (["compare", "--runs", "r", "--testsets", "t"], compare.compare_runs, compare.OPTIONS),
    "query": (["query", "--index", "i.faiss", "--ids", "a", "-o", "n.tsv"], query_index, QUERY_OPTIONS),
    **{f"evaluate {name}": (report_argv(name), r.function, r.options) for name, r in REPORTS.items()},
}
#: options the command converts before the call: option name -> the function's keyword and how
CONVERTED = {
    ("count", "k"): ("layout", lambda v: count.Layout.parse(v)),
    ("merge", "memory_mb"): ("memory_budget", lambda v: v << 20),
}
#: workflow keys that are no stage's option, and why: which reports the workflow runs
# which reports run; and the map's sample groups, given to a map only where its test set's dataset
# holds every sample they name (the map rule renders them with group_arguments)
NOT_OPTIONS = {"evaluation.reports", "evaluation.map_groups"}


def parse(argv: list[str]):
    return build_parser(argv[0]).parse_args(argv)


def plain(value):
    """Tuples and lists alike, so a default (1, 10, 50) equals the YAML [1, 10, 50]."""
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def schema_node(key: str) -> dict | None:
    node = SCHEMA
    for part in key.split("."):
        wildcard = part.startswith("{")
        node = node.get("additionalProperties") if wildcard else node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_function_and_the_cli_take_their_defaults_from_the_options(stage):
    argv, function, options = STAGES[stage]
    signature = inspect.signature(function).parameters
    args = parse(argv)
    for option in options:
        keyword, convert = CONVERTED.get((stage.split()[0], option.name), (option.name, lambda v: v))
        assert keyword in signature, f"{stage}: {option.name} is no keyword of {function.__name__}"
        if not option.required:
            assert plain(signature[keyword].default) == plain(convert(option.default)), (stage, option.name)
            assert plain(getattr(args, option.name)) == plain(option.default), (stage, option.name)


def workflow_options():
    for stage, (_, _, options) in sorted(STAGES.items()):
        for option in options:
            if option.workflow:
                yield stage, option


def test_the_schema_defaults_are_the_options_workflow_defaults():
    checked = set()
    for stage, option in workflow_options():
        node = schema_node(option.workflow)
        assert node is not None, f"{stage}: --{option.name}'s key {option.workflow} is not in the schema"
        if "default" in node:
            assert plain(node["default"]) == plain(option.expected_workflow_default), (stage, option.workflow)
            checked.add(option.workflow)
    defaults = IndexParams()
    for key in ("metric", "kind", "memory_gb"):
        assert schema_node(f"index.{key}")["default"] == getattr(defaults, key)
        checked.add(f"index.{key}")
    # the other way round: every defaulted key of the stages' sections belongs to an option
    for section in ("seed", "kmers", "chop", "evaluation", "index", "figures"):
        node = SCHEMA["properties"][section]
        keys = [section] if "properties" not in node else [f"{section}.{k}" for k in node["properties"]]
        assert set(keys) - NOT_OPTIONS <= checked, f"schema keys with no stage option: {set(keys) - checked}"
    assert "datasets.{dataset}.fractions" in checked and "figures.heatmap_cmap" in checked


def test_the_workflow_runs_every_report_it_may_be_asked_for():
    reports = schema_node("evaluation.reports")
    assert reports["default"] == reports["items"]["enum"] == list(REPORTS)


@pytest.mark.parametrize("name", ["test.yaml", "paper.yaml"])
def test_the_workflows_arguments_parse_back_to_the_config(name):
    config = validate_config(yaml.safe_load((REPO / "config" / name).read_text()), SCHEMA_PATH)
    dataset = next(iter(config["datasets"]))
    for stage, (argv, _, options) in sorted(STAGES.items()):
        args = parse([*argv, *workflow_arguments(options, config, dataset=dataset)])
        for option in options:
            if option.workflow:
                expected = config_value(config, option.workflow.format(dataset=dataset))
                assert plain(getattr(args, option.name)) == plain(expected), (name, stage, option.name)


def test_a_workflow_argument_follows_its_own_config_key_only():
    config = validate_config(yaml.safe_load((REPO / "config" / "test.yaml").read_text()), SCHEMA_PATH)
    before = {name: workflow_arguments(r.options, config) for name, r in REPORTS.items()}
    config["evaluation"]["map_iterations"] += 1
    after = {name: workflow_arguments(r.options, config) for name, r in REPORTS.items()}
    assert {name for name in REPORTS if before[name] != after[name]} == {"map"}
    assert after["map"][after["map"].index("--n-iter") + 1] == str(config["evaluation"]["map_iterations"])

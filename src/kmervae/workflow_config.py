"""Reading and checking the workflow's config and samples table before anything runs.

The Snakefile calls these at start-up so a typo in ``config/config.yaml`` or a bad row
in ``config/samples.tsv`` stops the run at once with one line naming the key or the row,
instead of failing an hour later inside a job. The experiment plan (which runs, which
test sets) is computed here too, so the workflow and the tests agree on it.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from .vae import config as model_config
from .errors import KmervaeError
from .kmers import Layout
from .vae.config import read_ks, require_groups

SAMPLE_COLUMNS = ("sample", "fasta", "npy", "ids", "group", "chop", "labels")
TRUE_WORDS = {"true", "yes", "1"}
FALSE_WORDS = {"false", "no", "0", ""}


def _load_schema(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _validator_with_defaults(schema: dict):
    """A Draft 2020-12 validator that also fills in the schema's ``default`` values."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop:
                    instance.setdefault(name, _copy(prop["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def _copy(value):
    return yaml.safe_load(yaml.safe_dump(value))


def _key_of(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key")
    return error.message


def validate_config(config: dict, schema_path: str | os.PathLike, source: str = "config") -> dict:
    """Check ``config`` against the schema, filling defaults in place; raise one line on error."""
    validator = _validator_with_defaults(_load_schema(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        raise KmervaeError(f"{source}: key '{_key_of(first)}': {_describe(first)}")
    return config


@dataclass(frozen=True)
class Sample:
    name: str
    group: str
    fasta: tuple[str, ...] = ()
    npy: str | None = None
    ids: str | None = None
    chop: bool = False
    labels: str | None = None
    row: str = field(default="", compare=False)  # "TABLE: line N (sample 'NAME')", for error messages

    @property
    def is_legacy(self) -> bool:
        return self.npy is not None

    def input_files(self) -> list[tuple[str, str]]:
        """(column, path) of every file the sample reads."""
        files = [("fasta", p) for p in self.fasta]
        others = (("npy", self.npy), ("ids", self.ids), ("labels", self.labels))
        return files + [(column, p) for column, p in others if p]


def _resolve(path: str, root: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else root / p)


def read_samples(
    path: str | os.PathLike, schema_path: str | os.PathLike, data_root: str | os.PathLike = "."
) -> dict[str, Sample]:
    """Read the samples TSV into ``{name: Sample}``; relative paths are taken from ``data_root``.

    Errors name the file, the line number and the sample, e.g.
    ``config/samples.tsv: line 3 (sample 'soil'): column 'chop': 'maybe' is not true or false``.
    """
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such samples table")
    validator = _validator_with_defaults(_load_schema(schema_path))
    root = Path(data_root)
    samples: dict[str, Sample] = {}
    with open(path, newline="") as fh:
        lines = [(n, line) for n, line in enumerate(fh, start=1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise KmervaeError(f"{path}: the samples table is empty")
    header_line, header = lines[0][0], next(csv.reader([lines[0][1]], delimiter="\t"))
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in SAMPLE_COLUMNS]
    if unknown:
        raise KmervaeError(
            f"{path}: line {header_line}: unknown column(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(SAMPLE_COLUMNS)})"
        )
    for number, line in lines[1:]:
        cells = next(csv.reader([line.rstrip("\n")], delimiter="\t"))
        if len(cells) > len(header):
            raise KmervaeError(f"{path}: line {number}: {len(cells)} cells but {len(header)} columns")
        record = {h: c.strip() for h, c in zip(header, cells) if c.strip()}
        where = f"{path}: line {number} (sample {record.get('sample', '?')!r})"
        if "chop" in record:
            word = record["chop"].lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise KmervaeError(f"{where}: column 'chop': {record['chop']!r} is not true or false")
            record["chop"] = word in TRUE_WORDS
        errors = list(validator.iter_errors(record))
        if errors:
            error = errors[0]
            if error.validator == "oneOf":
                raise KmervaeError(f"{where}: give either 'fasta' or both 'npy' and 'ids', not both or neither")
            column = _key_of(error)
            raise KmervaeError(f"{where}: column '{column}': {_describe(error)}")
        name = record["sample"]
        if name in samples:
            raise KmervaeError(f"{where}: sample name {name!r} is used twice")
        if record.get("chop") and "fasta" not in record:
            raise KmervaeError(f"{where}: 'chop' needs genome FASTA files in column 'fasta'")
        fasta = tuple(_resolve(p.strip(), root) for p in record.get("fasta", "").split(";") if p.strip())
        samples[name] = Sample(
            name=name,
            group=record["group"],
            fasta=fasta,
            npy=_resolve(record["npy"], root) if "npy" in record else None,
            ids=_resolve(record["ids"], root) if "ids" in record else None,
            chop=bool(record.get("chop", False)),
            labels=_resolve(record["labels"], root) if "labels" in record else None,
            row=where,
        )
    if not samples:
        raise KmervaeError(f"{path}: the samples table has a header but no samples")
    return samples


@dataclass(frozen=True)
class Plan:
    """What a config asks for: runs (dataset, threshold, model) and test sets (dataset, threshold)."""

    runs: tuple[tuple[str, int, str], ...]
    testsets: tuple[tuple[str, int], ...]

    @property
    def run_names(self) -> list[str]:
        return [run_name(*r) for r in self.runs]

    @property
    def testset_names(self) -> list[str]:
        return [testset_name(*t) for t in self.testsets]


RUN_PATTERN = re.compile(r"^(?P<dataset>.+)\.min(?P<threshold>\d+)\.(?P<model>[^.]+)$")
TESTSET_PATTERN = re.compile(r"^(?P<dataset>.+)\.min(?P<threshold>\d+)$")


@dataclass(frozen=True)
class Run:
    name: str
    dataset: str
    threshold: int
    model: str

    @property
    def testset(self) -> str:
        """The run's own test set: its dataset at its threshold."""
        return testset_name(self.dataset, self.threshold)


@dataclass(frozen=True)
class TestSet:
    name: str
    dataset: str
    threshold: int


def run_name(dataset: str, threshold: int, model: str) -> str:
    return f"{dataset}.min{threshold}.{model}"


def testset_name(dataset: str, threshold: int) -> str:
    return f"{dataset}.min{threshold}"


def parse_run(name: str) -> Run:
    """``'ALL.min1000.default'`` -> Run(dataset 'ALL', threshold 1000, model 'default')."""
    m = RUN_PATTERN.match(name)
    if not m:
        raise KmervaeError(f"run name {name!r} is not DATASET.minTHRESHOLD.MODEL")
    return Run(name, m["dataset"], int(m["threshold"]), m["model"])


def parse_testset(name: str) -> TestSet:
    """``'ALL.min1000'`` -> TestSet(dataset 'ALL', threshold 1000)."""
    m = TESTSET_PATTERN.match(name)
    if not m:
        raise KmervaeError(f"test set name {name!r} is not DATASET.minTHRESHOLD")
    return TestSet(name, m["dataset"], int(m["threshold"]))


def override_assignments(overrides: dict) -> list[str]:
    """``{"training.epochs": 3}`` -> ``["training.epochs=3"]``, sorted, as ``kmervae train --set`` takes them."""
    out = []
    for key in sorted(overrides):
        value = overrides[key]
        out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def check_input_files(samples: dict[str, Sample], names) -> None:
    """Every file of the named samples exists: a typo in the samples table stops the run at start-up
    with its row, rather than as Snakemake's missing-input error, or not at all when results exist."""
    for name in names:
        sample = samples[name]
        for column, path in sample.input_files():
            if not os.path.isfile(path):
                what = "is a directory, not a file" if os.path.isdir(path) else "no such file"
                raise KmervaeError(f"{sample.row or name}: column {column!r}: {what}: {path}")


def check_count_distance(config: dict, source: str) -> None:
    """count-distance's fit ranges lie on its metric's scale (cosine distance is 0-2)."""
    evaluation = config.get("evaluation", {})
    metric = evaluation.get("count_distance_metric", "cosine")
    top = 2.0 if metric == "cosine" else math.inf
    for i, (lo, hi) in enumerate(evaluation.get("count_distance_ranges", [])):
        if not 0 <= lo < hi <= top:
            raise KmervaeError(
                f"{source}: key 'evaluation.count_distance_ranges.{i}': [{lo:g}, {hi:g}] is not a range "
                f"low < high on the scale of count_distance_metric {metric!r}"
                + (" (0-2)" if top < math.inf else "")
            )


def check_map_groups(config: dict, samples: dict[str, Sample], source: str) -> None:
    """``evaluation.map_groups``: none, or two or more groups of samples of the samples table, disjoint."""
    groups = config.get("evaluation", {}).get("map_groups") or {}
    if len(groups) == 1:
        raise KmervaeError(
            f"{source}: key 'evaluation.map_groups': give two or more groups (or none), got {list(groups)}"
        )
    owner: dict[str, str] = {}
    for name, members in groups.items():
        for i, sample in enumerate(members):
            key = f"evaluation.map_groups.{name}.{i}"
            if sample not in samples:
                have = ", ".join(sorted(samples))
                raise KmervaeError(
                    f"{source}: key '{key}': sample {sample!r} is not in the samples table (have {have})"
                )
            if owner.setdefault(sample, name) != name:
                raise KmervaeError(
                    f"{source}: key '{key}': sample {sample!r} is in group {owner[sample]!r} too; "
                    "a sample belongs to one group at most"
                )


def map_groups_for(config: dict, dataset: str) -> dict[str, list[str]]:
    """The ``evaluation.map_groups`` a map of ``dataset`` compares: all of them when the dataset
    holds every sample they name, else none (a dataset of one group's samples gets a plain map)."""
    groups = config.get("evaluation", {}).get("map_groups") or {}
    held = set(config["datasets"][dataset]["samples"])
    if not all(set(members) <= held for members in groups.values()):
        return {}
    return {name: list(members) for name, members in groups.items()}


def plan(config: dict, samples: dict[str, Sample], models_dir: str | os.PathLike = "config/models") -> Plan:
    """Cross-check the config against the samples, their files and the model files; list runs and test sets."""
    source = config.get("_source", "config")
    datasets = config["datasets"]
    check_count_distance(config, source)
    check_map_groups(config, samples, source)
    for name, spec in datasets.items():
        for key in ("samples", "test_samples"):
            for i, sample in enumerate(spec.get(key, [])):
                if sample not in samples:
                    raise KmervaeError(
                        f"{source}: key 'datasets.{name}.{key}.{i}': sample {sample!r} is not in the samples "
                        f"table (have {', '.join(sorted(samples))})"
                    )
        extra = set(spec.get("test_samples", [])) - set(spec["samples"])
        if extra:
            raise KmervaeError(
                f"{source}: key 'datasets.{name}.test_samples': {sorted(extra)} are not among the dataset's samples"
            )
        check_input_files(samples, spec["samples"])
        fractions = spec.get("fractions", [0.9, 0.1, 0.0])
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise KmervaeError(f"{source}: key 'datasets.{name}.fractions': {fractions} do not add up to 1")
    counted = Layout.parse(config["kmers"]["groups"]).ks
    overrides = override_assignments(config.get("training", {}).get("set") or {})
    for i, model in enumerate(config["models"]):
        path = Path(models_dir) / f"{model}.yaml"
        if not path.exists():
            raise KmervaeError(f"{source}: key 'models.{i}': no model config {path}")
        require_groups(
            read_ks(model_config.load(path, overrides)),
            Layout(counted),
            where=f"{source}: key 'models.{i}'",
            reader=f"model {model!r}",
            holder=f"kmers.groups {config['kmers']['groups']!r}",
        )

    known = {"datasets": list(datasets), "thresholds": list(config["thresholds"]), "models": list(config["models"])}

    def blocks(section: str, axes: tuple[str, ...]) -> list[tuple]:
        chosen: list[tuple] = []
        for b, block in enumerate(config.get(section) or [{}]):
            values = []
            for axis in axes:
                picked = block.get(axis) or known[axis]
                for i, value in enumerate(picked):
                    if value not in known[axis]:
                        raise KmervaeError(
                            f"{source}: key '{section}.{b}.{axis}.{i}': {value!r} is not one of {known[axis]}"
                        )
                values.append(picked)
            for combo in itertools.product(*values):
                if combo not in chosen:
                    chosen.append(combo)
        return chosen

    runs = tuple(blocks("runs", ("datasets", "thresholds", "models")))
    testsets = tuple(blocks("testsets", ("datasets", "thresholds")))
    return Plan(runs=runs, testsets=testsets)

"""The Snakemake workflow: start-up checks, lint and format, the paper's plan, a tiny end-to-end run.

The paper dry run's expected job counts are derived here from the paper config by
counting (samples x thresholds, runs x test sets, ...), independently of the workflow's
own plan code. The end-to-end run checks every summary output against the per-cell
reports it was built from, then that a rerun does nothing and a partial run resumes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zarr

from kmervae.errors import KmervaeError
from kmervae.workflow_config import check_input_files, map_groups_for, plan, read_samples, validate_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SCHEMAS = REPO / "workflow" / "schemas"


def snakemake(*args, cwd=REPO, check=True, timeout=900):
    """Run Snakemake from the venv; return the completed process (stdout and stderr together)."""
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-6000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run as {rule: count}."""
    table = output[output.index("Job stats:"):]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    return counts


# --- start-up checks ------------------------------------------------------------------------


def load_config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize(
    "name, groups", [("config.yaml", "7..1"), ("test.yaml", "6..1"), ("paper.yaml", "6..1")]
)
def test_shipped_configs_validate(name, groups):
    config = validate_config(load_config(name), SCHEMAS / "config.schema.yaml")
    assert config["seed"] == 42 and config["kmers"]["groups"] == groups


def test_bad_config_names_the_key():
    config = load_config("config.yaml")
    config["thresholds"] = [1000, "2k"]
    with pytest.raises(KmervaeError, match=r"^config: key 'thresholds\.1': '2k' is not of type 'integer'$"):
        validate_config(config, SCHEMAS / "config.schema.yaml")
    config = load_config("config.yaml")
    config["training"]["epochs"] = 3
    with pytest.raises(KmervaeError, match=r"key 'training': unknown key \('epochs' was unexpected\)"):
        validate_config(config, SCHEMAS / "config.schema.yaml")


def test_bad_sample_rows_name_the_line_and_sample(tmp_path):
    table = tmp_path / "samples.tsv"
    header = "sample\tfasta\tnpy\tids\tgroup\tchop\n"
    cases = {
        "a\tx.fa\t\t\taquatic\tmaybe\n": r"line 2 \(sample 'a'\): column 'chop': 'maybe' is not true or false",
        "a\tx.fa\ty.npy\tids.txt\taquatic\t\n": r"line 2 \(sample 'a'\): give either 'fasta' or both",
        "a.b\tx.fa\t\t\taquatic\t\n": r"line 2 \(sample 'a.b'\): column 'sample': 'a.b' does not match",
        "a\tx.fa\t\t\t\t\n": r"line 2 \(sample 'a'\): column '\(top level\)': 'group' is a required property",
    }
    for row, message in cases.items():
        table.write_text(header + row)
        with pytest.raises(KmervaeError, match=re.escape(str(table)) + ": " + message):
            read_samples(table, SCHEMAS / "samples.schema.yaml")
    table.write_text(header + "a\tx.fa\t\t\taq\ttrue\n# a comment\nb\t\tb.npy\tb.txt\tref\t\na\tz.fa\t\t\taq\t\n")
    with pytest.raises(KmervaeError, match=r"line 5 \(sample 'a'\): sample name 'a' is used twice"):
        read_samples(table, SCHEMAS / "samples.schema.yaml")
    table.write_text(header + "a\tx.fa;sub/y.fa\t\t\taq\ttrue\nb\t\tb.npy\tb.txt\tref\t\n")
    samples = read_samples(table, SCHEMAS / "samples.schema.yaml", data_root="/data")
    assert samples["a"].fasta == ("/data/x.fa", "/data/sub/y.fa") and samples["a"].chop
    assert samples["b"].is_legacy and samples["b"].npy == "/data/b.npy" and not samples["b"].chop


def test_plan_cross_checks_samples_and_models(tmp_path):
    config = validate_config(load_config("config.yaml"), SCHEMAS / "config.schema.yaml")
    samples = read_samples(REPO / config["samples"], SCHEMAS / "samples.schema.yaml", REPO)
    the_plan = plan(config, samples, REPO / "config" / "models")
    # the runs are the union of the blocks, each block the product of its lists
    expected = {
        (d, t, m)
        for block in config["runs"]
        for d in block["datasets"]
        for t in block["thresholds"]
        for m in block["models"]
    }
    assert set(the_plan.runs) == expected and len(the_plan.runs) == len(set(the_plan.run_names)) == 9
    assert len(the_plan.testsets) == len(config["datasets"]) * len(config["thresholds"])
    config["kmers"]["groups"] = "6..1"
    with pytest.raises(KmervaeError, match=r"key 'models\.3': model 'branched7_balanced' reads 7-mers but kmers"):
        plan(config, samples, REPO / "config" / "models")
    config["kmers"]["groups"] = "7..1"
    config["datasets"]["ALL"]["samples"].append("marine")
    with pytest.raises(KmervaeError, match=r"key 'datasets\.ALL\.samples\.2': sample 'marine' is not in"):
        plan(config, samples, REPO / "config" / "models")
    config["datasets"]["ALL"]["samples"].pop()
    config["models"] = ["default", "nosuch"]
    with pytest.raises(KmervaeError, match=r"key 'models\.1': no model config .*nosuch\.yaml"):
        plan(config, samples, REPO / "config" / "models")


def test_a_missing_sample_file_names_the_row_at_start_up(tmp_path):
    config = validate_config(load_config("config.yaml"), SCHEMAS / "config.schema.yaml")
    rows = (REPO / config["samples"]).read_text().replace("lambda.fa.gz", "lamdba.fa.gz")
    table = tmp_path / "samples.tsv"
    table.write_text(rows)
    samples = read_samples(table, SCHEMAS / "samples.schema.yaml", REPO)
    missing = REPO / "resources" / "demo" / "lamdba.fa.gz"
    row = f"{table}: line 2 (sample 'aquatic'): column 'fasta': no such file: {missing}"
    with pytest.raises(KmervaeError, match=f"^{re.escape(row)}$"):
        plan(config, samples, REPO / "config" / "models")
    # the same through Snakemake, even where the results of that sample exist: one line, no job
    work = workdir_for(tmp_path / "work")
    (work / "results" / "chopped").mkdir(parents=True)
    (work / "results" / "chopped" / "aquatic.fa.gz").touch()
    result = snakemake("-n", "--config", f"samples={table}", f"data_root={REPO}", cwd=work, check=False)
    assert result.returncode != 0 and "Nothing to be done" not in result.stdout
    assert f"kmervae: error: {row}" in result.stdout
    # a legacy sample's matrix too
    table.write_text("sample\tnpy\tids\tgroup\nref\tr.npy\tr.txt\tref\n")
    (tmp_path / "r.npy").touch()
    legacy = read_samples(table, SCHEMAS / "samples.schema.yaml", tmp_path)
    with pytest.raises(KmervaeError, match=r"line 2 \(sample 'ref'\): column 'ids': no such file: .*r\.txt$"):
        check_input_files(legacy, ["ref"])


def test_count_distance_ranges_off_the_metric_scale_stop_at_start_up():
    config = validate_config(load_config("config.yaml"), SCHEMAS / "config.schema.yaml")
    samples = read_samples(REPO / config["samples"], SCHEMAS / "samples.schema.yaml", REPO)
    assert config["evaluation"]["count_distance_metric"] == "cosine" != config["evaluation"]["metric"]
    config["evaluation"]["count_distance_ranges"] = [[0, 0.2], [0, 3]]
    with pytest.raises(KmervaeError, match=r"key 'evaluation.count_distance_ranges.1': \[0, 3\] is not a range"):
        plan(config, samples, REPO / "config" / "models")
    config["evaluation"]["count_distance_metric"] = "euclidean"
    assert plan(config, samples, REPO / "config" / "models").runs


def test_map_groups_are_checked_in_the_plan_and_apply_where_the_dataset_holds_them():
    config = validate_config(load_config("config.yaml"), SCHEMAS / "config.schema.yaml")
    samples = read_samples(REPO / config["samples"], SCHEMAS / "samples.schema.yaml", REPO)
    groups = config["evaluation"]["map_groups"]
    assert {s for members in groups.values() for s in members} == set(samples) and len(groups) == 2
    # both samples in ALL: its maps compare the groups; the aquatic dataset has one group's samples only
    assert map_groups_for(config, "ALL") == groups and map_groups_for(config, "aquatic") == {}
    models = REPO / "config" / "models"
    for bad, message in (
        ({"aquatic": ["aquatic"], "wet": ["lake"]}, r"'evaluation.map_groups.wet.0': sample 'lake' is not in"),
        ({"aquatic": ["aquatic"], "both": ["terrestrial", "aquatic"]}, r"both.1': sample 'aquatic' is in group"),
        ({"aquatic": ["aquatic"]}, r"key 'evaluation.map_groups': give two or more groups"),
    ):
        config["evaluation"]["map_groups"] = bad
        with pytest.raises(KmervaeError, match=message):
            plan(config, samples, models)
    config["evaluation"]["map_groups"] = {"a/b": ["aquatic"], "c": ["terrestrial"]}
    with pytest.raises(KmervaeError, match=r"key 'evaluation.map_groups'"):
        validate_config(config, SCHEMAS / "config.schema.yaml")
    config["evaluation"]["map_groups"] = {}
    assert plan(config, samples, models).runs and map_groups_for(config, "ALL") == {}


def test_bad_config_stops_snakemake_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [1000, -5]\n")
    result = snakemake("-n", "--configfile", str(REPO / "config" / "config.yaml"), str(bad), check=False)
    assert result.returncode != 0
    assert "kmervae: error: config: key 'thresholds.1': -5 is less than the minimum of 0" in result.stdout


# --- lint, format, the paper's plan ----------------------------------------------------------


def test_snakemake_lint_is_clean():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in result.stdout


def test_snakefmt_check_is_clean():
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "workflow" / "rules").glob("*.smk")))]
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def _touch_paper_inputs(root: Path) -> dict:
    """Empty placeholder files where config/paper_samples.tsv expects data: the plan needs paths, not data."""
    config = validate_config(load_config("paper.yaml"), SCHEMAS / "config.schema.yaml")
    samples = read_samples(REPO / config["samples"], SCHEMAS / "samples.schema.yaml", root)
    for sample in samples.values():
        for path in [*sample.fasta, sample.npy, sample.ids]:
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).touch()
    return config


def test_paper_dry_run_plans_every_job(tmp_path):
    config = _touch_paper_inputs(tmp_path)
    samples_table = pd.read_csv(REPO / config["samples"], sep="\t", comment="#", dtype=str)
    legacy = int(samples_table.npy.notna().sum())
    fasta = len(samples_table) - legacy
    thresholds = len(config["thresholds"])
    datasets = len(config["datasets"])
    used_samples = {s for d in config["datasets"].values() for s in d["samples"]}
    runs = datasets * thresholds * len(config["models"])
    testsets = datasets * thresholds
    # no sample of the paper carries a labels table, so there is no retrieval report
    expected = {
        "count": fasta, "import_legacy": legacy, "select": len(used_samples) * thresholds,
        "merge": datasets * thresholds, "train": runs, "embed": runs * testsets,
        "evaluate_spearman": runs * testsets, "index": runs, "evaluate_count_distance": runs,
        "evaluate_baselines": runs, "evaluate_map": runs, "compare": 1, "all": 1,
    }
    expected["total"] = sum(expected.values())
    result = snakemake("-n", "--configfile", str(REPO / "config" / "paper.yaml"),
                       "--config", f"data_root={tmp_path}", cwd=REPO)
    assert job_counts(result.stdout) == expected
    assert expected["train"] == 20 and expected["embed"] == 200


# --- the tiny end-to-end run -----------------------------------------------------------------


def workdir_for(tmp: Path) -> Path:
    """A run directory that sees the repository's config and demo data but keeps results apart."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("config", "resources"):
        (tmp / name).symlink_to(REPO / name)
    return tmp


def merged_config(paths) -> dict:
    """Config files merged as Snakemake does with several --configfile: later keys win, dicts merge."""
    def merge(base, extra):
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    config: dict = {}
    for path in paths:
        merge(config, yaml.safe_load(Path(path).read_text()))
    return config


def check_results(work: Path, config_files=(REPO / "config" / "test.yaml",)) -> pd.DataFrame:
    """The matrix has one row per run x test set of the config, each equal to its spearman.json."""
    config = validate_config(merged_config(config_files), SCHEMAS / "config.schema.yaml")
    samples = read_samples(REPO / config["samples"], SCHEMAS / "samples.schema.yaml", REPO)
    the_plan = plan(config, samples, REPO / "config" / "models")
    matrix = pd.read_csv(work / "results" / "reports" / "cross_comparison.tsv", sep="\t")
    assert sorted(zip(matrix.run, matrix.testset)) == sorted(
        (r, t) for r in the_plan.run_names for t in the_plan.testset_names
    )
    for row in matrix.itertuples():
        cell = json.loads((work / "results" / "reports" / row.run / row.testset / "spearman" / "spearman.json").read_text())
        assert row.spearman == pytest.approx(cell["spearman"], rel=1e-5)
        assert row.spearman_ci_lo <= row.spearman <= row.spearman_ci_hi or pd.isna(row.spearman_ci_lo)
    return matrix


@pytest.mark.slow
def test_tiny_workflow_end_to_end_then_noop_then_resume(tmp_path):
    work = workdir_for(tmp_path)
    config = ["--configfile", str(REPO / "config" / "test.yaml")]
    # a partial run (up to training) first, so the full run below resumes from it
    snakemake("--cores", "2", *config, "--until", "train", cwd=work)
    trained = sorted(p.name for p in (work / "results" / "models").iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in (work / "results" / "models").rglob("*.safetensors")}
    full = snakemake("--cores", "2", *config, cwd=work)
    assert "rule train:" not in full.stdout, "resuming retrained a finished model"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    matrix = check_results(work)
    assert set(matrix.run) == {f"{d}.min5000.default" for d in ("ALL", "aquatic")} and len(trained) == 2
    figures = ["length_sweep", "loss_curves", "lr_curves", "mse_by_kmer", "grand_comparison"]
    for name in figures:
        assert (work / "results" / "figures" / f"{name}.png").stat().st_size > 1000
    # count-distance on its own (cosine) scale: real fits, and no NaN in its report
    reports = sorted((work / "results" / "reports").rglob("count_distance.json"))
    for path in reports:
        refuse = lambda name: pytest.fail(f"{path} holds {name}")  # noqa: E731
        numbers = json.loads(path.read_text(), parse_constant=refuse)
        assert numbers["metric"] == "cosine" and all(0 < f["r2"] <= 1 for f in numbers["fits"]), path
    assert len(reports) == len(trained)
    # nothing to do on a rerun
    again = snakemake("--cores", "2", *config, cwd=work)
    assert "Nothing to be done" in again.stdout
    # a job's params are its own settings: a new map_iterations replans the maps and nothing else
    changed = tmp_path / "map_iterations.yaml"
    changed.write_text(yaml.safe_dump({"evaluation": {"map_iterations": 51}}))
    replan = snakemake("--dry-run", "--rerun-triggers", "params", *config, str(changed), cwd=work)
    assert job_counts(replan.stdout) == {"evaluate_map": len(trained), "all": 1, "total": len(trained) + 1}
    # a lost report is rebuilt, with the summary that depends on it, and nothing else
    shutil.rmtree(work / "results" / "reports" / matrix.run[0] / matrix.testset[0] / "spearman")
    before = (work / "results" / "reports" / "cross_comparison.tsv").read_bytes()
    redo = snakemake("--cores", "2", *config, "--dry-run", cwd=work)
    assert job_counts(redo.stdout) == {"evaluate_spearman": 1, "compare": 1, "all": 1, "total": 3}
    snakemake("--cores", "2", *config, cwd=work)
    assert (work / "results" / "reports" / "cross_comparison.tsv").read_bytes() == before
    # the report holds every figure of the run
    snakemake(*config, "--report", str(work / "report.html"), cwd=work)
    html = (work / "report.html").read_text(errors="replace")
    groups = ["map_composition", "map_density_aquatic_vs_terrestrial", "map_overlay_aquatic_vs_terrestrial"]
    for name in [*figures, "cross_comparison", "spearman_scatter", "curves", *groups]:
        assert f"{name}.png" in html, name
    # the maps of ALL compare its two samples over all their contigs; the aquatic dataset's stay plain
    for testset, grouped in (("ALL.min5000", True), ("aquatic.min5000", False)):
        out = work / "results" / "reports" / f"{testset.split('.')[0]}.min5000.default" / testset / "map"
        assert (out / "map_composition.tsv").exists() == grouped, testset
        mapped = pd.read_csv(out / "map.tsv", sep="\t")
        # both datasets' embeddings carry their samples (IDs may repeat across them): every map names them
        assert "sample" in mapped.columns and ("group" in mapped.columns) == grouped
        if grouped:  # every contig of the test set, not only its validation split
            stored = zarr.open_group(str(work / "results" / "datasets" / f"{testset}.zarr"), mode="r")
            assert len(mapped) == stored["id"].shape[0] and set(mapped["sample"]) == {"aquatic", "terrestrial"}

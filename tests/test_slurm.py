"""The workflow through a real SLURM: a one-node cluster on this machine, the tiny config
submitted job by job through profiles/slurm (adapted by tests/slurm/profile_overrides.yaml),
and the results compared with the same config run locally: seeded, so the same numbers.

Needs root and Debian's slurm-wlm + munge (`make slurm-deps`); skipped, with the reason,
where they are missing or the daemons cannot start (e.g. a configured cluster is present).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors import safe_open

from test_workflow import REPO, check_results, snakemake, workdir_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = REPO / "tests" / "slurm"
CONFIGS = [str(REPO / "config" / "test.yaml"), str(HERE / "config_overrides.yaml")]


def test_profile(directory: Path) -> Path:
    """profiles/slurm/config.yaml with the test cluster's settings put over it."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile.update(yaml.safe_load((HERE / "profile_overrides.yaml").read_text()))
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return directory


test_profile.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts slurmctld/slurmd/munged and needs root")
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if not shutil.which(t)]
    if missing:
        pytest.skip(f"slurm-wlm/munge not installed ({', '.join(missing)} missing; run `make slurm-deps` as root)")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(HERE / "cluster.sh"), "start", str(state)], capture_output=True, text=True)
    try:
        if started.returncode == 3:
            pytest.skip(f"cannot start a test cluster: {started.stderr.strip()}")
        if started.returncode != 0:
            logs = "".join(p.read_text()[-1500:] for p in state.glob("*.log"))
            pytest.skip(f"the SLURM daemons did not start: {started.stderr.strip()}\n{logs}")
        yield state
    finally:
        subprocess.run([str(HERE / "cluster.sh"), "stop", str(state)], capture_output=True, text=True)


def test_demo_through_slurm_matches_the_local_run(cluster, tmp_path):
    profile_settings = yaml.safe_load((HERE / "profile_overrides.yaml").read_text())
    same_threads = [f"{rule}={n}" for rule, n in profile_settings["set-threads"].items()]

    local = workdir_for(tmp_path / "local")
    snakemake("--cores", "2", "--configfile", *CONFIGS, "--set-threads", *same_threads, cwd=local)

    remote = workdir_for(tmp_path / "slurm")
    profile = test_profile(tmp_path / "profile")
    result = snakemake("--profile", str(profile), "--configfile", *CONFIGS, cwd=remote, timeout=1200)
    submitted = result.stdout.count("has been submitted with SLURM jobid")
    local_jobs = len(list((local / "logs").rglob("*.log")))
    assert submitted == local_jobs, result.stdout[-3000:]
    slurm_logs = remote / ".snakemake" / "slurm_logs"
    assert {p.name for p in slurm_logs.iterdir()} == {f"rule_{p.stem}" for p in (local / "logs").iterdir()}

    assert len(check_results(local, CONFIGS)) == len(check_results(remote, CONFIGS)) == 2
    assert (remote / "results/reports/cross_comparison.tsv").read_bytes() == (
        local / "results/reports/cross_comparison.tsv"
    ).read_bytes()
    # the weights themselves: the file bytes are not compared because safetensors writes its
    # metadata keys in hash-map order, which differs from one process to the next
    for weights in sorted((local / "results" / "models").rglob("best.safetensors")):
        mine, theirs = safe_open(weights, "np"), safe_open(remote / weights.relative_to(local), "np")
        assert mine.metadata() == theirs.metadata() and sorted(mine.keys()) == sorted(theirs.keys())
        for name in mine.keys():
            assert np.array_equal(mine.get_tensor(name), theirs.get_tensor(name)), name

"""What the workflow scripts share: send all output to the rule's log, run one kmervae command.

Most rules run ``kmervae`` in their ``shell:``; a script is left only where a rule does more
than pass its inputs to one command (train: a torchrun launch on several GPUs; dataset_labels:
tables joined in Python).
"""

from __future__ import annotations

import logging
import os
import sys

from kmervae.workflow_config import override_assignments


def redirect_to_log(path: str) -> None:
    """Point stdout, stderr (also of native code) and logging at the log file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def run_kmervae(snakemake, argv: list) -> None:
    """Run ``kmervae ARGV`` in this process, logging to ``snakemake.log[0]``; exit non-zero on failure."""
    from kmervae.cli import main

    redirect_to_log(str(snakemake.log[0]))
    argv = [str(a) for a in argv]
    logging.getLogger("kmervae.workflow").info("rule %s: kmervae %s", snakemake.rule, " ".join(argv))
    status = main(argv)
    if status:
        sys.exit(status)


def run_kmervae_torchrun(snakemake, argv: list, processes: int) -> None:
    """Run ``kmervae ARGV`` under torchrun with one process per GPU (DDP), logging to the rule's log."""
    import subprocess

    redirect_to_log(str(snakemake.log[0]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "kmervae", *[str(a) for a in argv]]
    logging.getLogger("kmervae.workflow").info("rule %s: %s", snakemake.rule, " ".join(command))
    sys.exit(subprocess.run(command).returncode)


def set_options(overrides: dict) -> list[str]:
    """``{"training.epochs": 3}`` -> ``["--set", "training.epochs=3"]`` (sorted, so the command is stable)."""
    return [part for assignment in override_assignments(overrides) for part in ("--set", assignment)]

"""The `kmervae` command: a table of subcommands over package functions.

Each subcommand lives in ``kmervae.commands.<module>`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen subcommand's
module is imported, so ``kmervae count`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from .version import __version__
from .errors import KmervaeError

#: name, module under kmervae.commands, one-line help
COMMANDS: list[tuple[str, str, str]] = [
    ("count", "count", "count canonical 6..1-mers of FASTA records into a k-mer store"),
    ("select", "select", "keep the records of a store at or above a minimum length"),
    ("merge", "merge", "merge stores into a shuffled dataset with a train/validation/test split"),
    ("chop", "chop", "cut genomes into contig-like fragments and write their labels"),
    ("import-legacy", "import_legacy", "import a legacy N x 2773 float32 .npy + ids.txt as a store"),
    ("export-legacy", "export_legacy", "export a store as a legacy N x 2773 float32 .npy + ids.txt"),
    ("info", "info", "summarise any output: k-mer store, embeddings, model directory, index, reports"),
    ("train", "train", "train the VAE on a dataset store"),
    ("embed", "embed", "embed a store or FASTA as the VAE's z_mean"),
    ("index", "index", "build a FAISS index over embeddings"),
    ("query", "query", "nearest neighbours of contigs from an index"),
    ("export", "export", "export embeddings as TSV, Parquet, NumPy or AnnData .h5ad"),
    ("evaluate", "evaluate", "quality reports: spearman, count-distance, baselines, retrieval, map"),
    ("compare", "compare", "cross-comparison matrix and summary figures over many runs"),
]
#: argument names that are output paths, unless a command module declares its own ``OUTPUTS``
OUTPUTS = ("output", "outdir")
#: OS errors that describe the user's file system (a path that cannot be written), not a bug
ENVIRONMENT_ERRNOS = {
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EISDIR", "EEXIST")
    if hasattr(errno, name)
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmervae",
        description="Multi-scale canonical k-mer profiles of contigs, a VAE over them, and its embeddings.",
    )
    parser.add_argument("--version", action="version", version=f"kmervae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            mod = importlib.import_module(f"kmervae.commands.{module}")
            mod.add_arguments(sp)
            sp.set_defaults(run=mod.run, outputs=getattr(mod, "OUTPUTS", OUTPUTS))
    return parser


class Terminated(BaseException):
    """SIGTERM (sent by ``timeout``, SLURM, workflow managers): unwinds like Ctrl-C so that
    temporaries are removed on the way out."""


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds():
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _paths(value) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if isinstance(value, (list, tuple)):
        return [os.fspath(v) for v in value if isinstance(v, (str, os.PathLike))]
    return []


def check_outputs_are_not_inputs(args) -> None:
    """One clear error when an output path names an input (or another output) of the command."""
    names = set(getattr(args, "outputs", ()))
    outputs = [(p, Path(p).resolve()) for name in sorted(names) for p in _paths(getattr(args, name, None))]
    inputs = [
        p
        for name, value in vars(args).items()
        if name not in names and name not in ("run", "outputs", "command", "evaluation")
        for p in _paths(value)
        if os.path.lexists(p)
    ]
    seen = {}
    for out, resolved in outputs:
        if resolved in seen:
            raise KmervaeError(f"{out}: is given as two outputs ({seen[resolved]} and {out})")
        seen[resolved] = out
        for p in inputs:
            if Path(p).resolve() == resolved:
                raise KmervaeError(f"{out}: is an input of this command too; choose another output path")


def _run(args) -> int:
    try:
        check_outputs_are_not_inputs(args)
        return int(args.run(args) or 0)
    except KmervaeError as exc:
        print(f"kmervae: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `kmervae info ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS or exc.filename is None:
            raise
        logging.getLogger("kmervae").debug("file system error", exc_info=True)
        print(f"kmervae: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _after_signal()
        print("kmervae: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        _after_signal()
        print("kmervae: terminated (SIGTERM); unfinished outputs were removed", file=sys.stderr)
        return 128 + signal.SIGTERM


def _after_signal() -> None:
    """Remove what the interrupted stage left and keep the exit to one line: a signal that
    arrived inside zarr's event loop leaves coroutines that would warn at shutdown."""
    from .io.atomic import remove_own_temporaries

    remove_own_temporaries()
    if _drain_zarr_loop():  # a write still running on zarr's I/O thread may recreate a temporary
        remove_own_temporaries()
    warnings.simplefilter("ignore")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


def _drain_zarr_loop(timeout: float = 10.0) -> bool:
    """Wait (bounded) for the coroutines on zarr's event loop; whether there was one to wait for.

    zarr runs its store writes on its own I/O thread (and their file operations in that
    loop's executor threads): when a signal unwinds the main thread, a write it had handed
    over may still be creating files inside the temporary output."""
    import asyncio

    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or not loop.is_running():
        return False

    async def pending():
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        # file writes run in the loop's executor threads, which finish even after a cancel
        await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), timeout)

    try:
        asyncio.run_coroutine_threadsafe(pending(), loop).result(timeout + 1)
    except Exception:  # noqa: BLE001 - best effort on the way out; the removal runs regardless
        pass
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _, _ in COMMANDS}
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in names else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # libraries' chatter at INFO (PDF font subsetting, openTSNE's phase notes) would bury kmervae's progress
    for chatty in ("fontTools", "openTSNE"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    with _sigterm_unwinds():
        return _run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `kmervae` command: a table of subcommands over package functions.

Each subcommand lives in ``kmervae.commands.<module>`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen subcommand's
module is imported, so ``kmervae count`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
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
            sp.set_defaults(run=mod.run)
    return parser


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
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KmervaeError as exc:
        print(f"kmervae: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `kmervae info ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("kmervae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`kmervae compare`: the cross-comparison matrix and the summary figures over many runs."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from kmervae.compare import OPTIONS
    from kmervae.options import add_options

    add_options(parser, OPTIONS)


def run(args) -> int:
    from kmervae.compare import OPTIONS, compare_runs
    from kmervae.options import values

    written = compare_runs(**values(args, OPTIONS))
    for name, path in written.items():
        print(f"{name}\t{path}")
    return 0

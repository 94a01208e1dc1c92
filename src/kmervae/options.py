"""A stage's options, declared once beside its function: the CLI and the workflow are derived from them.

Each stage module (``kmervae.count``, ``kmervae.chop``, ``kmervae.evaluate.spearman``, ...)
holds a tuple ``OPTIONS`` of :class:`Option`. An option's ``name`` is the keyword of the
stage function and the attribute of the parsed arguments; its ``default`` is the
function's default (the function's signature reads it from ``DEFAULTS``). The command
module adds them to its parser with :func:`add_options` and passes
:func:`values` to the function. An option with a ``workflow`` key takes its value from
that key of the workflow config (``chop.max_length``, ``datasets.{dataset}.fractions``);
the rules render those as command-line arguments with :func:`workflow_arguments`, and
tests/test_options.py checks the workflow schema's default of each key against ``workflow_default``
(the option's default unless the workflow deliberately chooses another).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: marks ``workflow_default`` as "the same as ``default``"
SAME = object()


@dataclass(frozen=True)
class Option:
    """One setting of a stage: its CLI flag, default, type and help, and its workflow config key."""

    name: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    help: str = ""
    metavar: str | None = None
    choices: tuple | None = None
    nargs: str | None = None
    #: ``"append"``: the flag repeats, each value one item of a list (``--group A=x --group B=y``)
    action: str | None = None
    #: the CLI flag (default ``--`` + name with dashes)
    flag: str | None = None
    #: the CLI refuses to run without it (a stage input rather than a setting)
    required: bool = False
    #: dotted key of the workflow config holding the value; ``{wildcard}`` parts are filled in
    workflow: str | None = None
    #: the workflow schema's default when it deliberately differs from ``default``
    workflow_default: Any = field(default=SAME, compare=False)
    #: a value (from the config or the default) as command-line text; default ``str``
    render: Callable[[Any], str] | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def expected_workflow_default(self) -> Any:
        return self.default if self.workflow_default is SAME else self.workflow_default

    def text(self, value) -> list[str]:
        """``value`` as the words after the flag."""
        if self.nargs in ("+", "*") or self.action == "append":
            return [(self.render or str)(v) for v in value]
        return [(self.render or str)(value)]


def comma_ints(text: str) -> list[int]:
    """``"1,10,50"`` -> ``[1, 10, 50]`` (an option's ``type``)."""
    return [int(x) for x in text.split(",") if x.strip()]


def comma_join(values) -> str:
    """``[1, 10, 50]`` -> ``"1,10,50"`` (the ``render`` of a :func:`comma_ints` option)."""
    return ",".join(str(v) for v in values)


def _help(option: Option) -> str | None:
    empty = isinstance(option.default, (list, tuple)) and not option.default
    if option.default is None or empty or "default" in option.help:
        return option.help or None
    shown = " ".join(option.text(option.default))
    return f"{option.help} (default {shown})" if option.help else f"default {shown}"


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add each option's flag to ``parser``; the parsed value lands in ``args.<name>``."""
    for option in options:
        default = list(option.default) if option.nargs and option.default is not None else option.default
        optional = (
            ("nargs", option.nargs),
            ("action", option.action),
            ("type", option.type),  # a flag (``store_true``) takes none of these three
            ("choices", option.choices),
            ("metavar", option.metavar),
        )
        extra = {key: v for key, v in optional if v is not None}
        parser.add_argument(
            option.cli_flag,
            dest=option.name,
            default=default,
            required=option.required,
            help=_help(option),
            **extra,
        )


def defaults(options: Iterable[Option]) -> dict[str, Any]:
    """``{name: default}``: what the stage function's signature reads its defaults from."""
    return {option.name: option.default for option in options}


def values(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The parsed value of each option, as keywords of the stage function."""
    return {option.name: getattr(args, option.name) for option in options}


def config_value(config: Mapping, key: str) -> Any:
    """The value at a dotted key of the workflow config (``evaluation.pool``)."""
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def workflow_arguments(options: Iterable[Option], config: Mapping, **wildcards: str) -> list[str]:
    """The command-line arguments of every option that takes its value from the workflow config.

    ``wildcards`` fill the ``{name}`` parts of the keys (``datasets.{dataset}.fractions``).
    An empty list value is left out (argparse's ``nargs="+"`` would refuse it)."""
    argv: list[str] = []
    for option in options:
        if not option.workflow:
            continue
        value = config_value(config, option.workflow.format(**wildcards))
        if option.action == "append":
            argv += [word for item in option.text(value) for word in (option.cli_flag, item)]
        elif not (option.nargs and len(value) == 0):
            argv += [option.cli_flag, *option.text(value)]
    return argv

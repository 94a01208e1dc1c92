"""The quality reports as one table: each report's function, its options, its inputs and its summary.

``kmervae evaluate REPORT`` builds one subcommand per entry (the report's inputs, then its
options) and calls its function; the workflow's ``evaluate_*`` rules take the options with
a ``workflow`` key from the config's ``evaluation`` section (and ``seed``), so the CLI, the
workflow and the functions' defaults come from the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..options import Option
from . import baselines, count_distance, retrieval, spearman
from . import map as map_report

REQUIRED, OPTIONAL = "required", "optional"


@dataclass(frozen=True)
class Report:
    """One quality report: ``function(embeddings=, outdir=[, store=][, labels=], **options)``."""

    name: str  # the subcommand, and the workflow's name in evaluation.reports
    help: str
    function: Callable[..., dict]
    options: tuple[Option, ...]
    summary: Callable[[dict], str]  # the report's numbers as the lines the CLI prints
    store: str | None  # whether --store (the k-mer store) is REQUIRED, OPTIONAL or not taken (None)
    labels: str | None  # the same for --labels (a labels table)


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "spearman",
            "latent distance vs k-mer MSE of nearest neighbours (Spearman, Pearson, bootstrap CIs)",
            spearman.spearman,
            spearman.OPTIONS,
            spearman.format_result,
            store=REQUIRED,
            labels=None,
        ),
        Report(
            "count-distance",
            "nearest-neighbour distance histogram, cumulative count fits, pairwise distances",
            count_distance.count_distance,
            count_distance.OPTIONS,
            count_distance.format_result,
            store=None,
            labels=None,
        ),
        Report(
            "baselines",
            "the spearman protocol on PCA of the CLR input at several widths",
            baselines.baselines,
            baselines.OPTIONS,
            baselines.format_table,
            store=REQUIRED,
            labels=None,
        ),
        Report(
            "retrieval",
            "precision@k of same-label neighbours: VAE vs CLR, PCA and 4-mer CLR",
            retrieval.retrieval,
            retrieval.OPTIONS,
            retrieval.format_table,
            store=OPTIONAL,
            labels=REQUIRED,
        ),
        Report(
            "map",
            "openTSNE map with HDBSCAN clusters, coloured by GC, cluster and label",
            map_report.map_embeddings,
            map_report.OPTIONS,
            map_report.format_result,
            store=OPTIONAL,
            labels=OPTIONAL,
        ),
    )
}

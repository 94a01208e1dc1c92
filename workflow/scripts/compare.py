"""Rule compare: the cross-comparison matrix and the summary figures over every run and test set."""

from pathlib import Path

from wiring import run_kmervae


def root_of(paths, depth: int) -> str:
    """The one directory ``depth`` levels above every input (REPORTS/{run}/{testset}/spearman: 3)."""
    roots = {str(Path(p).parents[depth - 1]) for p in paths}
    if len(roots) != 1:
        raise SystemExit(f"kmervae: error: rule compare: inputs under several roots {sorted(roots)}")
    return roots.pop()


out = snakemake.output
figures = snakemake.params.figures
run_kmervae(
    snakemake,
    ["compare", "--runs", *snakemake.params.runs, "--testsets", *snakemake.params.testsets,
     "--reports", root_of(snakemake.input.spearman, 3), "--models", root_of(snakemake.input.models, 1),
     "--matrix", out.matrix, "--figures", Path(out.length_sweep).parent, "--cmap", figures["heatmap_cmap"],
     "--length-sweep", figures["length_sweep_testset"]],
)

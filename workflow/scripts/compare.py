"""Rule compare: the cross-comparison matrix and the summary figures over every run and test set."""

from pathlib import Path

from wiring import run_kmervae

out = snakemake.output
figures = snakemake.params.figures
run_kmervae(
    snakemake,
    ["compare", "--runs", *snakemake.params.runs, "--testsets", *snakemake.params.testsets,
     "--reports", "results/reports", "--models", "results/models", "--matrix", out.matrix,
     "--figures", Path(out.length_sweep).parent, "--cmap", figures["heatmap_cmap"],
     "--length-sweep", figures["length_sweep_testset"]],
)

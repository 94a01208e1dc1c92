"""Rule select: the records of a sample at or above the length threshold."""

from wiring import run_kmervae

run_kmervae(
    snakemake,
    ["select", snakemake.input.store, "--min-length", snakemake.wildcards.threshold, "-o", snakemake.output.store],
)

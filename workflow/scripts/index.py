"""Rule index: a FAISS index over a run's embeddings of a test set."""

from wiring import run_kmervae

run_kmervae(
    snakemake,
    ["index", snakemake.input.embeddings, "-o", snakemake.output.index,
     "--metric", snakemake.params.metric, "--kind", snakemake.params.kind,
     "--memory-gb", snakemake.params.memory_gb],
)

"""Rule embed: a test set embedded as the run's z_mean."""

from wiring import run_kmervae

run_kmervae(
    snakemake,
    ["embed", "--model", snakemake.input.model, snakemake.input.store, "-o", snakemake.output.embeddings,
     "--threads", snakemake.threads, "--device", snakemake.params.device],
)

"""Rule train: the VAE of one model variant on one dataset; resumes from its checkpoint if present."""

from wiring import run_kmervae, set_options

run_kmervae(
    snakemake,
    ["train", "--config", snakemake.input.model_config, "--data", snakemake.input.data,
     "-o", snakemake.output.model, "--device", snakemake.params.device, "--threads", snakemake.threads,
     *set_options(snakemake.params.overrides)],
)

"""Rule train: the VAE of one model variant on one dataset.

It trains in results/.training/{run}/ and moves the finished model to the output, so an
interrupted job (Snakemake deletes its unfinished output) continues from its last
checkpoint when the workflow is run again. With more than one GPU in the job's resources
(``gpu: 4`` in the profile) it trains data-parallel under torchrun, one process per GPU;
otherwise in this process.
"""

from wiring import run_kmervae, run_kmervae_torchrun, set_options

argv = ["train", "--config", snakemake.input.model_config, "--data", snakemake.input.data,
        "-o", snakemake.output.model, "--work-dir", snakemake.params.work_dir,
        "--device", snakemake.params.device, "--threads", snakemake.threads,
        *set_options(snakemake.params.overrides)]
gpus = int(snakemake.resources.get("gpu", 0) or 0)
if gpus > 1:
    run_kmervae_torchrun(snakemake, argv, gpus)
else:
    run_kmervae(snakemake, argv)

"""Rule merge: a dataset's samples merged with a seeded shuffle and a train/validation/test split."""

from wiring import run_kmervae

argv = ["merge", *snakemake.input.stores, "-o", snakemake.output.store, "--seed", snakemake.params.seed,
        "--fractions", *snakemake.params.fractions, "--samples", *snakemake.params.samples]
if snakemake.params.test_samples:
    argv += ["--test-samples", *snakemake.params.test_samples]
run_kmervae(snakemake, argv)

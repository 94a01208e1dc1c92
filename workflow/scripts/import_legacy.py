"""Rule import_legacy: a legacy N x 2773 .npy + ids.txt pair as a k-mer store."""

from wiring import run_kmervae

run_kmervae(snakemake, ["import-legacy", snakemake.input.npy, snakemake.input.ids, "-o", snakemake.output.store])

"""Rule count: canonical k-mer counts of a sample's FASTA files into a k-mer store."""

from wiring import run_kmervae

run_kmervae(
    snakemake,
    ["count", *snakemake.input.fasta, "-o", snakemake.output.store, "--threads", snakemake.threads,
     "--k", snakemake.params.groups, "--sample", snakemake.wildcards.sample],
)

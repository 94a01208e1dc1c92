"""Rule chop: cut a sample's genomes into contig-like fragments and write their labels."""

from wiring import run_kmervae

settings = snakemake.params.settings
run_kmervae(
    snakemake,
    ["chop", *snakemake.input.genomes, "-o", snakemake.output.fasta, "--labels", snakemake.output.labels,
     "--seed", snakemake.params.seed,
     "--min-length", settings["min_length"], "--max-length", settings["max_length"],
     "--median", settings["median"], "--distribution", settings["distribution"]],
)

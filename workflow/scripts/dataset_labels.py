"""Rule dataset_labels: the labels tables of a test set's samples as one table."""

from wiring import redirect_to_log

from kmervae.compare import concat_tables

redirect_to_log(snakemake.log[0])
concat_tables(snakemake.input.labels, snakemake.output.labels)

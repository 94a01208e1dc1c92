# kmervae: contigs -> k-mer profiles -> VAE -> embeddings -> FAISS index -> reports,
# for every dataset x length threshold x model variant in the config.
#
#   snakemake --cores 2                                   # the demo (config/config.yaml)
#   snakemake --profile profiles/slurm                    # the same on a SLURM cluster
#   snakemake -n --configfile config/paper.yaml           # plan the paper's full design
#   snakemake --report results/report.html                # every figure and table in one page
#
# Rules are split by stage in workflow/rules/; the helpers they share are in common.smk.
# Every rule runs a thin script in workflow/scripts/ that calls the kmervae package.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/chop.smk"
include: "workflow/rules/count.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),

# kmervae: contigs -> k-mer profiles -> VAE -> embeddings -> FAISS index -> reports,
# for every dataset x length threshold x model variant in the config.
#
#   snakemake --cores 2                                   # the demo (config/config.yaml)
#   snakemake --profile profiles/slurm                    # the same on a SLURM cluster
#   snakemake -n --configfile config/paper.yaml           # plan the paper's full design
#   snakemake --report results/report.html                # every figure and table in one page
#
# Rules are split by stage in workflow/rules/; the helpers they share are in common.smk.
# Every rule runs one kmervae command (train and dataset_labels: a script in workflow/scripts/),
# with its own stage's options from the config as params (kmervae.options, common.smk).

from snakemake.utils import min_version

min_version("9.0")


# The demo config unless --configfile names others: each config file describes a whole
# experiment, so config/paper.yaml is not mixed with the demo's datasets.
if not workflow.config_settings.configfiles:

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

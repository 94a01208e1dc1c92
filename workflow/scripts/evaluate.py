"""Rules evaluate_*: one quality report (the rule name says which) into the rule's output directory."""

from wiring import run_kmervae

report = snakemake.rule.removeprefix("evaluate_").replace("_", "-")
settings = snakemake.params.settings
argv = ["evaluate", report, "--store", snakemake.input.store, "-o", snakemake.output.report,
        "--seed", snakemake.params.seed, "--threads", snakemake.threads]
if report != "baselines":
    argv += ["--embeddings", snakemake.input.embeddings]
if report == "retrieval":
    argv += ["--labels", snakemake.input.labels]
if report in ("spearman", "count-distance", "baselines"):
    argv += ["--pool", settings["pool"], "--queries", settings["queries"], "--k", settings["k"],
             "--metric", settings["metric"]]
if report in ("spearman", "baselines"):
    argv += ["--bootstrap", settings["bootstrap"]]
run_kmervae(snakemake, argv)

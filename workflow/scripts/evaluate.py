"""Rules evaluate_*: one quality report (the rule name says which) into the rule's output directory."""

from wiring import run_kmervae

from kmervae.evaluate.map_groups import group_arguments

report = snakemake.rule.removeprefix("evaluate_").replace("_", "-")
s = snakemake.params.settings
argv = ["evaluate", report, "--embeddings", snakemake.input.embeddings, "-o", snakemake.output.report,
        "--split", s["split"], "--seed", snakemake.params.seed, "--threads", snakemake.threads]
if report != "count-distance":
    argv += ["--store", snakemake.input.store]
if report in ("spearman", "baselines"):
    argv += ["--pool", s["pool"], "--queries", s["queries"], "--k", s["k"], "--metric", s["metric"],
             "--bootstrap", s["bootstrap"]]
elif report == "count-distance":
    argv += ["--sample", s["sample"], "--metric", s["count_distance_metric"],
             "--ranges", ",".join(f"{lo}-{hi}" for lo, hi in s["count_distance_ranges"])]
elif report == "retrieval":
    argv += ["--labels", snakemake.input.labels, "--label-column", s["label_column"], "--pool", s["pool"],
             "--queries", s["retrieval_queries"], "--metric", s["metric"],
             "--ks", ",".join(str(k) for k in s["retrieval_ks"])]
elif report == "map":
    argv += ["--sample", s["sample"], "--metric", s["metric"], "--n-iter", s["map_iterations"]]
    if snakemake.input.get("labels"):
        argv += ["--labels", snakemake.input.labels, "--label-column", s["label_column"]]
    argv += group_arguments(snakemake.params.groups)
run_kmervae(snakemake, argv)

# Per run x test set: how well embedding distances keep k-mer distances (Spearman, every
# test set: the cross-comparison matrix); on the run's own test set also neighbour counts
# vs distance, label retrieval, the t-SNE/HDBSCAN map and the PCA baselines. Each rule's
# params are its own report's settings only (kmervae.evaluate.reports), so changing, say,
# evaluation.map_iterations reruns the maps and nothing else.


rule evaluate_spearman:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
        store="results/datasets/{testset}.zarr",
    output:
        report=report(
            directory("results/reports/{run}/{testset}/spearman"),
            patterns=["{name}.png"],
            caption="../report/spearman.rst",
            category="Spearman per run",
            subcategory="{run}",
            labels={"run": "{run}", "test set": "{testset}", "figure": "{name}"},
        ),
    log:
        log_path("evaluate_spearman", "{run}/{testset}"),
    benchmark:
        benchmark_path("evaluate_spearman", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        options=report_options("spearman"),
    shell:
        "kmervae evaluate spearman --embeddings {input.embeddings:q} --store {input.store:q}"
        " -o {output.report:q} --threads {threads} {params.options} > {log:q} 2>&1"


rule evaluate_count_distance:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
        store="results/datasets/{testset}.zarr",
    output:
        report=report(
            directory("results/reports/{run}/{testset}/count_distance"),
            patterns=["{name}.png"],
            caption="../report/count_distance.rst",
            category="Count vs distance",
            subcategory="{run}",
            labels={"run": "{run}", "test set": "{testset}", "figure": "{name}"},
        ),
    log:
        log_path("evaluate_count_distance", "{run}/{testset}"),
    benchmark:
        benchmark_path("evaluate_count_distance", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        options=report_options("count-distance"),
    shell:
        "kmervae evaluate count-distance --embeddings {input.embeddings:q}"
        " -o {output.report:q} --threads {threads} {params.options} > {log:q} 2>&1"


rule evaluate_retrieval:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
        store="results/datasets/{testset}.zarr",
        labels="results/datasets/{testset}.labels.tsv",
    output:
        report=report(
            directory("results/reports/{run}/{testset}/retrieval"),
            patterns=["{name}.png"],
            caption="../report/retrieval.rst",
            category="Retrieval",
            subcategory="{run}",
            labels={"run": "{run}", "test set": "{testset}", "figure": "{name}"},
        ),
    log:
        log_path("evaluate_retrieval", "{run}/{testset}"),
    benchmark:
        benchmark_path("evaluate_retrieval", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        options=report_options("retrieval"),
    shell:
        "kmervae evaluate retrieval --embeddings {input.embeddings:q} --store {input.store:q}"
        " --labels {input.labels:q} -o {output.report:q} --threads {threads} {params.options}"
        " > {log:q} 2>&1"


rule evaluate_map:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
        store="results/datasets/{testset}.zarr",
        labels=lambda wc: (
            f"results/datasets/{wc.testset}.labels.tsv"
            if has_labels(wc.testset)
            else []
        ),
    output:
        report=report(
            directory("results/reports/{run}/{testset}/map"),
            patterns=["{name}.png"],
            caption="../report/map.rst",
            category="Maps",
            subcategory="{run}",
            labels={"run": "{run}", "test set": "{testset}", "figure": "{name}"},
        ),
    log:
        log_path("evaluate_map", "{run}/{testset}"),
    benchmark:
        benchmark_path("evaluate_map", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        options=report_options("map"),
        groups=lambda wc: shlex.join(group_arguments(map_groups(wc))),
        labels=lambda wc, input: (
            shlex.join(["--labels", input.labels]) if input.labels else ""
        ),
    shell:
        "kmervae evaluate map --embeddings {input.embeddings:q} --store {input.store:q}"
        " {params.labels} -o {output.report:q} --threads {threads} {params.options} {params.groups}"
        " > {log:q} 2>&1"


rule evaluate_baselines:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
        store="results/datasets/{testset}.zarr",
    output:
        report=report(
            directory("results/reports/{run}/{testset}/baselines"),
            patterns=["{name}.png"],
            caption="../report/baselines.rst",
            category="Baselines",
            subcategory="{run}",
            labels={"run": "{run}", "test set": "{testset}", "figure": "{name}"},
        ),
    log:
        log_path("evaluate_baselines", "{run}/{testset}"),
    benchmark:
        benchmark_path("evaluate_baselines", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        options=report_options("baselines"),
    shell:
        "kmervae evaluate baselines --embeddings {input.embeddings:q} --store {input.store:q}"
        " -o {output.report:q} --threads {threads} {params.options} > {log:q} 2>&1"

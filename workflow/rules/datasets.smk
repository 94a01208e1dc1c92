# Per dataset x threshold: the dataset's samples above the threshold, merged with a seeded
# shuffle and a train/validation/test split.


rule merge:
    input:
        stores=lambda wc: expand(
            "results/kmers/{sample}.min{threshold}.zarr",
            sample=DATASETS[wc.dataset]["samples"],
            threshold=wc.threshold,
        ),
    output:
        store=directory("results/datasets/{dataset}.min{threshold}.zarr"),
    log:
        log_path("merge", "{dataset}.min{threshold}"),
    benchmark:
        benchmark_path("merge", "{dataset}.min{threshold}")
    conda:
        "../../envs/count.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        options=lambda wc: stage_options(MERGE_OPTIONS, dataset=wc.dataset),
    shell:
        "kmervae merge {input.stores:q} -o {output.store:q} {params.options} > {log:q} 2>&1"


rule dataset_labels:
    input:
        labels=dataset_labels,
    output:
        labels="results/datasets/{testset}.labels.tsv",
    log:
        log_path("dataset_labels", "{testset}"),
    benchmark:
        benchmark_path("dataset_labels", "{testset}")
    conda:
        "../../envs/count.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../scripts/dataset_labels.py"

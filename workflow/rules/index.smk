# Per run x test set: a FAISS index over the embeddings for nearest-neighbour queries.


rule index:
    input:
        embeddings="results/embeddings/{run}/{testset}.zarr",
    output:
        index="results/index/{run}/{testset}.faiss",
        ids="results/index/{run}/{testset}.faiss.ids.tsv",
        meta="results/index/{run}/{testset}.faiss.json",
    log:
        log_path("index", "{run}/{testset}"),
    benchmark:
        benchmark_path("index", "{run}/{testset}")
    conda:
        "../../envs/evaluate.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards: int(config["index"]["memory_gb"] * 1024) + 2048,
        runtime=120,
    params:
        metric=config["index"]["metric"],
        kind=config["index"]["kind"],
        memory_gb=config["index"]["memory_gb"],
    shell:
        "kmervae index {input.embeddings:q} -o {output.index:q} --metric {params.metric}"
        " --kind {params.kind} --memory-gb {params.memory_gb} > {log:q} 2>&1"

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
        mem_mb=8000,
        runtime=120,
    params:
        metric=config["index"]["metric"],
        kind=config["index"]["kind"],
    shell:
        "kmervae index {input.embeddings:q} -o {output.index:q} --metric {params.metric}"
        " --kind {params.kind} > {log:q} 2>&1"

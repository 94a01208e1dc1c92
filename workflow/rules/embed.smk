# Per run x test set: every contig of the test set as the run's VAE z_mean.


rule embed:
    input:
        model="results/models/{run}",
        store="results/datasets/{testset}.zarr",
    output:
        embeddings=directory("results/embeddings/{run}/{testset}.zarr"),
    log:
        log_path("embed", "{run}/{testset}"),
    benchmark:
        benchmark_path("embed", "{run}/{testset}")
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        options=stage_options(EMBED_OPTIONS),
    shell:
        "kmervae embed --model {input.model:q} {input.store:q} -o {output.embeddings:q}"
        " --threads {threads} {params.options} > {log:q} 2>&1"

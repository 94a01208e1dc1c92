# Per run (dataset x threshold x model variant): train the VAE on the dataset's split.


rule train:
    input:
        data=lambda wc: f"results/datasets/{parse_run(wc.run).testset}.zarr",
        model_config=lambda wc: str(MODELS_DIR / f"{parse_run(wc.run).model}.yaml"),
    output:
        model=report(
            directory("results/models/{run}"),
            patterns=["{name}.png"],
            caption="../report/training.rst",
            category="Training",
            labels={"run": "{run}", "figure": "training curves"},
        ),
    log:
        log_path("train", "{run}"),
    benchmark:
        benchmark_path("train", "{run}")
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        gpu=config["training"]["gpus"],
    params:
        work_dir=lambda wc: f"results/.training/{wc.run}",
        device=config["training"]["device"],
        overrides=config["training"]["set"],
    script:
        "../scripts/train.py"

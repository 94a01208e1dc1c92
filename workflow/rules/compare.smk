# Every run x every test set: the cross-comparison matrix and the summary figures.


rule compare:
    input:
        spearman=expand(
            "results/reports/{run}/{testset}/spearman", run=RUNS, testset=TESTSETS
        ),
        models=expand("results/models/{run}", run=RUNS),
        baselines=own_reports("baselines") if "baselines" in REPORTS else [],
    output:
        matrix=report(
            "results/reports/cross_comparison.tsv",
            caption="../report/cross_comparison.rst",
            category="Cross-comparison",
            labels={"table": "cross-comparison (one row per cell)"},
        ),
        matrix_wide=report(
            "results/reports/cross_comparison_matrix.tsv",
            caption="../report/cross_comparison.rst",
            category="Cross-comparison",
            labels={"table": "cross-comparison matrix (rho [lo, hi])"},
        ),
        heatmap=report(
            "results/reports/cross_comparison.png",
            caption="../report/cross_comparison.rst",
            category="Cross-comparison",
            labels={"figure": "cross-comparison heatmap"},
        ),
        length_sweep=report(
            "results/figures/length_sweep.png",
            caption="../report/length_sweep.rst",
            category="Summary figures",
            labels={"figure": "length sweep"},
        ),
        loss_curves=report(
            "results/figures/loss_curves.png",
            caption="../report/curves.rst",
            category="Summary figures",
            labels={"figure": "validation loss"},
        ),
        lr_curves=report(
            "results/figures/lr_curves.png",
            caption="../report/curves.rst",
            category="Summary figures",
            labels={"figure": "learning rate"},
        ),
        mse_by_kmer=report(
            "results/figures/mse_by_kmer.png",
            caption="../report/mse_by_kmer.rst",
            category="Summary figures",
            labels={"figure": "MSE per k-mer group"},
        ),
        grand=report(
            "results/figures/grand_comparison.png",
            caption="../report/grand_comparison.rst",
            category="Summary figures",
            labels={"figure": "grand comparison"},
        ),
        grand_table=report(
            "results/figures/grand_comparison.tsv",
            caption="../report/grand_comparison.rst",
            category="Summary figures",
            labels={"table": "grand comparison"},
        ),
    log:
        log_path("compare"),
    benchmark:
        benchmark_path("compare")
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        runs=RUNS,
        testsets=TESTSETS,
        options=stage_options(COMPARE_OPTIONS),
    shell:
        "kmervae compare --runs {params.runs:q} --testsets {params.testsets:q}"
        " --reports results/reports --models results/models --matrix {output.matrix:q}"
        " --figures results/figures {params.options} > {log:q} 2>&1"

# Whole genomes -> contig-like fragments with a labels table (samples with chop: true).


rule chop:
    input:
        genomes=lambda wc: SAMPLES[wc.sample].fasta,
    output:
        fasta="results/chopped/{sample}.fa.gz",
        labels="results/chopped/{sample}.labels.tsv",
    log:
        log_path("chop", "{sample}"),
    benchmark:
        benchmark_path("chop", "{sample}")
    conda:
        "../../envs/count.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        options=stage_options(CHOP_OPTIONS),
    shell:
        "kmervae chop {input.genomes:q} -o {output.fasta:q} --labels {output.labels:q}"
        " {params.options} > {log:q} 2>&1"

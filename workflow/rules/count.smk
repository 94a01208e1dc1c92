# Per sample: canonical 6..1-mer counts of every contig (or a legacy .npy imported as is).


rule count:
    input:
        fasta=sample_fasta,
    output:
        store=directory("results/kmers/{sample}.zarr"),
    log:
        log_path("count", "{sample}"),
    benchmark:
        benchmark_path("count", "{sample}")
    wildcard_constraints:
        sample=alternation(s for s in SAMPLES if not SAMPLES[s].is_legacy),
    conda:
        "../../envs/count.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        options=stage_options(COUNT_OPTIONS),
    shell:
        "kmervae count {input.fasta:q} -o {output.store:q} --threads {threads}"
        " --sample {wildcards.sample:q} {params.options} > {log:q} 2>&1"


rule import_legacy:
    input:
        npy=lambda wc: SAMPLES[wc.sample].npy,
        ids=lambda wc: SAMPLES[wc.sample].ids,
    output:
        store=directory("results/kmers/{sample}.zarr"),
    log:
        log_path("import_legacy", "{sample}"),
    benchmark:
        benchmark_path("import_legacy", "{sample}")
    wildcard_constraints:
        sample=alternation(s for s in SAMPLES if SAMPLES[s].is_legacy),
    conda:
        "../../envs/count.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    shell:
        "kmervae import-legacy {input.npy:q} {input.ids:q} -o {output.store:q} > {log:q} 2>&1"


rule select:
    input:
        store="results/kmers/{sample}.zarr",
    output:
        store=directory("results/kmers/{sample}.min{threshold}.zarr"),
    log:
        log_path("select", "{sample}.min{threshold}"),
    benchmark:
        benchmark_path("select", "{sample}.min{threshold}")
    conda:
        "../../envs/count.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "kmervae select {input.store:q} --min-length {wildcards.threshold} -o {output.store:q}"
        " > {log:q} 2>&1"

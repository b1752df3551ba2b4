# Attributions of the fine-tuned promoter head on test-set promoters, and the motifs TF-MoDISco finds in them.


rule attribute:
    input:
        bench="results/benchmark/results.csv",
        test=explain_test_table(),
    output:
        npz="results/explain/attributions/attributions.npz",
        tsv="results/explain/attributions/summary.tsv",
        png="results/explain/attributions/top.png",
    params:
        model=explain_model,
        label=config["explain"]["label"],
        n=config["explain"]["max_sequences"],
        method=config["explain"]["method"],
        args=config["explain"]["args"],
        outdir=lambda w, output: os.path.dirname(output.npz),
    threads: THREADS
    priority: 2
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/explain/attribute.log",
    shell:
        "dnalm attribute --model {params.model} --input {input.test} --label {params.label} "
        "--max-sequences {params.n} --method {params.method} {params.args} --threads {threads} --no-progress "
        "--out {params.outdir} --overwrite > {log} 2>&1"


rule discover_motifs:
    input:
        npz="results/explain/attributions/attributions.npz",
        motifs=explain_motifs(),
    output:
        md="results/explain/motifs/report.md",
        tsv="results/explain/motifs/patterns.tsv",
        png="results/explain/motifs/patterns.png",
    params:
        motifs=lambda w, input: f"--motifs {input.motifs}" if input.motifs else "",
        args=config["explain"]["discover_args"],
        outdir=lambda w, output: os.path.dirname(output.md),
    threads: 1
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/explain/discover.log",
    shell:
        "NUMBA_NUM_THREADS=1 dnalm motifs discover --attributions {input.npz} {params.motifs} {params.args} "
        "--out {params.outdir} --overwrite > {log} 2>&1"

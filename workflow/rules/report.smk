# Per-VCF summaries and the results page: a headline table (each stage vs its baseline), then tables and plots.


rule variant_summary:
    input:
        vcf="results/variants/{name}.vcf.gz",
        fasta=variant_fasta(),
        regions=variant_regions,
    output:
        "results/variants/{name}.summary.tsv",
    params:
        # Markov-chain LLR baselines fitted on the reference minus the LM's held-out chromosomes
        exclude=",".join(config["evaluate_lm"]["chroms"]),
        regions=lambda wc, input: f"--regions {input.regions}" if input.regions else "",
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/variant_summary/{name}.log",
    shell:
        "dnalm variant-summary --input {input.vcf} --fasta {input.fasta} --markov-exclude {params.exclude} "
        "{params.regions} --out {output} > {log} 2>&1"


rule report:
    input:
        pretraining=["results/pretrain/metrics.csv", "results/pretrain/curves.png"],
        lm=["results/evaluate_lm/results.json"] + (["results/evaluate_lm/checkpoint.json"] if CHECKPOINT else []),
        benchmark=["results/benchmark/results.md", "results/benchmark/results.png"],
        variants=expand("results/variants/{name}.summary.tsv", name=list(variant_sets())),
        cre=[
            f"{CRE_DIR}/oracle/oracle.json",
            f"{CRE_DIR}/evaluation/summary.json",
            f"{CRE_DIR}/evaluation/conditions.tsv",
            f"{CRE_DIR}/evaluation/activity.png",
        ],
        explain=[
            "results/explain/attributions/top.png",
            "results/explain/motifs/patterns.png",
            "results/explain/motifs/patterns.tsv",
        ],
    output:
        md="results/report.md",
        html="results/report.html",
    params:
        results=lambda w, output: os.path.dirname(output.md),
        sections=report_sections,
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/report.log",
    shell:
        "dnalm report --results {params.results} --out {output.md} --title 'dnalm pipeline report' {params.sections} "
        "> {log} 2>&1"

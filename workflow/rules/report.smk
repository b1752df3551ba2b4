# One report with the key tables and plots of every stage.


def report_inputs():
    files = {
        "pretraining": ["results/pretrain/metrics.csv", "results/pretrain/curves.png"],
        "lm": ["results/evaluate_lm/results.json"],
        "benchmark": ["results/benchmark/results.md", "results/benchmark/results.png"],
        "variants": [f"results/variants/{n}.summary.tsv" for n in variant_sets()]
        + [f"results/variants/{n}.vcf.gz" for n in variant_sets()],
        "cre": [
            f"{CRE_DIR}/oracle/oracle.json",
            f"{CRE_DIR}/evaluation/summary.json",
            f"{CRE_DIR}/evaluation/conditions.tsv",
            f"{CRE_DIR}/evaluation/activity.png",
        ],
    }
    return files


rule variant_summary:
    input:
        "results/variants/{name}.vcf.gz",
    output:
        "results/variants/{name}.summary.tsv",
    log:
        "logs/variant_summary/{name}.log",
    shell:
        "dnalm variant-summary --vcf {input} --out {output} > {log} 2>&1"


rule report:
    input:
        **report_inputs(),
    output:
        md="results/report.md",
        html="results/report.html",
    params:
        sections=lambda wc, input: " ".join(
            [
                f"--section 'Pretraining={','.join(input.pretraining)}'",
                f"--section 'Held-out language modelling (bits per base vs Markov baselines)={','.join(input.lm)}'",
                f"--section 'Fine-tuning benchmark={','.join(input.benchmark)}'",
                f"--section 'Variant effects={','.join(f for f in input.variants if f.endswith('.tsv'))}'",
                f"--section 'CRE design={','.join(input.cre)}'",
            ]
        ),
    log:
        "logs/report.log",
    shell:
        "dnalm report --out {output.md} --title 'dnalm pipeline report' {params.sections} > {log} 2>&1"

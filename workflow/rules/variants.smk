# Zero-shot variant-effect scores for every configured VCF.


rule score_variants:
    input:
        model=MODEL,
        vcf=lambda wc: variant_sets()[wc.name],
        fasta=variant_fasta(),
    output:
        vcf="results/variants/{name}.vcf.gz",
        tbi="results/variants/{name}.vcf.gz.tbi",
    params:
        window=config["variants"]["window"],
    threads: 2
    log:
        "logs/score_variants/{name}.log",
    shell:
        "dnalm score-variants --model {MODEL_DIR} --fasta {input.fasta} --vcf {input.vcf} --out {output.vcf} "
        "--window {params.window} --no-progress > {log} 2>&1"


rule variants_table:
    input:
        model=MODEL,
        vcf=lambda wc: variant_sets()[wc.name],
        fasta=variant_fasta(),
    output:
        "results/variants/{name}.tsv",
    params:
        window=config["variants"]["window"],
    threads: 2
    log:
        "logs/score_variants/{name}.tsv.log",
    shell:
        "dnalm score-variants --model {MODEL_DIR} --fasta {input.fasta} --vcf {input.vcf} --out {output} "
        "--window {params.window} --no-progress > {log} 2>&1"

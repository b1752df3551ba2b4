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
        model=lambda w, input: os.path.dirname(input.model),
    threads: 2
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/score_variants/{name}.log",
    shell:
        "dnalm score-variants --model {params.model} --fasta {input.fasta} --input {input.vcf} --out {output.vcf} "
        "--window {params.window} --no-progress > {log} 2>&1"


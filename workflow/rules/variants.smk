# Zero-shot variant-effect scores for every configured VCF. With variants.shards > 1 each VCF is scored as N shard
# jobs (balanced by work; cluster jobs under --profile profiles/slurm) gathered by `dnalm merge-scores`
# (merge_variant_shards) into the same
# file one job writes; a finished shard is not run again.

SHARDS = int(config["variants"].get("shards", 1))


if SHARDS == 1:

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
        threads: THREADS
        conda:
            "../envs/dnalm.yaml"
        log:
            "logs/score_variants/{name}.log",
        shell:
            "dnalm score-variants --model {params.model} --fasta {input.fasta} --input {input.vcf} "
            "--out {output.vcf} --window {params.window} --threads {threads} --no-progress > {log} 2>&1"

else:

    rule score_variant_shard:
        input:
            model=MODEL,
            vcf=lambda wc: variant_sets()[wc.name],
            fasta=variant_fasta(),
        output:
            vcf="results/variants/shards/{name}/{shard}-of-%d.vcf" % SHARDS,
        params:
            window=config["variants"]["window"],
            model=lambda w, input: os.path.dirname(input.model),
            shard=lambda w: f"{w.shard}/{SHARDS}",
        wildcard_constraints:
            shard=r"\d+",
        threads: THREADS
        conda:
            "../envs/dnalm.yaml"
        log:
            "logs/score_variants/{name}.{shard}-of-%d.log" % SHARDS,
        shell:
            "dnalm score-variants --model {params.model} --fasta {input.fasta} --input {input.vcf} "
            "--out {output.vcf} --window {params.window} --shard {params.shard} --threads {threads} --no-progress "
            "> {log} 2>&1"

    rule merge_variant_shards:
        input:
            shards=expand("results/variants/shards/{{name}}/{shard}-of-{n}.vcf", shard=range(1, SHARDS + 1), n=SHARDS),
        output:
            vcf="results/variants/{name}.vcf.gz",
            tbi="results/variants/{name}.vcf.gz.tbi",
        conda:
            "../envs/dnalm.yaml"
        log:
            "logs/score_variants/{name}.merge.log",
        shell:
            "dnalm merge-scores --input {input.shards} --out {output.vcf} > {log} 2>&1"

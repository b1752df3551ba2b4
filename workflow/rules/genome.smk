# Genome preparation and tasks derived from its annotation.


rule download_genome:
    output:
        f"results/download/{GENOME_NAME}.input",
    params:
        url=config["genome"]["path"],
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/download_genome.log",
    shell:
        "curl --fail --location --silent --show-error -o {output} '{params.url}' 2> {log}"


rule prepare_genome:
    input:
        genome_input(),
    output:
        fasta=GENOME_FASTA,
        fai=f"{GENOME_DIR}/{GENOME_NAME}.fa.gz.fai",
        sizes=f"{GENOME_DIR}/{GENOME_NAME}.chrom.sizes",
    params:
        source=config["genome"]["source"],
        outdir=lambda w, output: os.path.dirname(output.fasta),
        name=GENOME_NAME,
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/prepare_genome.log",
    shell:
        "if [ '{params.source}' = demo-yeast ]; then "
        "dnalm prepare-genome --demo yeast --out {params.outdir} --name {params.name}; "
        "else dnalm prepare-genome {input} --out {params.outdir} --name {params.name}; fi > {log} 2>&1"


rule derive_tasks:
    input:
        fasta=GENOME_FASTA,
    output:
        train=f"{TASKS_DIR}/promoters/train.csv",
        dev=f"{TASKS_DIR}/promoters/dev.csv",
        test=f"{TASKS_DIR}/promoters/test.csv",
        cre=f"{TASKS_DIR}/cre/promoters.tsv",
        vcf=f"{TASKS_DIR}/variants/coding_snvs.vcf.gz",
        summary=f"{TASKS_DIR}/summary.json",
    params:
        cds=lambda w, input: input.fasta.replace(".fa.gz", ".cds.bed"),
        promoter_length=config["tasks"]["promoter_length"],
        max_promoters=config["tasks"]["max_promoters"],
        cre_length=config["tasks"]["cre_length"],
        codons=config["tasks"]["codons"],
        outdir=lambda w, output: os.path.dirname(output.summary),
    priority: 3  # most rules wait for its tasks
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/derive_tasks.log",
    shell:
        "dnalm derive-tasks --fasta {input.fasta} --cds {params.cds} --out {params.outdir} "
        "--promoter-length {params.promoter_length} --max-promoters {params.max_promoters} "
        "--cre-length {params.cre_length} --codons {params.codons} > {log} 2>&1"

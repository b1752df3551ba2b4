# Pretraining and held-out language-model evaluation.


rule pretrain:
    input:
        fasta=GENOME_FASTA,
        config=config["pretrain"]["config"],
    output:
        model=OWN_MODEL,
        model_config=f"{OWN_MODEL_DIR}/config.json",
        metrics="results/pretrain/metrics.csv",
        curves="results/pretrain/curves.png",
    params:
        sets=sets(config["pretrain"].get("set", [])),
        outdir=lambda w, output: os.path.dirname(output.metrics),
    threads: 2  # trainer.devices DDP processes of trainer.threads each (config/pretrain/pipeline.yaml: 2 x 1)
    priority: 4  # it needs both cores: run it before the one-thread rules take one each
    resources:
        gpu=1,
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/pretrain.log",
    shell:
        "dnalm pretrain --config {input.config} --out {params.outdir} --overwrite "
        "--set data.genomes.0.path={input.fasta} --set trainer.progress_bar=false "
        "{params.sets} > {log} 2>&1"


rule evaluate_lm:
    input:
        model=OWN_MODEL,
        fasta=GENOME_FASTA,
    output:
        "results/evaluate_lm/results.json",
    params:
        chroms=" ".join(config["evaluate_lm"]["chroms"]),
        length=config["evaluate_lm"]["length"],
        max_bases=config["evaluate_lm"]["max_windows"] * config["evaluate_lm"]["length"],
        model=lambda w, input: os.path.dirname(input.model),
    threads: THREADS
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/evaluate_lm.log",
    shell:
        "dnalm evaluate-lm --model {params.model} --fasta {input.fasta} --chroms {params.chroms} "
        "--length {params.length} $( [ {params.max_bases} -gt 0 ] && echo --max-bases {params.max_bases} ) "
        "--threads {threads} --no-progress --out {output} > {log} 2>&1"


rule evaluate_checkpoint:
    """The shipped checkpoint the downstream stages use (pretrain.checkpoint), scored like this run's model."""
    input:
        model=f"{CHECKPOINT}/model.safetensors",
        fasta=GENOME_FASTA,
    output:
        "results/evaluate_lm/checkpoint.json",
    params:
        chroms=" ".join(config["evaluate_lm"]["chroms"]),
        length=config["evaluate_lm"]["length"],
        max_bases=config["evaluate_lm"]["max_windows"] * config["evaluate_lm"]["length"],
        model=lambda w, input: os.path.dirname(input.model),
    threads: THREADS
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/evaluate_checkpoint.log",
    shell:
        "dnalm evaluate-lm --model {params.model} --fasta {input.fasta} --chroms {params.chroms} "
        "--length {params.length} $( [ {params.max_bases} -gt 0 ] && echo --max-bases {params.max_bases} ) "
        "--threads {threads} --no-progress --out {output} > {log} 2>&1"

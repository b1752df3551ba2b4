# Conditional CRE design: fine-tune a generator on an activity table, generate the lowest and highest classes,
# train an independent oracle on the same table, and evaluate the generated sequences with it.


rule finetune_generator:
    input:
        model=MODEL,
        table=cre_table(),
    output:
        f"{CRE_DIR}/generator/model.safetensors",
    params:
        props=",".join(PROPS),
        seqcol=config["cre"]["sequence_column"],
        table_options=config["cre"].get("table_options", ""),
        bins=config["cre"]["bins"],
        edges=edges_args(),
        extra=config["cre"].get("generator_args", ""),
        model=lambda w, input: os.path.dirname(input.model),
        outdir=lambda w, output: os.path.dirname(output[0]),
    threads: THREADS
    priority: 1  # the generation chain is the second-longest: start it beside the benchmark
    resources:
        gpu=1,
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/finetune_generator.log",
    shell:
        "dnalm finetune-generator --model {params.model} --input {input.table} --sequence-column {params.seqcol} "
        "{params.table_options} --label-columns {params.props} --set n_bins={params.bins} {params.edges} "
        "--out {params.outdir} --threads {threads} --no-progress {params.extra} > {log} 2>&1"


rule generate_cre:
    input:
        f"{CRE_DIR}/generator/model.safetensors",
    output:
        f"{CRE_DIR}/generated.fa",
    params:
        conditions=" ".join(f"--condition {c}" for c in cre_conditions()),
        num=config["cre"]["num"],
        length=config["cre"]["length"],
        temperature=config["cre"]["temperature"],
        top_k=f"--top-k {config['cre']['top_k']}" if config["cre"]["top_k"] else "",
        seed=config["cre"]["seed"],
        extra=config["cre"].get("generate_args", ""),
        generator=lambda w, input: os.path.dirname(input[0]),
    threads: THREADS
    priority: 1
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/generate_cre.log",
    shell:
        "dnalm generate --model {params.generator} {params.conditions} --num {params.num} --length {params.length} "
        "--temperature {params.temperature} {params.top_k} --seed {params.seed} --device cpu --threads {threads} --no-progress "
        "{params.extra} --out {output} > {log} 2>&1"


rule train_oracle:
    input:
        table=cre_table(),
    output:
        f"{CRE_DIR}/oracle/oracle.json",
    params:
        props=",".join(PROPS),
        seqcol=config["cre"]["sequence_column"],
        table_options=config["cre"].get("table_options", ""),
        extra=config["cre"].get("oracle_args", ""),
        split=oracle_split_option(),
        outdir=lambda w, output: os.path.dirname(output[0]),
    threads: 1  # a small CNN: one thread, and then its result does not depend on the machine's thread count
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/train_oracle.log",
    shell:
        "dnalm train-oracle --input {input.table} --sequence-column {params.seqcol} {params.table_options} "
        "--label-columns {params.props} {params.split} --out {params.outdir} --threads {threads} --no-progress {params.extra} "
        "> {log} 2>&1"


rule evaluate_cre:
    input:
        generated=f"{CRE_DIR}/generated.fa",
        oracle=f"{CRE_DIR}/oracle/oracle.json",
        table=cre_table(),
    output:
        summary=f"{CRE_DIR}/evaluation/summary.json",
        conditions=f"{CRE_DIR}/evaluation/conditions.tsv",
        plot=f"{CRE_DIR}/evaluation/activity.png",
    params:
        seqcol=config["cre"]["sequence_column"],
        table_options=config["cre"].get("table_options", ""),
        motifs=f"--motifs {config['cre']['motifs']}" if config["cre"].get("motifs") else "",
        extra=config["cre"].get("evaluate_args", ""),
        oracle=lambda w, input: os.path.dirname(input.oracle),
        outdir=lambda w, output: os.path.dirname(output.summary),
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/evaluate_cre.log",
    shell:
        "dnalm evaluate-cre --generated {input.generated} --oracle {params.oracle} --reference {input.table} "
        "--sequence-column {params.seqcol} {params.table_options} {params.motifs} {params.extra} "
        "--out {params.outdir} --no-progress > {log} 2>&1"

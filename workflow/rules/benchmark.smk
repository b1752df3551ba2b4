# Fine-tuning benchmark: the fine-tuned model beside a frozen-embedding probe and a k-mer baseline.


rule benchmark:
    input:
        model=MODEL,
        settings=config["benchmark"]["config"],
        tasks=benchmark_task_inputs(),
    output:
        csv="results/benchmark/results.csv",
        md="results/benchmark/results.md",
        png="results/benchmark/results.png",
    params:
        suite=config["benchmark"]["suite"],
        data=benchmark_data,
        tasks=("--tasks " + ",".join(config["benchmark"]["tasks"])) if config["benchmark"]["tasks"] else "",
        sets=sets(config["benchmark"].get("set", [])),
        model=lambda w, input: os.path.dirname(input.model),
        outdir=lambda w, output: os.path.dirname(output.csv),
    threads: benchmark_threads()  # its worker processes, when the benchmark settings run several
    priority: 2  # benchmark -> attribute -> discover_motifs is the longest chain after the genome: start it first
    resources:
        gpu=1,
    conda:
        "../envs/dnalm.yaml"
    log:
        "logs/benchmark.log",
    shell:
        "dnalm benchmark --model {params.model} --suite {params.suite} --data {params.data} "
        "--config {input.settings} --out {params.outdir} --threads {threads} --set progress_bar=false {params.tasks} "
        "{params.sets} "
        "> {log} 2>&1"

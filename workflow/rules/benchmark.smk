# Fine-tuning benchmark: the fine-tuned model beside a frozen-embedding probe and a k-mer baseline.


def benchmark_suite():
    suite = config["benchmark"]["suite"]
    return "workflow/benchmark_derived.yaml" if suite == "derived" else suite


rule benchmark:
    input:
        model=MODEL,
        tasks=f"{TASKS_DIR}/promoters/train.csv" if config["benchmark"]["suite"] == "derived" else [],
    output:
        csv="results/benchmark/results.csv",
        md="results/benchmark/results.md",
        png="results/benchmark/results.png",
    params:
        suite=benchmark_suite(),
        data=benchmark_data(),
        tasks=("--tasks " + ",".join(config["benchmark"]["tasks"])) if config["benchmark"]["tasks"] else "",
        sets=sets(config["benchmark"].get("set", [])),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/benchmark.log",
    shell:
        "dnalm benchmark --model {MODEL_DIR} --suite {params.suite} --data {params.data} --out results/benchmark "
        "{params.tasks} {params.sets} > {log} 2>&1"

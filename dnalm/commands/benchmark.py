"""Run a benchmark suite: fine-tuned model, frozen-embedding probe and k-mer baseline for every task.

SUITE is gue, genomic-benchmarks or bend (tasks discovered in --data) or a suite YAML file (see
config/benchmark/). Writes OUT/results.csv, OUT/results.md, OUT/results.png and per-task folders.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, help="pretrained model folder, importable checkpoint, or a preset name (random init)",
                              batch_size=None, batch_help="fine-tuning batch size", dtype=None,
                              defaults_from="the settings")
    p.add_argument("--suite", required=True, help="gue | genomic-benchmarks | bend | SUITE.yaml")
    p.add_argument("--data", help="folder holding the suite's tasks (e.g. ../shared/data/gue)")
    options.add_output_options(p, "folder", "output folder")
    p.add_argument("--tasks", help="comma-separated task names to run (default: all in the suite)")
    options.add_settings_options(
        p, what="the benchmark: a BenchmarkConfig field (poolings=mean,echo; kmer=false) or a fine-tuning field "
        "(max_steps=200, also as finetune.max_steps=200)", example="max_steps=200",
        config_help="YAML of benchmark settings (BenchmarkConfig fields; e.g. config/benchmark/gue_prom.yaml)")


def run(args) -> int:
    import dataclasses
    import shlex
    import sys
    from pathlib import Path

    from dnalm.config import apply_overrides
    from finetune.benchmark import BenchmarkConfig, benchmark_overrides, run_benchmark

    base_dir = None
    if args.suite.lower().endswith((".yaml", ".yml")):
        cfg = BenchmarkConfig.load(args.suite)
        base_dir = Path(args.suite).parent
        if args.config:
            from dnalm.errors import ConfigError

            raise ConfigError("give the settings either in the suite YAML or with --config, not both")
    else:
        cfg = BenchmarkConfig.load(args.config) if args.config else BenchmarkConfig()
        cfg = dataclasses.replace(cfg, suite=args.suite)
    if args.data:
        cfg = dataclasses.replace(cfg, data=args.data)
    if args.tasks:
        cfg = dataclasses.replace(cfg, tasks=[t.strip() for t in args.tasks.split(",") if t.strip()])
    from dnalm.commands.finetune import COMPUTE_KEYS

    options.setup_compute(args)  # --threads holds for the whole process (probe embedding too), not only fine-tuning
    sets = benchmark_overrides(list(args.set) + options.training_overrides(args, COMPUTE_KEYS))
    cfg = apply_overrides(cfg, sets)  # fine-tuning keys are checked here too, before hours of work
    command = "dnalm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and sys.argv[0].endswith("dnalm") else ""
    df = run_benchmark(args.model, cfg, args.out, command=command, base_dir=base_dir)
    ok = df[df["status"] == "ok"]
    print(ok[["task", "method", "metric", "test", "dev", "n_train"]].to_string(index=False))
    print(f"wrote {args.out}/results.csv, results.md, results.png")
    failed = df[df["status"] != "ok"]
    if len(failed):
        print(f"{len(failed)} method/task run(s) failed; see results.md", file=sys.stderr)
    model_runs = df[~df["method"].astype(str).str.startswith("k-mer")]
    if len(ok) == 0 or (len(model_runs) and (model_runs["status"] != "ok").all()):
        from dnalm.errors import DnalmError

        first = failed.iloc[0]
        raise DnalmError(
            f"every {'model ' if len(ok) else ''}run failed ({len(failed)} of {len(df)}); the first, "
            f"{first['task']} / {first['method']}: {first['status']} (details in {args.out}/results.md)"
        )
    return 0

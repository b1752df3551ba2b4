"""Fine-tune a model on one task (GUE folder, GenomicBenchmarks data set, BED + genome, CSV/TSV, per-base labels).

TASK SPEC: [TYPE:]PATH[?key=value&...] or a YAML file, e.g. ``../shared/data/gue/prom/prom_core_all``,
``gb:DATASET?genome=GENOME.fa.gz``, ``csv:data.tsv?sequence=seq&label=expr``. Writes OUT/metrics.json,
OUT/history.csv, OUT/test_predictions.csv and the fine-tuned model in OUT/model.
"""

from __future__ import annotations

from dnalm.commands import options

# compute flag -> FinetuneConfig field (the flags win over --config and --set)
COMPUTE_KEYS = {"batch_size": "batch_size", "threads": "threads", "progress": "progress_bar", "accelerator": "accelerator", "precision": "precision"}


def add_arguments(p) -> None:
    options.add_model_options(p, help="pretrained model folder, importable checkpoint, or a preset name (random init)",
                              batch_size=None, batch_help="training batch size", dtype=None,
                              defaults_from="the settings")
    p.add_argument("--task", required=True, help="TASK SPEC (see docs: [TYPE:]PATH[?key=value&...] or FILE.yaml)")
    options.add_output_options(p, "folder", "output folder")
    p.add_argument("--pooling", choices=["mean", "last", "echo", "rc_echo"], help="pooling (default mean)")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the head")
    options.add_settings_options(p, what="fine-tuning (FinetuneConfig fields)", example="max_steps=500")


def run(args) -> int:
    import json

    from finetune.lightning import FinetuneConfig, finetune
    from finetune.tasks import load_task

    extra = options.training_overrides(args, COMPUTE_KEYS)
    extra += [f"pooling={args.pooling}"] if args.pooling else []
    extra += ["freeze_backbone=true"] if args.freeze_backbone else []
    cfg = options.load_settings(FinetuneConfig, args, extra)
    task = load_task(args.task)
    print(task.report(), flush=True)
    result = finetune(args.model, task, cfg, out_dir=args.out)
    print(json.dumps({"task": task.name, "metric": task.metric, "test": result.test_metrics[task.metric],
                      "dev": result.dev_metrics[task.metric], "steps": result.steps, "best_step": result.best_step,
                      "seconds": round(result.seconds, 1), "out": args.out}, indent=2))
    return 0

"""Fine-tune a model on one task (GUE folder, GenomicBenchmarks data set, BED + genome, CSV/TSV, per-base labels).

TASK SPEC: [TYPE:]PATH[?key=value&...] or a YAML file, e.g. ``../shared/data/gue/prom/prom_core_all``,
``gb:DATASET?genome=GENOME.fa.gz``, ``csv:data.tsv?sequence=seq&label=expr``. Writes OUT/metrics.json,
OUT/history.csv, OUT/test_predictions.csv and the fine-tuned model in OUT/model.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="pretrained model directory (or a preset name for random init)")
    p.add_argument("--task", required=True, help="TASK SPEC (see docs: [TYPE:]PATH[?key=value&...] or FILE.yaml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pooling", choices=["mean", "last", "echo", "rc_echo"], help="pooling (default mean)")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the head")
    p.add_argument("--config", help="YAML file of fine-tuning settings (FinetuneConfig fields)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set max_steps=500 --set lr_backbone=5e-5 (repeatable)")


def run(args) -> int:
    import json

    from finetune.config import apply_overrides, from_dict, load_yaml
    from finetune.lightning import FinetuneConfig, finetune
    from finetune.tasks import load_task

    cfg = from_dict(FinetuneConfig, load_yaml(args.config), source=args.config) if args.config else FinetuneConfig()
    cfg = apply_overrides(cfg, args.set)
    if args.pooling:
        cfg = apply_overrides(cfg, [f"pooling={args.pooling}"])
    if args.freeze_backbone:
        cfg = apply_overrides(cfg, ["freeze_backbone=true"])
    task = load_task(args.task)
    print(task.report(), flush=True)
    result = finetune(args.model, task, cfg, out_dir=args.out)
    print(json.dumps({"task": task.name, "metric": task.metric, "test": result.test_metrics[task.metric],
                      "dev": result.dev_metrics[task.metric], "steps": result.steps, "best_step": result.best_step,
                      "seconds": round(result.seconds, 1), "out": args.out}, indent=2))
    return 0

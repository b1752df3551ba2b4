"""Fine-tune a DNA language model into a conditional CRE generator.

Each property column is binned into classes (quantiles of the training rows, or --edges), the classes become
condition tokens such as <expression=4> (own ids above the base vocabulary), and the model learns
[BOS] <cond tokens> sequence [EOS] with the loss on sequence tokens only. A seeded train/validation split drives
early stopping; the validation loss per condition goes to validation_by_condition.tsv. The output directory is a
complete model directory (weights, tokenizer with the condition tokens, bin edges in config.json) for
`dnalm generate`.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    from generate.data import add_table_arguments

    p.add_argument("--model", required=True, help="pretrained model directory, or a preset name (random init)")
    p.add_argument("--data", required=True, help="table (CSV/TSV, gzip ok) of sequences and property values")
    add_table_arguments(p)
    p.add_argument("--property-columns", required=True, help="comma-separated numeric columns to condition on")
    p.add_argument("--bins", type=int, default=5, help="classes per property (quantile bins, default 5)")
    p.add_argument("--edges", action="append", default=[], metavar="NAME=E1,E2,...",
                   help="given inner bin edges for a property instead of quantiles (repeatable)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--max-steps", type=int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations (default 100)")
    p.add_argument("--patience", type=int, default=3, help="validations without improvement before stopping")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--max-val-rows", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_edges(items: list[str]) -> dict[str, list[float]]:
    """``["A=1,2.5"]`` -> ``{"A": [1.0, 2.5]}``."""
    from dnalm.errors import ConfigError

    out = {}
    for item in items:
        name, sep, rest = item.partition("=")
        try:
            out[name.strip()] = [float(x) for x in rest.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--edges {item!r}: expected NAME=E1,E2,... with numbers") from None
        if not sep or not out[name.strip()]:
            raise ConfigError(f"--edges {item!r}: expected NAME=E1,E2,...")
    return out


def run(args) -> int:
    import json

    import torch

    from generate.conditioning import load_generator
    from generate.data import split_list, table_from_args
    from generate.training import GeneratorTrainConfig, finetune_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    props = split_list(args.property_columns)
    table = table_from_args(args, args.data, props)
    print(table.skip_summary())
    model = load_generator(args.model)
    if model.conditioning is not None:
        from dnalm.errors import DnalmError

        raise DnalmError(f"{args.model} is already a conditional generator; fine-tune from the base model instead")
    cfg = GeneratorTrainConfig(
        n_bins=args.bins, edges=parse_edges(args.edges), val_fraction=args.val_fraction, max_steps=args.max_steps,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        eval_every=args.eval_every, patience=args.patience, seed=args.seed, max_val_rows=args.max_val_rows,
        progress=not args.no_progress, log_validation=args.no_progress,
    )
    report = finetune_generator(
        model, table.sequences, table.values, props, args.out, cfg,
        extra_report={"data": table.source, "base_model": str(args.model), "n_rows": len(table),
                      "skipped_rows": [{"line": ln, "reason": why} for ln, why in table.skipped]},
    )
    for w in report["warnings"]:
        print(f"warning: {w}")
    print(f"steps {report['steps']} (best {report['best_step']}, stopped early: {report['stopped_early']}); "
          f"train {report['n_train']} / validation {report['n_validation']} rows")
    print("validation loss per condition (nats/token):")
    for r in report["validation_by_condition"]:
        print(f"  {r['condition']:<24} n={r['n_sequences']:<6} loss={r['loss']:.4f}  ppl={r['perplexity']:.3f}")
    print(f"wrote {args.out} (bins: {json.dumps({p['name']: p['edges'] for p in report['conditioning']['properties']})})")
    return 0

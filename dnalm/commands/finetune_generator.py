"""Fine-tune a DNA language model into a conditional CRE generator.

Each property column is binned into classes (quantiles of the training rows, or --edges), the classes become
condition tokens such as <expression=4> (own ids above the base vocabulary), and the model learns
[BOS] <cond tokens> sequence [EOS] with the loss on sequence tokens only. A seeded train/validation split drives
early stopping; the validation loss per condition goes to validation_by_condition.tsv. The output directory is a
complete model directory (weights, tokenizer with the condition tokens, bin edges in config.json) for
`dnalm generate`.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    from dnalm.commands.table_options import add_table_arguments

    options.add_model_options(p, help="pretrained model folder, importable checkpoint, or a preset name (random init)",
                              batch_size=None, batch_help="sequences per step", dtype=None,
                              defaults_from="the settings",
                              flags=("--threads", "--batch-size", "--no-progress"))  # Lightning picks the device
    options.add_input_option(p, "table (CSV/TSV, gzip ok) of sequences and property values")
    add_table_arguments(p)
    options.add_label_columns_option(p, "numeric columns to condition on", required=True)
    p.add_argument("--edges", action="append", default=[], metavar="NAME=E1,E2,...",
                   help="given inner bin edges for a property instead of quantiles (repeatable)")
    options.add_output_options(p, "folder", "output model folder")
    options.add_settings_options(p, what="generator training (GeneratorTrainConfig fields: n_bins, max_steps, lr, "
                                 "weight_decay, warmup_steps, eval_every, patience, val_fraction, max_val_rows, seed)",
                                 example="max_steps=150")


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

    from dnalm.commands.table_options import table_from_args
    from generate.conditioning import load_generator
    from generate.training import GeneratorTrainConfig, finetune_generator

    device, _ = options.setup_compute(args)  # Lightning chooses the training device; the dtype stays float32
    cfg = options.load_settings(GeneratorTrainConfig, args, options.training_overrides(
        args, {"batch_size": "batch_size"}))
    props = args.label_columns
    table = table_from_args(args, args.input, props)
    print(table.skip_summary())
    model = load_generator(args.model, device=device)
    import dataclasses

    edges = {**cfg.edges, **parse_edges(args.edges)}
    cfg = dataclasses.replace(cfg, edges=edges, progress=options.progress(args),
                              log_validation=cfg.log_validation or not options.progress(args))
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

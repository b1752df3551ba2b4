"""Train a regression oracle (compact Basenji/Enformer-style CNN) that predicts CRE activity from sequence.

Seeded train/validation/test split, early stopping on the validation loss, held-out Spearman and Pearson per
target reported and saved (oracle.json); weights as safetensors. Used by `dnalm evaluate-cre`.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    from dnalm.commands.table_options import add_table_arguments

    options.add_input_option(p, "table (CSV/TSV, gzip ok) of sequences and measured values")
    add_table_arguments(p)
    options.add_label_columns_option(p, "numeric columns to predict", required=True)
    p.add_argument("--split-column", default=None,
                   help="column naming each row's split (train, dev/validation, test), e.g. by chromosome; "
                        "default: a seeded random split by the val_fraction/test_fraction settings")
    options.add_output_options(p, "folder", "output oracle folder")
    options.add_compute_options(p, batch_size=None, batch_help="sequences per step", dtype=None,
                                defaults_from="the settings",
                                flags=("--threads", "--batch-size", "--no-progress"))  # train_oracle picks the device
    options.add_settings_options(p, what="oracle training (OracleTrainConfig fields: max_epochs, patience, lr, "
                                 "weight_decay, val_fraction, test_fraction, rc_augment, seed; and the architecture "
                                 "as arch.channels, arch.dilated_layers, arch.dropout)", example="max_epochs=8")


def run(args) -> int:
    import dataclasses

    from dnalm.commands.table_options import table_from_args
    from generate.oracle import OracleTrainConfig, arch_overrides, train_oracle

    options.setup_compute(args)
    sets = options.training_overrides(args, {"batch_size": "batch_size"})
    arch = arch_overrides([s[len("arch."):] for s in args.set if s.startswith("arch.")])  # OracleConfig fields
    args.set = [s for s in args.set if not s.startswith("arch.")]
    cfg = options.load_settings(OracleTrainConfig, args, sets)
    cfg = dataclasses.replace(cfg, progress=options.progress(args))
    targets = args.label_columns
    table = table_from_args(args, args.input, targets, [args.split_column] if args.split_column else [])
    print(table.skip_summary())
    _, report = train_oracle(
        table.sequences, table.values, targets, args.out, cfg, arch,
        extra_report={"data": table.source, "skipped_rows": [{"line": ln, "reason": why} for ln, why in table.skipped]},
        splits=table.labels[args.split_column] if args.split_column else None,
    )
    print(f"trained {report['epochs_run']} epochs (best {report['best_epoch']}) in {report['seconds']} s; "
          f"split {report['n_train']}/{report['n_validation']}/{report['n_test']}")
    print("held-out test set:")
    for name, m in report["heldout"].items():
        print(f"  {name:<20} spearman={m['spearman']:.4f}  pearson={m['pearson']:.4f}  mse={m['mse']:.4f}  n={m['n']}")
    print(f"wrote {args.out}")
    return 0

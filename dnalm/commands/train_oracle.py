"""Train a regression oracle (compact Basenji/Enformer-style CNN) that predicts CRE activity from sequence.

Seeded train/validation/test split, early stopping on the validation loss, held-out Spearman and Pearson per
target reported and saved (oracle.json); weights as safetensors. Used by `dnalm evaluate-cre`.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    from generate.data import add_table_arguments

    p.add_argument("--data", required=True, help="table (CSV/TSV, gzip ok) of sequences and measured values")
    add_table_arguments(p)
    p.add_argument("--target-columns", required=True, help="comma-separated numeric columns to predict")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--max-epochs", type=int, default=12)
    p.add_argument("--patience", type=int, default=4, help="epochs without validation improvement before stopping")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--channels", type=int, default=64, help="conv tower width")
    p.add_argument("--dilated-layers", type=int, default=4, help="dilated residual blocks")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--rc-augment", action="store_true", help="reverse-complement augmentation (orientation-free data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import torch

    from generate.data import split_list, table_from_args
    from generate.oracle import OracleTrainConfig, train_oracle

    if args.threads:
        torch.set_num_threads(args.threads)
    targets = split_list(args.target_columns)
    table = table_from_args(args, args.data, targets)
    print(table.skip_summary())
    cfg = OracleTrainConfig(
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, max_epochs=args.max_epochs,
        patience=args.patience, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        rc_augment=args.rc_augment, seed=args.seed, progress=not args.no_progress,
    )
    arch = {"channels": args.channels, "dilated_layers": args.dilated_layers, "dropout": args.dropout}
    _, report = train_oracle(
        table.sequences, table.values, targets, args.out, cfg, arch,
        extra_report={"data": table.source, "skipped_rows": [{"line": ln, "reason": why} for ln, why in table.skipped]},
    )
    print(f"trained {report['epochs_run']} epochs (best {report['best_epoch']}) in {report['seconds']} s; "
          f"split {report['n_train']}/{report['n_validation']}/{report['n_test']}")
    print("held-out test set:")
    for name, m in report["heldout"].items():
        print(f"  {name:<20} spearman={m['spearman']:.4f}  pearson={m['pearson']:.4f}  mse={m['mse']:.4f}  n={m['n']}")
    print(f"wrote {args.out}")
    return 0

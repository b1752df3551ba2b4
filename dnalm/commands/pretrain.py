"""Pretrain a DNA language model on one or more genomes (next-nucleotide prediction, Lightning).

Writes into --out: checkpoints/last.ckpt (Lightning, for --resume), model/ (config.json + model.safetensors +
tokenizer.json, at the end and every trainer.export_every steps), metrics.csv, curves.png, config.yaml and
logs/ (Lightning's CSV logger; TensorBoard when installed).
Lightning checkpoints are pickles by Lightning's design: resume only runs you made yourself; share model/.
"""

from __future__ import annotations

from dnalm.commands import options

OUTPUT = "self"  # --resume continues the run in --out; pretrain() checks --overwrite itself


def add_arguments(p) -> None:
    options.add_settings_options(p, what="pretraining", example="optim.lr=1e-3 --set stages.0.steps=50",
                                 config_required=True,
                                 config_help="pretraining config (e.g. config/pretrain/demo.yaml)")
    options.add_output_options(p, "folder", "run folder (with --resume: the run to continue)")
    # batch sizes are per stage (stages.N.batch_size or tokens_per_step), so no single --batch-size
    options.add_compute_options(p, dtype=None, defaults_from="the config",
                                flags=("--device", "--dtype", "--threads", "--no-progress"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.ckpt")
    p.add_argument("--check", action="store_true", help="validate the config (and data splits) and exit")


def run(args) -> int:
    from dnalm.pretrain.config import load_config

    compute = {"threads": "trainer.threads", "progress": "trainer.progress_bar",
               "accelerator": "trainer.accelerator", "precision": "trainer.precision"}
    cfg = load_config(args.config, list(args.set) + options.training_overrides(args, compute))
    if args.check:
        from dnalm.pretrain import PretrainDataModule

        splits = PretrainDataModule(cfg).describe()
        print(f"{args.config}: OK ({cfg.total_steps} steps, {cfg.stages[0].length * cfg.stages[0].batch_size} tokens/step)")
        for name, info in splits.items():
            print(f"  {name:<10} {info['n_chromosomes']:>3} chromosomes {info['bp']:>13,} bp")
        return 0
    from dnalm.pretrain import pretrain

    result = pretrain(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    if result["is_global_zero"]:
        v = result["last_validation"]
        val = f", validation {v['val_bits_per_base']:.4f} bits/base" if v else ""
        print(
            f"pretrained {result['steps']} steps, {result['tokens']:,} tokens in {result['wall_s']:.0f} s "
            f"({result['mean_tokens_per_s']:.0f} tokens/s){val}; model in {result['model_dir']}"
        )
    return 0

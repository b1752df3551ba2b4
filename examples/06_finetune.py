"""Fine-tune a DNA language model on a GUE promoter task, beside a frozen-embedding probe and a k-mer baseline.

1. loads a task from a TASK SPEC (default: GUE ``prom_core_tata`` from the shared data) and subsamples it;
2. fits the k-mer baseline (k = 1..6 frequencies + logistic regression) and the frozen mean-pooled
   embedding + logistic probe, both tuned on dev;
3. fine-tunes the model with mean and echo pooling (Lightning: dev evaluation, early stopping, best checkpoint),
   evaluates on test and saves the model;
4. reloads the fine-tuned model, scores two sequences, mutagenises one with the head (ISM: the change of its
   logit per base change, as ``dnalm ism --head``) and writes frozen embeddings to an ``.npz``.

The model is ``--model DIR`` (e.g. the demo-pretrained ``runs/demo_pretrain/model``, used by default when it
exists) or else an untrained ``transformer-tiny`` (the numbers then only show the plumbing).

Run: ``python examples/06_finetune.py [OUT_DIR] [--model DIR] [--task SPEC] [--max-train N] [--steps N]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import dnalm
from dnalm.utils import data_dir
from dnalm.variants.ism import ism_to_files
from finetune.baselines import kmer_baseline
from finetune.embed import embed_file
from finetune.heads import SequenceModel
from finetune.lightning import FinetuneConfig, finetune
from finetune.probes import run_probe
from finetune.tasks import load_task


def main(out: Path, model_dir: str | None, spec: str, max_train: int, max_eval: int, steps: int, poolings: list[str]) -> None:
    if model_dir is None and Path("runs/demo_pretrain/model/config.json").exists():  # "" = untrained
        model_dir = "runs/demo_pretrain/model"
    if not model_dir:
        torch.manual_seed(0)
        model_dir = str(out / "untrained")
        dnalm.build_model("transformer-tiny").save_pretrained(model_dir)
        print("(untrained transformer-tiny: pass --model DIR for meaningful numbers)")
    print(f"model: {model_dir}")

    task = load_task(spec).subsample({"train": max_train, "dev": max_eval, "test": max_eval}, seed=0)
    print(task.report())

    rows = []
    kmer = kmer_baseline(task, ks=range(1, 7))
    rows.append(("k-mer (k=1..6) + logistic", kmer.test_metrics[task.metric]))
    probe = run_probe(dnalm.load_model(model_dir), task, pooling="mean", progress=False)
    rows.append(("frozen mean embedding + logistic", probe.test_metrics[task.metric]))
    for pooling in poolings:
        cfg = FinetuneConfig(pooling=pooling, max_steps=steps, val_every=max(1, steps // 4), patience=3,
                             batch_size=16, warmup_steps=min(20, steps // 5),
                             progress_bar=False)
        res = finetune(model_dir, task, cfg, out_dir=out / f"finetune_{pooling}")
        rows.append((f"fine-tuned ({pooling} pooling, {res.steps} steps)", res.test_metrics[task.metric]))

    print(f"\ntest {task.metric} on {task.name} ({len(task.test)} sequences):")
    for name, value in rows:
        print(f"  {name:<42} {value:7.3f}")

    # a fine-tuned model directory holds the backbone (dnalm.load_model reads it) plus head.json/head.safetensors
    model = SequenceModel.load(out / f"finetune_{poolings[-1]}" / "model")
    tok = model.tokenizer
    seqs = task.test.sequences[:2]
    ids = torch.full((2, max(map(len, seqs))), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(tok.encode(s))
        mask[i, : len(s)] = 1
    print(f"\nP(promoter) of two test sequences: {model.predict(ids, mask).numpy().round(3)} "
          f"(labels {task.test.labels[:2].tolist()})")

    # in-silico mutagenesis of the head (as `dnalm ism --head DIR`): the change of its logit for every base change
    ism = ism_to_files(model, out / "head_ism" / "ism", sequence=seqs[0][:40], progress=False)
    top = ism.loc[ism["importance"].idxmax()]
    print(f"ISM of the head on 40 bases: position {top['position']} ({top['ref']}) matters most, "
          f"mean logit change {-top['importance']:+.3f}; wrote {out / 'head_ism'}/ism.tsv and ism.png")

    table = out / "test_sequences.csv"
    table.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(task.test.sequences, task.test.labels)))
    info = embed_file(model_dir, table, out / "test_embeddings.npz", pooling="echo", progress=False)
    with np.load(out / "test_embeddings.npz") as z:
        print(f"wrote {info['file']}: embeddings {z['embeddings'].shape}, labels {z['labels'].shape}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", help="output folder (default: a temporary folder)")
    p.add_argument("--model", help="pretrained model directory")
    p.add_argument("--task", default=str(data_dir() / "gue" / "prom" / "prom_core_tata"), help="TASK SPEC")
    p.add_argument("--max-train", type=int, default=2000, help="train rows (subsampled, stratified)")
    p.add_argument("--max-eval", type=int, default=613, help="dev and test rows")
    p.add_argument("--steps", type=int, default=150, help="fine-tuning steps per pooling")
    p.add_argument("--poolings", default="mean,echo", help="comma-separated poolings to fine-tune with")
    a = p.parse_args()
    out_dir = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="dnalm-finetune-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    main(out_dir, a.model, a.task, a.max_train, a.max_eval, a.steps, a.poolings.split(","))

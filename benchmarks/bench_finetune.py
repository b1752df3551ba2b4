"""Fine-tuning cost per pooling: seconds per training step and per 1,000 evaluated sequences.

Sizes `config/benchmark/*.yaml` step caps for a machine: prints one row per (model, pooling, length).

Run: ``python benchmarks/bench_finetune.py [--model DIR|PRESET ...] [--lengths 70,300] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

import torch

from finetune.heads import HeadConfig, SequenceModel
from finetune.heads import load_backbone


def measure(model, pooling: str, length: int, batch: int, eval_batch: int, reps: int) -> tuple[float, float]:
    """(seconds per training step, seconds per 1,000 sequences evaluated)."""
    sm = SequenceModel(model, HeadConfig(pooling=pooling))
    ids = torch.randint(7, 11, (batch, length))
    mask = torch.ones_like(ids)
    y = torch.randint(0, 2, (batch,))
    sm.train()
    sm.loss(sm(ids, mask), y).backward()  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        sm.zero_grad()
        sm.loss(sm(ids, mask), y).backward()
    step = (time.perf_counter() - t) / reps
    sm.eval()
    ev_ids = torch.randint(7, 11, (eval_batch, length))
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(reps):
            sm(ev_ids, torch.ones_like(ev_ids))
    per_seq = (time.perf_counter() - t) / (reps * eval_batch)
    return step, per_seq * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="model directory or preset (repeatable; default hybridna-tiny)")
    p.add_argument("--lengths", default="70,300", help="sequence lengths (bp)")
    p.add_argument("--poolings", default="mean,echo")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{'model':<28} {'pooling':<8} {'length':>6} {'s/step (b=' + str(a.batch) + ')':>14} {'s/1k eval':>10}")
    for name in a.model or ["hybridna-tiny"]:
        model = load_backbone(name)
        for length in map(int, a.lengths.split(",")):
            for pooling in a.poolings.split(","):
                step, ev = measure(model, pooling, length, a.batch, a.eval_batch, a.reps)
                print(f"{name[-28:]:<28} {pooling:<8} {length:>6} {step:>14.2f} {ev:>10.1f}", flush=True)


if __name__ == "__main__":
    main()

"""Pretraining throughput: training tokens/s (forward + backward + AdamW step) per model variant and length.

Prints a table. The numbers size `config/pretrain/demo.yaml`: tokens/s x seconds = tokens the demo can see.

    python benchmarks/bench_pretrain.py --threads 1 --tokens 2048 --lengths 512 --steps 3
    python benchmarks/bench_pretrain.py --variants hybridna-tiny hybridna-tiny:chunk64 --lengths 256 1024
"""

from __future__ import annotations

import argparse
import time

import torch

# name -> (preset, LMConfig overrides)
VARIANTS = {
    "hybridna-tiny": ("hybridna-tiny", {}),
    "hybridna-tiny:chunk64": ("hybridna-tiny", {"mamba2": {"chunk_size": 64}}),
    "hybridna-tiny:chunk128": ("hybridna-tiny", {"mamba2": {"chunk_size": 128}}),
    "hybridna-tiny:d16-chunk64": ("hybridna-tiny", {"mamba2": {"d_state": 16, "chunk_size": 64}}),
    "hybridna-tiny:d32-chunk64": ("hybridna-tiny", {"mamba2": {"d_state": 32, "chunk_size": 64}}),
    "hybridna-tiny:d16-chunk64-hd64": ("hybridna-tiny", {"mamba2": {"d_state": 16, "chunk_size": 64, "headdim": 64}}),
    "hybridna-tiny:d16-chunk32": ("hybridna-tiny", {"mamba2": {"d_state": 16, "chunk_size": 32}}),
    "hybridna-tiny:d64-chunk64": ("hybridna-tiny", {"mamba2": {"d_state": 64, "chunk_size": 64}}),
    "transformer-tiny": ("transformer-tiny", {}),
    "mamba2-tiny": ("mamba2-tiny", {}),
    "hyenadna-tiny": ("hyenadna-tiny", {}),
}


def bench(variant: str, length: int, tokens: int, steps: int, bf16: bool = False) -> dict:
    import copy

    from dnalm.models.lm import DNALM, PRESETS, LMConfig
    from dnalm.config import deep_merge
    from dnalm.pretrain import PretrainModule
    from dnalm.training import parameter_groups

    preset, over = VARIANTS[variant]
    cfg = LMConfig.from_dict(deep_merge(copy.deepcopy(PRESETS[preset]), over))
    model = DNALM(cfg)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in parameter_groups(model, 0.1)], lr=1e-3)
    batch = max(1, tokens // length)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(7, 11, (batch, length), generator=g)
    y = torch.randint(7, 11, (batch, length), generator=g)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x).logits
        loss = PretrainModule.loss_fn(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {"variant": variant + (" bf16" if bf16 else ""), "params": model.num_parameters(), "length": length, "batch": batch,
            "s_per_step": best, "tokens_per_s": batch * length / best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["hybridna-tiny", "hybridna-tiny:d64-chunk64", "hybridna-tiny:d16-chunk64", "transformer-tiny"],
                    choices=list(VARIANTS))
    ap.add_argument("--lengths", nargs="+", type=int, default=[256, 1024])
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step (batch = tokens // length)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps (best reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (on a busy machine 1 beats 2 by far)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (trainer.precision=bf16-mixed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.tokens} tokens/step, best of {args.steps} steps")
    print(f"{'variant':<28} {'params':>9} {'length':>7} {'batch':>6} {'s/step':>8} {'tokens/s':>10}")
    for v in args.variants:
        for length in args.lengths:
            r = bench(v, length, args.tokens, args.steps, args.bf16)
            print(f"{r['variant']:<28} {r['params']:>9,} {r['length']:>7} {r['batch']:>6} {r['s_per_step']:>8.2f} "
                  f"{r['tokens_per_s']:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()

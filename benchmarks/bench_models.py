"""Model speed and memory on CPU: forward / forward+backward tokens/s and peak RSS per preset family and length,
and generation tokens/s with and without the inference cache.

Each measurement runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.

    python benchmarks/bench_models.py                       # full table (minutes)
    python benchmarks/bench_models.py --quick               # 1k/8k only
    python benchmarks/bench_models.py --long-context        # the 131k done-when check for hybridna-tiny
    python benchmarks/bench_models.py --generation          # cached vs recomputed generation
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

PRESETS = ["hyenadna-tiny", "mamba2-tiny", "hybridna-tiny", "transformer-tiny"]


def _worker(spec: dict) -> dict:
    import resource

    import torch

    import dnalm

    torch.set_num_threads(spec.get("threads", 2))
    torch.manual_seed(0)
    over = {"max_length": max(spec["length"] + spec.get("new", 0) + 2, 1026)}
    model = dnalm.build_model(spec["preset"], **over)
    L, B = spec["length"], spec.get("batch", 1)
    x = torch.randint(7, 11, (B, L))
    out = {}
    if spec["kind"] in ("forward", "train"):
        train = spec["kind"] == "train"
        model.train(train)
        reps = spec.get("reps", 1)
        times = []
        for _ in range(reps + 1):  # first call warms up
            t = time.perf_counter()
            if train:
                model(x, labels=x).loss.backward()
                model.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    model(x, num_last_tokens=1)
            times.append(time.perf_counter() - t)
        best = min(times[1:]) if reps else times[0]
        out.update(seconds=best, tokens_per_s=B * L / best)
    elif spec["kind"] == "generate":
        model.eval()
        n_new = spec["new"]
        prompt = x[:, :L]
        with torch.no_grad():
            if spec["cache"]:
                cache = model.allocate_cache(B, L + n_new + 1)
                logits = model(prompt, cache=cache, num_last_tokens=1).logits
                t = time.perf_counter()
                for _ in range(n_new):
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
                    logits = model(nxt, cache=cache).logits
                dt = time.perf_counter() - t
            else:  # recompute the whole forward for each new token
                ids = prompt
                t = time.perf_counter()
                for _ in range(n_new):
                    nxt = model(ids, num_last_tokens=1).logits[:, -1].argmax(-1, keepdim=True)
                    ids = torch.cat([ids, nxt], 1)
                dt = time.perf_counter() - t
        out.update(seconds=dt, tokens_per_s=n_new / dt, ms_per_token=1000 * dt / n_new)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict], cols: list[str]) -> None:
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):>14.1f}" if isinstance(r.get(c), float) else f"{str(r.get(c, '')):>14s}" for c in cols))
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--long-context", action="store_true")
    ap.add_argument("--generation", action="store_true")
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    presets = args.presets.split(",")
    if args.long_context:
        rows = []
        for L in (8192, 32768, 131072):
            r = run(dict(preset="hybridna-tiny", kind="forward", length=L, reps=0))
            rows.append({"length": L, **r})
        table(rows, ["length", "seconds", "tokens_per_s", "peak_rss_mib"])
        t8, t131 = rows[0].get("seconds"), rows[-1].get("seconds")
        if t8 and t131:
            print(f"time ratio 131k/8k = {t131 / t8:.2f} (linear = 16.00; ratio to linear = {t131 / t8 / 16:.2f})")
        return
    if args.generation:
        rows = []
        for L in (1024, 4096, 8192):
            for cache in (True, False):
                n_new = 512 if cache else 4  # recomputing is slow: time 4 tokens and report per-token cost
                r = run(dict(preset="hybridna-tiny", kind="generate", length=L, new=n_new, cache=cache))
                rows.append({"context": L, "cache": str(cache), "new_tokens": n_new, **r})
        table(rows, ["context", "cache", "new_tokens", "ms_per_token", "tokens_per_s", "peak_rss_mib", "error"])
        by = {(r["context"], r["cache"]): r for r in rows}
        for L in (1024, 4096, 8192):
            a, b = by[(L, "True")], by[(L, "False")]
            if "ms_per_token" in a and "ms_per_token" in b:
                print(f"context {L}: cached decoding is {b['ms_per_token'] / a['ms_per_token']:.1f}x faster per token")
        a1, a8 = by[(1024, "True")], by[(8192, "True")]
        if "ms_per_token" in a1 and "ms_per_token" in a8:
            print(f"cached per-token time 8k/1k = {a8['ms_per_token'] / a1['ms_per_token']:.2f}")
        return
    lengths = [1024, 8192] if args.quick else [1024, 8192, 32768, 131072]
    rows = []
    for preset in presets:
        for L in lengths:
            if preset.startswith("hyenadna-tiny") or preset == "transformer-tiny":
                pass
            for kind in ("forward", "train"):
                if kind == "train" and L > 32768:
                    continue
                r = run(dict(preset=preset, kind=kind, length=L, reps=1))
                rows.append({"preset": preset, "length": L, "kind": kind, **r})
                table(rows[-1:], ["preset", "length", "kind", "tokens_per_s", "peak_rss_mib", "error"])


if __name__ == "__main__":
    main()

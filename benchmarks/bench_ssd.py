"""Time and peak memory of the pure-PyTorch chunked SSD scan (and the whole Mamba2 mixer) on CPU.

Shapes are those of one Mamba2 layer of a d_model 128 model (expand 2 -> 256 channels, headdim 64 -> 4 heads,
d_state 64, 1 group, chunk 256), batch 1, float32. Each (what, length) runs in a fresh subprocess so that its
peak resident memory can be measured; "peak MiB" is the rise of the peak RSS above the RSS right before the call
(inputs already allocated), i.e. the working memory of the call and its output.

    python benchmarks/bench_ssd.py                       # L = 1k, 8k, 32k, 131k
    python benchmarks/bench_ssd.py --lengths 1024 8192 --backward --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _child(what: str, length: int, backward: bool, repeat: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from dnalm.models.mamba2 import Mamba2, Mamba2Config, ssd_chunked

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d_model, cfg = 128, Mamba2Config()
    H, P, N, G = 2 * d_model // cfg.headdim, cfg.headdim, cfg.d_state, cfg.ngroups
    if what == "ssd_chunked":
        x = torch.randn(1, length, H, P)
        dt = F.softplus(torch.randn(1, length, H) - 3)
        A = -torch.exp(torch.rand(H) * 2.7)
        B, C = torch.randn(1, length, G, N), torch.randn(1, length, G, N)
        leaves = [x, B, C]

        def call():
            return ssd_chunked(x, dt, A, B, C, cfg.chunk_size, D=torch.ones(H))
    else:
        layer = Mamba2(d_model, layer_idx=0, config=cfg)
        x = torch.randn(1, length, d_model)
        leaves = [x]

        def call():
            return layer(x)

    def once() -> float:
        t0 = time.perf_counter()
        if backward:
            for t in leaves:
                t.requires_grad_(True)
            call().square().mean().backward()
            for t in leaves:
                t.grad = None
        else:
            with torch.no_grad():
                call()
        return time.perf_counter() - t0

    base = _rss_kib("VmRSS")
    exact = _reset_peak()
    times = [once() for _ in range(repeat)]
    peak = _rss_kib("VmHWM") if exact else _ru_maxrss_kib()
    return {"seconds": min(times), "peak_mib": (peak - base) / 1024, "exact_peak": exact}


def _ru_maxrss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192, 32768, 131072])
    ap.add_argument(
        "--what", nargs="+", default=["ssd_chunked", "mamba2_layer"], choices=["ssd_chunked", "mamba2_layer"]
    )
    ap.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    ap.add_argument("--repeat", type=int, default=2, help="runs per point; the fastest is reported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        what, length = args.child.split(":")
        print(json.dumps(_child(what, int(length), args.backward, args.repeat, args.threads)))
        return

    mode = "forward+backward" if args.backward else "forward (no grad)"
    print(
        f"SSD on CPU, d_model 128 layer shapes (H=4, P=64, N=64, chunk 256), batch 1, float32, {mode}, "
        f"{args.threads} threads"
    )
    header = f"{'what':<14}{'length':>9}{'seconds':>10}{'tokens/s':>12}{'us/token':>10}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for what in args.what:
        for length in args.lengths:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"{what}:{length}",
                "--repeat",
                str(args.repeat),
                "--threads",
                str(args.threads),
            ] + (["--backward"] if args.backward else [])
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"{what:<14}{length:>9}  failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            note = "" if r["exact_peak"] else " (process peak)"
            print(
                f"{what:<14}{length:>9}{r['seconds']:>10.3f}{length / r['seconds']:>12,.0f}"
                f"{1e6 * r['seconds'] / length:>10.2f}{r['peak_mib']:>10.1f}{note}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Mamba (v1) selective scan on CPU: the chunked pure-PyTorch scan against the naive recurrence, by length.

Prints one row per length: seconds per call and microseconds per position for both, and the full mixer's
forward. The chunked scan's work is linear in the length (time per position roughly flat); the naive recurrence
is linear too but pays one Python step per position.

    python benchmarks/bench_mamba_scan.py [--lengths 256,1024,4096,16384] [--dim 128] [--state 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from dnalm.models.mamba import Mamba, MambaConfig, selective_scan_chunked, selective_scan_recurrent


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="256,1024,4096,16384")
    p.add_argument("--dim", type=int, default=128, help="d_inner of the scan (the mixer's d_model is half)")
    p.add_argument("--state", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--naive-max", type=int, default=4096, help="skip the naive recurrence above this length")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    mixer = Mamba(args.dim // 2, config=MambaConfig(d_state=args.state)).eval()
    print(f"{'L':>7} {'chunked s':>10} {'us/pos':>8} {'naive s':>9} {'us/pos':>8} {'mixer s':>9} {'us/pos':>8}")
    for L in [int(x) for x in args.lengths.split(",")]:
        u = torch.randn(1, L, args.dim, generator=g)
        delta = F.softplus(torch.randn(1, L, args.dim, generator=g) - 2)
        A = -torch.rand(args.dim, args.state, generator=g) * 4
        B, C = torch.randn(1, L, args.state, generator=g), torch.randn(1, L, args.state, generator=g)
        with torch.inference_mode():
            inputs = (u, delta, A, B, C)
            tc = timed(lambda: selective_scan_chunked(*inputs))  # noqa: B023 - called before the loop moves on
            naive = L <= args.naive_max
            tn = timed(lambda: selective_scan_recurrent(*inputs), 1) if naive else float("nan")  # noqa: B023
            x = torch.randn(1, L, args.dim // 2, generator=g)
            tm = timed(lambda: mixer(x))  # noqa: B023
        print(f"{L:>7} {tc:>10.4f} {tc / L * 1e6:>8.2f} {tn:>9.4f} {tn / L * 1e6:>8.2f} {tm:>9.4f} {tm / L * 1e6:>8.2f}")


if __name__ == "__main__":
    main()

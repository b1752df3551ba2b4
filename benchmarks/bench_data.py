"""Throughput of GenomeWindows: windows/s for random and tiled mode, L = 1 kbp and 32 kbp, 0 and 2 workers.

    .venv/bin/python benchmarks/bench_data.py [--genome FASTA] [--windows 4000] [--batch-size 16]

Reads the shared yeast genome (``$DNALM_DATA/yeast_s288c/sacCer_R64.fa.gz``) by default. Each row times one
pass
over ``--windows`` windows (fewer for 32 kbp, see ``--bp-budget``) through a DataLoader with the dataset's
collate function; worker start-up is excluded (the clock starts at the first batch).
"""

from __future__ import annotations

import argparse
import sys
import time

from torch.utils.data import DataLoader

from dnalm.data import GenomeWindows
from dnalm.utils import data_dir


def measure(
    genome: str, length: int, mode: str, workers: int, windows: int, batch_size: int
) -> tuple[int, float]:
    """(windows produced, seconds) for one pass, timed from the first batch."""
    ds = GenomeWindows(genome, length, mode=mode, num_samples=windows, max_n_frac=0.1, rc_prob=0.5, seed=0)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=ds.collate)
    count, start = 0, None
    for batch in loader:
        if start is None:
            start = time.perf_counter()
            continue  # the first batch carries worker start-up
        count += batch["input_ids"].shape[0]
        if count >= windows:
            break
    return count, time.perf_counter() - (start or time.perf_counter())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome", default=str(data_dir() / "yeast_s288c" / "sacCer_R64.fa.gz"))
    parser.add_argument("--windows", type=int, default=4000, help="windows per row at 1 kbp")
    parser.add_argument(
        "--bp-budget", type=int, default=16_000_000, help="cap on bp per row (sizes 32 kbp rows)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 32768])
    args = parser.parse_args(argv)
    from pathlib import Path

    if not Path(args.genome).exists():
        print(f"genome {args.genome} not found (set DNALM_DATA or pass --genome)", file=sys.stderr)
        return 1
    print(f"GenomeWindows throughput on {args.genome} (batch {args.batch_size}, rc_prob 0.5, max_n_frac 0.1)")
    print(f"{'mode':<8}{'L':>8}{'workers':>9}{'windows':>9}{'seconds':>9}{'windows/s':>11}{'Mbp/s':>8}")
    for mode in ("random", "tiled"):
        for length in args.lengths:
            n = max(4 * args.batch_size, min(args.windows, args.bp_budget // length))
            for workers in args.workers:
                count, seconds = measure(args.genome, length, mode, workers, n, args.batch_size)
                rate = count / seconds if seconds > 0 else float("nan")
                print(
                    f"{mode:<8}{length:>8}{workers:>9}{count:>9}{seconds:>9.2f}{rate:>11.0f}"
                    f"{rate * length / 1e6:>8.1f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

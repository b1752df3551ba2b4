"""Peak memory (RSS) of `dnalm score-variants` against the number of VCF records: it should stay flat.

Each run is a fresh `dnalm score-variants` process on a synthetic genome (two random 1 Mb chromosomes) and a VCF
of N records; its peak RSS comes from the kernel (``os.wait4``). "scorable" records are SNVs whose REF matches the
genome (every one is scored); "unscorable" ones name a contig the genome lacks (read, classified and written, never
scored). A tiny one-layer model with 16-base windows keeps the scoring cheap, so that memory, not compute, is what
is measured.

    python benchmarks/bench_variant_memory.py                       # 1k, 10k, 100k records, both kinds
    python benchmarks/bench_variant_memory.py --sizes 1000,10000 --kinds unscorable

Measured 2026-12-02 on a loaded 2-core machine (load average ~11: wall times are mostly waiting for a core; one
torch thread), `python benchmarks/bench_variant_memory.py`:

| records | kind | peak RSS (MiB) | vs 1k |
|---:|---|---:|---:|
| 1,000 | unscorable | 342.7 | 1.00x |
| 10,000 | unscorable | 344.9 | 1.01x |
| 100,000 | unscorable | 347.1 | 1.01x |
| 1,000 | scorable | 372.0 | 1.00x |
| 10,000 | scorable | 398.2 | 1.07x |
| 100,000 | scorable | 398.8 | 1.07x |

(the scorable rows are from `--kinds scorable`, run before the VCF writer stopped indexing pandas per record: 100k
took 927 s then; under cProfile the writer change took 5k records' streaming loop from 43 s to 7 s. A second run
after it gave 360.0 / 370.5 / 372.2 MiB at 1k / 10k / 100k scorable (1.03x; 100k in 592 s wall under a different
load, so the wall times do not compare). Peak RSS is flat either way: a chunk of 2,048 records is the unit of memory.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, sizes: list[int], kinds: list[str], seed: int = 0) -> dict:
    """Genome, model and one VCF per (kind, size) in ``folder``."""
    import torch

    import dnalm

    rng = np.random.default_rng(seed)
    seqs = {name: "".join(rng.choice(list("ACGT"), 1_000_000)) for name in ("chr1", "chr2")}
    fasta = folder / "genome.fa"
    with open(fasta, "w") as fh:
        for name, s in seqs.items():
            fh.write(f">{name}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n")
    torch.manual_seed(0)
    model = folder / "model"
    dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention=dict(n_heads=2)).save_pretrained(model)
    vcfs = {}
    for kind in kinds:
        for n in sizes:
            path = folder / f"{kind}_{n}.vcf"
            with open(path, "w") as fh:
                fh.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000000>\n##contig=<ID=chr2,length=1000000>\n")
                if kind == "unscorable":
                    fh.write("##contig=<ID=chrUn>\n")
                fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
                for i, pos in enumerate(np.sort(rng.integers(100, 999_900, n))):
                    chrom = "chr1" if kind == "scorable" else "chrUn"
                    ref = seqs["chr1"][pos - 1]
                    alt = "ACGT"[("ACGT".index(ref) + 1 + i % 3) % 4]
                    fh.write(f"{chrom}\t{pos}\tv{i}\t{ref}\t{alt}\t.\t.\tDP={i % 50}\n")
            vcfs[(kind, n)] = path
    return {"fasta": fasta, "model": model, "vcfs": vcfs}


def peak_rss(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit status) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(proc.stderr.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, wall, proc.returncode


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--kinds", default="unscorable,scorable")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    kinds = [k.strip() for k in args.kinds.split(",")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dnalm_cli = [sys.executable, "-m", "dnalm.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-variant-memory-") as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder, sizes, kinds)
        rows = []
        for kind in kinds:
            base = None
            for n in sizes:
                out = folder / f"out_{kind}_{n}.vcf.gz"
                cmd = [*dnalm_cli, "score-variants", "--model", str(inputs["model"]), "--fasta", str(inputs["fasta"]),
                       "--input", str(inputs["vcfs"][(kind, n)]), "--out", str(out), "--window", "16",
                       "--batch-size", str(args.batch_size), "--threads", "1", "--no-progress"]
                rss, wall, rc = peak_rss(cmd, env)
                base = base or rss
                rows.append((kind, n, rss, rss / base, wall, rc))
                print(f"{kind:<11} {n:>8,} records: peak RSS {rss:7.1f} MiB ({rss / base:.2f}x), {wall:6.1f} s, exit {rc}",
                      flush=True)
    print("\n| records | kind | peak RSS (MiB) | vs first size | wall (s) | exit |")
    print("|---:|---|---:|---:|---:|---:|")
    for kind, n, rss, ratio, wall, rc in rows:
        print(f"| {n:,} | {kind} | {rss:.1f} | {ratio:.2f}x | {wall:.1f} | {rc} |")


if __name__ == "__main__":
    main()

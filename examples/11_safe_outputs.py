"""Safe outputs: an existing output is refused without --overwrite, an input is never written over, and a
`score-variants` run killed part-way continues where it stopped (finished records are not scored again).

    python examples/11_safe_outputs.py
"""

import contextlib
import io
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dnalm
from dnalm.cli import main


def dnalm_cli(args: list) -> tuple[int, str]:
    """Run `dnalm ARGS` in this process: (exit code, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, err.getvalue().strip()


def records(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    # a random 100 kb genome, 6,000 SNVs (3 chunks of 2,048 records: the unit of resumption), a tiny random model
    rng = np.random.default_rng(0)
    chrom = "".join(rng.choice(list("ACGT"), 100_000))
    (d / "genome.fa").write_text(">chr1\n" + "\n".join(chrom[i : i + 60] for i in range(0, len(chrom), 60)) + "\n")
    with open(d / "calls.vcf", "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for i, pos in enumerate(np.sort(rng.choice(np.arange(100, 99_900), 6000, replace=False))):
            ref = chrom[pos - 1]
            fh.write(f"chr1\t{pos}\tv{i}\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}\t.\t.\t.\n")
    torch.manual_seed(0)
    dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 2}).save_pretrained(d / "model")
    out = d / "scores.vcf"
    score = ["score-variants", "--model", d / "model", "--fasta", d / "genome.fa", "--input", d / "calls.vcf",
             "--window", "16", "--threads", "1", "--no-progress"]

    # 1. kill -TERM part-way: the run removes its temporaries, writes no output, and keeps its progress
    proc = subprocess.Popen([sys.executable, "-m", "dnalm.cli", *map(str, score), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = Path(f"{out}.dnalm-resume") / "progress.json"
    while proc.poll() is None and not (progress.exists() and json.loads(progress.read_text())["records"] > 0):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    done = json.loads(progress.read_text())["records"]
    leftovers = [p.name for p in d.glob(".*dnalm-tmp-*")]
    print(f"killed: exit {proc.returncode}, {done:,} of 6,000 records done, output written: {out.exists()}, "
          f"temporaries left: {len(leftovers)}")

    # 2. the same command again continues after the finished records
    rc, _ = dnalm_cli([*score, "--out", out])
    resumed = not progress.parent.exists()
    print(f"rerun: exit {rc}, {len(records(out)):,} records written, progress folder removed: {resumed}")

    # 3. ... and its output is the one an uninterrupted run writes
    rc, _ = dnalm_cli([*score, "--out", d / "uninterrupted.vcf"])
    print(f"same records as an uninterrupted run: {records(out) == records(d / 'uninterrupted.vcf')}")

    # 4. an existing output is refused without --overwrite (before any work), an input even with it
    before = out.read_bytes()
    rc, msg = dnalm_cli([*score, "--out", out])
    print(f"refused (exit {rc}): {msg.split(': ', 2)[-1]}")
    rc, msg = dnalm_cli([*score, "--out", d / "calls.vcf", "--overwrite"])
    print(f"refused (exit {rc}): {msg.split(': ', 2)[-1]}")
    print(f"output unchanged: {out.read_bytes() == before}")

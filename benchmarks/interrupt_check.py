"""`kill -TERM` during prepare-genome, score-variants, generate and pretrain: no temporary left, the previous output
intact, and the rerun completes (score-variants resumes after the records it had finished).

    python benchmarks/interrupt_check.py            # prints one line per command and a table
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-m", "dnalm.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sorted(paths) if Path(p).is_file()}


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if ".dnalm-tmp-" in p.name or ".dnalm-old-" in p.name
                  or ".dnalm-lock-" in p.name)


def run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], env=ENV, capture_output=True, text=True, **kw)


def kill_after(args, ready, timeout=600) -> tuple[int, float, str]:
    """Start the command, wait until ``ready()`` (or 0.5 s past start), send SIGTERM; (exit code, seconds, stderr)."""
    proc = subprocess.Popen([*CLI, *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ready() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, time.time() - t0, err


def main() -> None:
    import torch

    import dnalm

    rows = []
    with tempfile.TemporaryDirectory(prefix="interrupt-check-") as tmp:
        d = Path(tmp)
        rng = np.random.default_rng(0)
        seqs = {f"chr{i}": "".join(rng.choice(list("ACGT"), 3_000_000)) for i in range(1, 5)}
        fasta = d / "g.fa"
        fasta.write_text("".join(f">{k}\n" + "\n".join(v[i : i + 60] for i in range(0, len(v), 60)) + "\n"
                                 for k, v in seqs.items()))
        torch.manual_seed(0)
        model = d / "m"
        dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention=dict(n_heads=2)).save_pretrained(model)

        # prepare-genome: a previous genome of the same name, replaced with --overwrite and killed mid-way
        out = d / "prep"
        assert run(["prepare-genome", fasta, "--out", out]).returncode == 0
        before = digest(out.iterdir())
        rc, secs, err = kill_after(["prepare-genome", fasta, "--out", out, "--overwrite"],
                                   lambda: any(".dnalm-tmp-" in p.name for p in out.iterdir()))
        print("prepare-genome killed:", rc, err.strip().splitlines()[-1:], flush=True)
        rows.append(("prepare-genome", rc, secs, temporaries(d), digest(out.iterdir()) == before,
                     run(["prepare-genome", fasta, "--out", out, "--overwrite"]).returncode, ""))

        # score-variants: killed after its first chunk; the rerun resumes
        vcf = d / "v.vcf"
        with open(vcf, "w") as fh:
            fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
            for i, pos in enumerate(np.sort(rng.integers(100, 2_999_000, 5000))):
                ref = seqs["chr1"][pos - 1]
                fh.write(f"chr1\t{pos}\tv{i}\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}\t.\t.\t.\n")
        scored = d / "s.vcf.gz"
        scored.write_text("previous\n")
        args = ["score-variants", "--model", model, "--fasta", fasta, "--input", vcf, "--out", scored, "--window", "16",
                "--batch-size", "256", "--no-progress", "--overwrite"]
        progress = Path(f"{scored}.dnalm-resume") / "progress.json"
        rc, secs, err = kill_after(args, progress.exists)
        left, intact = temporaries(d), scored.read_bytes() == b"previous\n"
        again = run(args)
        rows.append(("score-variants", rc, secs, left, intact, again.returncode,
                     (again.stdout + again.stderr).strip().splitlines()[-1]))

        # generate: a previous FASTA, replaced with --overwrite and killed while sampling
        gen = d / "gen.fa"
        gen.write_text(">previous\nACGT\n")
        args = ["generate", "--model", model, "--num", "400", "--length", "200", "--out", gen, "--overwrite",
                "--no-progress", "--seed", "0"]
        rc, secs, err = kill_after(args, lambda: any(".dnalm-tmp-" in p.name for p in d.iterdir()))
        left, intact = temporaries(d), gen.read_text() == ">previous\nACGT\n"
        rows.append(("generate", rc, secs, left, intact, run(args).returncode, ""))

        # pretrain: a finished run, restarted with --overwrite and killed during training
        genome = out / "g.fa.gz"
        cfg = Path(__file__).resolve().parents[1] / "config" / "pretrain" / "tiny.yaml"
        run_dir = d / "run"
        args = ["pretrain", "--config", cfg, "--out", run_dir, "--set", f"data.genomes.0.path={genome}",
                "--set", "data.validation_chroms=[chr4]", "--set", "data.test_chroms=[chr3]"]
        first = run(args)
        model_files = digest((run_dir / "model").iterdir()) if (run_dir / "model").exists() else {}
        long = [*args, "--overwrite", "--set", "stages.0.steps=400"]
        rc, secs, err = kill_after(long, lambda: (run_dir / "metrics.csv").exists() or time.sleep(3) or True)
        kept = model_files and digest((run_dir / "model").iterdir()) == model_files
        rows.append(("pretrain", rc, secs, temporaries(d) + [str(p) for p in run_dir.rglob("tmp*")], bool(kept),
                     run([*args, "--overwrite"]).returncode, f"first run exit {first.returncode}"))

    print("| command | exit on SIGTERM | killed after (s) | temporaries left | previous output intact | rerun exit | note |")
    print("|---|---:|---:|---|---|---:|---|")
    for name, rc, secs, left, intact, rerun, note in rows:
        print(f"| {name} | {rc} | {secs:.1f} | {len(left)} {left[:2] if left else ''} | {intact} | {rerun} | {note} |")


if __name__ == "__main__":
    main()

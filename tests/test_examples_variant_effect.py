"""Runs examples/05_variant_effect.py end to end with a small window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_variant_effect(demo_yeast_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "05_variant_effect.py"),
            str(tmp_path),
            "--window",
            "64",
            "--genome-dir",
            str(demo_yeast_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "act1.scored.vcf.gz: 6 records (input: 6)" in out
    assert "ref_mismatch" in out and "no_chr_prefix" in out
    assert "merged shards == single process: records True" in out
    assert float(out.split("max |LLR difference| ")[1].split()[0]) < 1e-5
    assert (tmp_path / "ism.tsv").exists() and (tmp_path / "ism.png").stat().st_size > 1000

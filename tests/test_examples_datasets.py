"""Runs examples/02_datasets.py end to end with a small setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_datasets(demo_yeast_dir):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "02_datasets.py"), str(demo_yeast_dir), "--samples", "64"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "validation   1 chromosomes      948,066 bp" in out
    assert "batch input_ids (32, 1024)" in out
    assert "6,399 TSS windows" in out and "'protein_coding': 2" in out

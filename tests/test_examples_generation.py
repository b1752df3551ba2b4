"""Runs examples/07_cre_generation.py end to end on a small toy table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_cre_generation(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "07_cre_generation.py"), "--rows", "300", "--steps", "10",
         "--oracle-epochs", "1", "--num", "8", "--out", str(tmp_path / "cre")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "oracle held-out spearman" in out and "activity=4: 8/8 sequences" in out and "Mann-Whitney" in out
    assert (tmp_path / "cre" / "eval" / "activity.png").exists()
    assert (tmp_path / "cre" / "generator" / "config.json").exists()

"""Runs examples/09_explain.py end to end (40 training steps: the plumbing, not the AUROCs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_explain(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "09_explain.py"), str(tmp_path), "--steps", "40"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
                            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "ig: AUROC planted bases" in out and "ism: AUROC planted bases" in out
    assert (tmp_path / "attributions" / "attributions.npz").exists()
    assert (tmp_path / "attributions" / "top.png").exists()

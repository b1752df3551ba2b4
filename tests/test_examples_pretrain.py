"""Runs examples/04_pretrain.py end to end with a small setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_pretrain(demo_yeast_dir, tmp_path):
    out = tmp_path / "ex"
    (out / "genome").parent.mkdir(parents=True, exist_ok=True)
    (out / "genome").symlink_to(demo_yeast_dir)  # reuse the session's demo genome
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "04_pretrain.py"), str(out), "--steps", "4", "--eval-bases", "4000"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "trained 4 steps, 1,024 tokens" in text
    assert "layers ['mamba2', 'attention']" in text
    assert "<- chosen on validation" in text and "best Markov with k <= 3" in text
    assert (out / "run" / "curves.png").exists() and (out / "run" / "model" / "model.safetensors").exists()

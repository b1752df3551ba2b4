"""Runs examples/08_bring_your_own_model.py end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_example_bring_your_own_model(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "08_bring_your_own_model.py"), "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    diffs = dict(re.findall(r"^(mamba_ssm|caduceus)\s+\S+\s+([0-9.e+-]+)", result.stdout, flags=re.MULTILINE))
    assert set(diffs) == {"mamba_ssm", "caduceus"}, result.stdout
    assert all(float(v) < 1e-5 for v in diffs.values()), result.stdout
    assert "identical weights = True" in result.stdout
    assert "|embed(rc(x)) - flip(embed(x))| = 0.0e+00" in result.stdout
    assert (tmp_path / "hybrid_dnalm" / "model.safetensors").exists()
    assert (tmp_path / "hybrid_back_to_mamba_ssm" / "pytorch_model.bin").exists()

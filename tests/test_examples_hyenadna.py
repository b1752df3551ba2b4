"""Runs examples/03_import_hyenadna.py end to end with a small setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_import_hyenadna(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "03_import_hyenadna.py"), "--out", str(tmp_path), "--length", "50"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    diffs = dict(re.findall(r"^(lightning|hf)\s+\S+\s+([0-9.e+-]+)$", result.stdout, flags=re.MULTILINE))
    assert set(diffs) == {"lightning", "hf"}, result.stdout
    assert all(float(v) < 1e-4 for v in diffs.values()), result.stdout
    for layout in ("lightning", "hf"):
        assert (tmp_path / f"dnalm_from_{layout}" / "model.safetensors").exists()

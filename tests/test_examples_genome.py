"""Runs examples/01_genome_and_variants.py on the session's demo genome folder (reused, not rebuilt)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_example_genome_and_variants(demo_yeast_dir, shared_data):
    if not (shared_data / "model_organisms_1pct").exists():
        pytest.skip("model_organisms_1pct not in DNALM_DATA")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "01_genome_and_variants.py"), str(demo_yeast_dir)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "DNALM_DATA": str(shared_data)},
    )
    assert out.returncode == 0, out.stderr
    assert "12,071,326" in out.stdout
    assert "ref_mismatch" in out.stdout

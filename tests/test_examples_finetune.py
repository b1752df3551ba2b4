"""Runs examples/06_finetune.py end to end on the DNABERT-2 sample task with a few steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnalm.utils import data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_example_finetune(tmp_path):
    data = data_dir() / "dnabert2_sample_data"
    if not data.exists():
        pytest.skip(f"shared data {data} not found (set DNALM_DATA)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "06_finetune.py"), str(tmp_path), "--model", "", "--task",
         str(data.resolve()), "--steps", "2", "--poolings", "mean,echo"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "task dnabert2_sample_data: binary" in out
    assert "ISM of the head on 40 bases" in out and (tmp_path / "head_ism" / "ism.tsv").is_file()
    for name in ("k-mer (k=1..6) + logistic", "frozen mean embedding + logistic", "fine-tuned (mean pooling, 2 steps)",
                 "fine-tuned (echo pooling, 2 steps)"):
        assert name in out
    assert "embeddings (15, 128), labels (15,)" in out
    assert (tmp_path / "finetune_echo" / "model" / "head.json").exists()

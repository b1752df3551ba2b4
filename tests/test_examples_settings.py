"""examples/10_settings_and_training_core.py runs and prints what it claims."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_settings_and_training_core():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "10_settings_and_training_core.py")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "loaded: pooling=echo lr_head=0.001 max_steps=200 weight_decay=0.05" in out.stdout
    assert "refused: " in out.stdout and "lr_hed: unknown key; did you mean 'lr_head'?" in out.stdout
    assert "batch_size: expected integer, got str 'many'" in out.stdout
    assert "model/config.json: mamba2.chunk_sise: unknown key; did you mean 'mamba2.chunk_size'?" in out.stdout
    assert "mamba2.chunk_size=64 mamba2.d_state=64" in out.stdout
    assert "decayed: " in out.stdout and "not decayed: " in out.stdout

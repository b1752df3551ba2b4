"""examples/00_models.py runs and checks what it claims."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_models():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "00_models.py")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "round trip: exact" in out.stdout
    for preset in ("hyenadna-tiny", "mamba2-tiny", "hybridna-tiny", "transformer-tiny"):
        assert preset in out.stdout

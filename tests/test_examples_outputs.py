"""examples/11_safe_outputs.py runs and prints what it claims: a killed score-variants run resumes without redoing
finished records and ends with the uninterrupted output; an existing output and an input are refused."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_example_safe_outputs():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "11_safe_outputs.py")],
                         capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr
    killed = re.search(r"killed: exit 143, ([\d,]+) of 6,000 records done, output written: False, temporaries left: 0",
                       out.stdout)
    assert killed, out.stdout
    done = int(killed.group(1).replace(",", ""))
    assert 0 < done < 6000 and done % 2048 == 0  # whole chunks only
    assert f"resumed after {done:,} record(s) done earlier" in out.stdout
    assert "rerun: exit 0, 6,000 records written, progress folder removed: True" in out.stdout
    assert "same records as an uninterrupted run: True" in out.stdout
    assert re.search(r"refused \(exit 2\): \S+scores.vcf: the output file exists; pass --overwrite", out.stdout)
    assert re.search(r"refused \(exit 2\): \S+calls.vcf: is also an input of this run", out.stdout)
    assert "output unchanged: True" in out.stdout

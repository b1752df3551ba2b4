#!/usr/bin/env bash
# GPU check: on a CUDA machine with the `cuda` extra (and `bench` for the peers) installed, one command runs the
# fused-kernel parity tests, a bfloat16 training step of hybridna-tiny and hyenadna-small, and benchmarks/peers.py on
# the GPU, each under a time limit, within 8 minutes in all. Exit status: non-zero if any stage failed.
#
#   pip install -e '.[cuda,bench,dev]' --no-build-isolation   # see the README's kernel install notes
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
#
# Status: written without a GPU (none was lent while it was written); it has not been run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

stage() {  # stage NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  if timeout "$limit" "$@"; then
    echo "=== $name: ok in $((SECONDS - t0)) s"
  else
    echo "=== $name: FAILED (exit $?) after $((SECONDS - t0)) s"
    status=1
  fi
}

stage "preflight" 60 "$PY" - <<'PYEOF'
import torch
from dnalm.models import mamba2
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
print("mamba_ssm + causal_conv1d kernels:", mamba2.kernels_available())
if not mamba2.kernels_available():
    raise SystemExit("the cuda extra's kernels did not import: the parity tests would be skipped")
PYEOF

# fused kernels against the pure-PyTorch reference (tests marked gpu), then the reference paths on CUDA too
stage "kernel parity tests" 150 "$PY" -m pytest -q -m gpu tests/test_mamba2.py -p no:cacheprovider

stage "bf16 training step" 90 "$PY" - <<'PYEOF'
import time
import torch
from dnalm.models import build_model
for preset, L in (("hybridna-tiny", 4096), ("hyenadna-small", 8192)):
    torch.manual_seed(0)
    model = build_model(preset).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(7, 11, (4, L), device="cuda")
    losses = []
    for step in range(4):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, labels=x).loss
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        losses.append(float(loss))
    dt = time.perf_counter() - t0
    assert all(torch.isfinite(torch.tensor(losses))), losses
    print(f"{preset}: bf16 autocast step {dt * 1e3:.0f} ms ({4 * L / dt:,.0f} tokens/s), losses {losses}")
PYEOF

# the peers on the GPU in float32 (HF's Mamba2Mixer uses the mamba_ssm kernels when they are installed)
stage "peers.py" 210 "$PY" benchmarks/peers.py --device cuda --threads 1 --reps 5 \
  --mamba-lengths 4096 16384 --mamba-train-lengths 4096 16384 \
  --hyena-lengths 8192 32768 --hyena-train-lengths 8192 \
  --pretrain-length 4096 --pretrain-batch 4

exit $status

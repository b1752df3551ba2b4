"""Settings files and the training core: strict YAML + --set loading, typed model sub-configs, one no-decay rule.

    python examples/10_settings_and_training_core.py
"""

import tempfile
from pathlib import Path

import dnalm
from dnalm.config import ConfigError, apply_overrides, load_config
from dnalm.models import LMConfig
from dnalm.training import parameter_groups
from finetune.config import FinetuneConfig

with tempfile.TemporaryDirectory() as d:
    # 1. a settings file plus --set overrides (typed by the field: 1e-3 is a number even without a dot)
    path = Path(d) / "finetune.yaml"
    path.write_text("pooling: echo\nlr_head: 1e-3\nmax_steps: 500\n")
    cfg = load_config(FinetuneConfig, path, ["max_steps=200", "weight_decay=0.05"])
    print(f"loaded: pooling={cfg.pooling} lr_head={cfg.lr_head!r} max_steps={cfg.max_steps} "
          f"weight_decay={cfg.weight_decay}")

    # 2. a misspelt key or a wrongly typed value stops before any work, naming the key
    path.write_text("lr_hed: 1e-3\n")
    for attempt in (lambda: load_config(FinetuneConfig, path), lambda: apply_overrides(cfg, ["batch_size=many"])):
        try:
            attempt()
        except ConfigError as exc:
            print("refused:", str(exc).split(" (known:")[0])

# 3. a model config: the mixer settings are typed sub-configs, checked at load without building anything
try:
    LMConfig.from_dict({"mixer": "mamba2", "mamba2": {"chunk_sise": 64}}, source="model/config.json")
except ConfigError as exc:
    print("refused:", str(exc).split(" (known:")[0])
lm = LMConfig.from_dict({"mixer": "mamba2", "d_model": 64, "n_layer": 2, "mamba2": {"headdim": 32, "chunk_size": 64}})
print(f"model config: mamba2.chunk_size={lm.mamba2.chunk_size} mamba2.d_state={lm.mamba2.d_state} (default)")

# 4. the one no-decay rule that pretraining, fine-tuning and generator fine-tuning share
model = dnalm.build_model(lm)
decay, no_decay = parameter_groups(model, weight_decay=0.1)
print(f"decayed: {len(decay['names'])} weight matrices, e.g. {decay['names'][0]}")
print(f"not decayed: {len(no_decay['names'])} (biases, norms, embeddings, A_log, D, dt_bias), e.g. "
      f"{', '.join(n.rsplit('.', 2)[-2] + '.' + n.rsplit('.', 1)[-1] for n in no_decay['names'][:4])}")

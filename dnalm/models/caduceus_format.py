"""Caduceus folders (``CaduceusForMaskedLM`` / ``Caduceus``, model_type "caduceus") -> dnalm masked models.

A Caduceus folder holds ``config.json`` (CaduceusConfig: d_model, n_layer, vocab_size, ssm_cfg, rms_norm,
norm_epsilon, fused_add_norm, residual_in_fp32, pad_vocab_size_multiple, bidirectional, bidirectional_strategy,
bidirectional_weight_tie, rcps, complement_map) and ``model.safetensors`` or ``pytorch_model.bin``. Its tokenizer ids
equal HyenaDNA's (and dnalm's). Names map as follows (``caduceus.`` prefix of the masked LM optional; RCPS
checkpoints wrap modules in ``submodule`` / ``embedding`` / ``lm_head``):

    backbone.embeddings.word_embeddings[.embedding].weight -> backbone.embeddings.word_embeddings.weight
    backbone.layers.{i}.mixer[.submodule].mamba_fwd|mamba_rev.* -> backbone.layers.{i}.mixer.fwd|rev.*
    backbone.layers.{i}.norm[.submodule].*                 -> backbone.layers.{i}.norm1.*
    backbone.norm_f[.submodule].*                          -> backbone.ln_f.*
    lm_head[.lm_head].weight                               -> lm_head.weight (tied to the embedding when equal)

``fused_add_norm`` (true in the released checkpoints) selects the published fused RCPS block, which exchanges the
two halves of the hidden state before each block (see :mod:`dnalm.models.caduceus`); it is kept as ``half_swap``.
"""

from __future__ import annotations

import os
import re

import torch

from dnalm.errors import InputError

IMPORTED_MAX_LENGTH = 131072  # Caduceus has no length limit; its released models were trained at 131k


def lm_config_from_caduceus(cfg: dict, name: str = "config.json") -> dict:
    """LMConfig fields of a CaduceusConfig dict."""
    if not cfg.get("bidirectional", True):
        raise InputError(f"{name}: bidirectional=false Caduceus models are not supported (import it as mamba_ssm)")
    ssm = dict(cfg.get("ssm_cfg") or {})
    for k in ("use_fast_path", "layer_idx", "device", "dtype"):
        ssm.pop(k, None)
    rcps = bool(cfg.get("rcps", False))
    cmap = cfg.get("complement_map") or {}
    cmap_list = [int(cmap[k]) for k in sorted(cmap, key=int)] if isinstance(cmap, dict) else list(cmap)
    if rcps and not cmap_list:
        raise InputError(f"{name}: rcps=true needs a complement_map")
    return {
        "kind": "masked", "mixer": "mamba", "d_model": int(cfg.get("d_model", 2560)),
        "n_layer": int(cfg.get("n_layer", 64)), "vocab_size": int(cfg.get("vocab_size", 50277)),
        "pad_vocab_size_multiple": int(cfg.get("pad_vocab_size_multiple", 8)), "mlp": "none",
        "norm": "rmsnorm" if cfg.get("rms_norm", True) else "layernorm",
        "norm_eps": float(cfg.get("norm_epsilon", 1e-5)), "tie_embeddings": True, "max_length": IMPORTED_MAX_LENGTH,
        "mamba": ssm,
        "bidirectional": {
            "strategy": cfg.get("bidirectional_strategy") or "add",
            "weight_tie": bool(cfg.get("bidirectional_weight_tie", True)), "rcps": rcps,
            "half_swap": rcps and bool(cfg.get("fused_add_norm", True)), "complement_map": cmap_list,
        },
    }


_RENAMES = [
    (re.compile(r"^backbone\.embeddings\.word_embeddings\.embedding\.weight$"),
     "backbone.embeddings.word_embeddings.weight"),
    (re.compile(r"^backbone\.layers\.(\d+)\.mixer\.(?:submodule\.)?mamba_fwd\."), r"backbone.layers.\1.mixer.fwd."),
    (re.compile(r"^backbone\.layers\.(\d+)\.mixer\.(?:submodule\.)?mamba_rev\."), r"backbone.layers.\1.mixer.rev."),
    (re.compile(r"^backbone\.layers\.(\d+)\.norm\.(?:submodule\.)?"), r"backbone.layers.\1.norm1."),
    (re.compile(r"^backbone\.norm_f\.(?:submodule\.)?"), "backbone.ln_f."),
    (re.compile(r"^lm_head\.(?:lm_head\.)?weight$"), "lm_head.weight"),
]


def state_dict_from_caduceus(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[int] | None]:
    """dnalm names of a Caduceus state dict, and the complement map stored in its buffers (if any)."""
    out, cmap = {}, None
    for key, value in tensors.items():
        key = key.removeprefix("caduceus.")
        if key.endswith("complement_map"):
            cmap = [int(v) for v in value.tolist()]
            continue
        for pattern, repl in _RENAMES:
            if pattern.search(key):
                key = pattern.sub(repl, key)
                break
        out[key] = value
    return out, cmap


def import_caduceus(folder: str | os.PathLike, tensors: dict[str, torch.Tensor], cfg: dict):
    """A dnalm masked model with the weights of a Caduceus folder (config dict and tensors already read)."""
    from dnalm.models.lm import LMConfig, build_model
    from dnalm.models.mamba_ssm_format import load_mapped

    name = str(folder)
    fields = lm_config_from_caduceus(cfg, f"{name}/config.json")
    mapped, stored_cmap = state_dict_from_caduceus(tensors)
    if "lm_head.weight" in mapped and "backbone.embeddings.word_embeddings.weight" in mapped and not torch.equal(
        mapped["lm_head.weight"], mapped["backbone.embeddings.word_embeddings.weight"]
    ):
        fields["tie_embeddings"] = False
    model = build_model(LMConfig.from_dict(fields, source=name))
    if stored_cmap is not None and model.backbone.rcps:
        ours = model.backbone.embeddings.complement_map.tolist()
        n = min(len(ours), len(stored_cmap))
        if stored_cmap[:n] != ours[:n]:
            raise InputError(f"{name}: the complement_map buffer differs from config.json's complement_map")
    load_mapped(model, mapped, name)
    return model

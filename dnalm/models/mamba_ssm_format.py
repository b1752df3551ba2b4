"""mamba_ssm ``MambaLMHeadModel`` folders <-> dnalm models (Mamba1/Mamba2 layers, attention hybrids, gated MLPs).

A mamba_ssm folder holds ``config.json`` (``MambaConfig``: d_model, d_intermediate, n_layer, vocab_size, ssm_cfg,
attn_layer_idx, attn_cfg, rms_norm, residual_in_fp32, fused_add_norm, pad_vocab_size_multiple, tie_embeddings)
and ``pytorch_model.bin`` (what ``MambaLMHeadModel.save_pretrained`` writes; read here with
``torch.load(weights_only=True)``) or ``model.safetensors``. mamba_ssm's block (Add -> Norm -> Mixer with a separate
residual stream) is the same function as dnalm's pre-norm block, so the weights map name for name:

    backbone.embedding             -> backbone.embeddings.word_embeddings
    backbone.layers.{i}.norm       -> backbone.layers.{i}.norm1
    backbone.layers.{i}.mixer|norm2|mlp  (same names)
    backbone.norm_f                -> backbone.ln_f
    lm_head                        (same; absent or equal when tied)

Departures, refused with a message rather than approximated: attention without ``causal: true`` (a causal LM),
``mlp_dim`` in attention, interleaved rotary, Mamba2's ``d_ssm`` < d_inner, ``D_has_hdim``, ``dt_limit``.
``residual_in_fp32`` / ``fused_add_norm`` only change rounding and are not stored.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from dnalm.errors import InputError

GATED_MLP_MULTIPLE = 128  # mamba_ssm's GatedMLP rounds hidden_features up to a multiple of this
IMPORTED_MAX_LENGTH = 131072  # mamba_ssm models have no length limit; dnalm needs one (KV caches, checks)

# mamba_ssm's defaults where they differ from dnalm's (Mamba2 d_state: 128 there, 64 here)
_MAMBA2_DEFAULTS = {"d_state": 128}
_MAMBA2_KEYS = {"d_state", "d_conv", "expand", "headdim", "ngroups", "A_init_range", "rmsnorm", "norm_before_gate",
                "dt_min", "dt_max", "dt_init_floor", "bias", "conv_bias", "chunk_size"}
_MAMBA1_KEYS = {"d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale",
                "dt_init_floor", "conv_bias", "bias"}
_IGNORED_SSM_KEYS = {"use_fast_path", "use_mem_eff_path", "conv_init", "process_group", "sequence_parallel",
                     "layer_idx", "device", "dtype"}


def is_mamba_ssm_config(cfg: dict) -> bool:
    """Whether a config.json dict is a mamba_ssm MambaConfig (and not HyenaDNA's, Caduceus's or dnalm's)."""
    if cfg.get("model_type") in ("dnalm", "caduceus", "hyenadna"):
        return False
    return {"d_model", "n_layer", "vocab_size"} <= set(cfg) and ("ssm_cfg" in cfg or "attn_layer_idx" in cfg
                                                              or "fused_add_norm" in cfg)


def lm_config_from_mamba_ssm(cfg: dict, name: str = "config.json") -> dict:
    """LMConfig fields of a mamba_ssm MambaConfig dict (defaults as ``mamba_ssm.models.config_mamba``)."""
    ssm = dict(cfg.get("ssm_cfg") or {})
    layer = ssm.pop("layer", "Mamba1")
    if layer not in ("Mamba1", "Mamba2"):
        raise InputError(f"{name}: ssm_cfg.layer is {layer!r}; mamba_ssm knows Mamba1 and Mamba2")
    d_model = int(cfg.get("d_model", 2560))
    unknown = sorted(set(ssm) - _IGNORED_SSM_KEYS - (_MAMBA2_KEYS | {"d_ssm", "D_has_hdim", "dt_limit"}
                                                     if layer == "Mamba2" else _MAMBA1_KEYS))
    if unknown:
        raise InputError(f"{name}: ssm_cfg setting(s) dnalm's {layer} does not implement: {', '.join(unknown)}")
    if layer == "Mamba2":
        d_inner = int(ssm.get("expand", 2)) * d_model
        if ssm.get("d_ssm") not in (None, d_inner):
            raise InputError(f"{name}: ssm_cfg.d_ssm={ssm['d_ssm']} (a partial SSM) is not supported")
        if ssm.get("D_has_hdim"):
            raise InputError(f"{name}: ssm_cfg.D_has_hdim=true is not supported")
        if ssm.get("dt_limit") not in (None, [0.0, float("inf")], (0.0, float("inf"))):
            raise InputError(f"{name}: ssm_cfg.dt_limit={ssm['dt_limit']} is not supported")
        mixer_cfg = {**_MAMBA2_DEFAULTS, **{k: v for k, v in ssm.items() if k in _MAMBA2_KEYS}}
    else:
        mixer_cfg = {k: v for k, v in ssm.items() if k in _MAMBA1_KEYS}
    attn = dict(cfg.get("attn_cfg") or {})
    attn_idx = [int(i) for i in cfg.get("attn_layer_idx") or []]
    attention = {}
    if attn_idx:
        if not attn.get("causal", False):
            raise InputError(f"{name}: attn_cfg.causal is not true; a causal language model needs causal attention")
        if attn.get("mlp_dim", 0):
            raise InputError(f"{name}: attn_cfg.mlp_dim > 0 (attention with a parallel MLP) is not supported")
        if attn.get("rotary_emb_interleaved", False):
            raise InputError(f"{name}: attn_cfg.rotary_emb_interleaved=true is not supported")
        known = {"num_heads", "num_heads_kv", "head_dim", "qkv_proj_bias", "out_proj_bias", "softmax_scale",
                 "causal", "d_conv", "rotary_emb_dim", "rotary_emb_base", "rotary_emb_interleaved", "mlp_dim"}
        unknown = sorted(set(attn) - known)
        if unknown:
            raise InputError(f"{name}: attn_cfg setting(s) not supported: {', '.join(unknown)}")
        if "num_heads" not in attn:
            raise InputError(f"{name}: attn_cfg has no num_heads")
        rotary = int(attn.get("rotary_emb_dim", 0))
        attention = {
            "n_heads": int(attn["num_heads"]), "n_kv_heads": attn.get("num_heads_kv"),
            "head_dim": attn.get("head_dim"), "qkv_bias": bool(attn.get("qkv_proj_bias", True)),
            "out_bias": bool(attn.get("out_proj_bias", True)), "rotary": rotary > 0, "rotary_dim": rotary,
            "rope_theta": float(attn.get("rotary_emb_base", 10000.0)), "d_conv": int(attn.get("d_conv", 0)),
            "softmax_scale": attn.get("softmax_scale"),
        }
    d_int = int(cfg.get("d_intermediate", 0))
    out = {
        "d_model": d_model, "n_layer": int(cfg.get("n_layer", 64)), "vocab_size": int(cfg.get("vocab_size", 50277)),
        "pad_vocab_size_multiple": int(cfg.get("pad_vocab_size_multiple", 8)),
        "mixer": "mamba2" if layer == "Mamba2" else "mamba", "attn_layer_idx": attn_idx,
        "mlp": "gated" if d_int else "none",
        "d_intermediate": -(-d_int // GATED_MLP_MULTIPLE) * GATED_MLP_MULTIPLE if d_int else 0,
        "norm": "rmsnorm" if cfg.get("rms_norm", True) else "layernorm", "norm_eps": 1e-5,
        "tie_embeddings": bool(cfg.get("tie_embeddings", True)), "max_length": IMPORTED_MAX_LENGTH,
        "attention": attention,
    }
    out["mamba2" if layer == "Mamba2" else "mamba"] = mixer_cfg
    return out


def state_dict_from_mamba_ssm(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """dnalm names of a MambaLMHeadModel state dict (see the module docstring)."""
    out = {}
    for key, value in tensors.items():
        new = key
        if key.startswith("backbone.embedding."):
            new = "backbone.embeddings.word_embeddings." + key[len("backbone.embedding."):]
        elif key.startswith("backbone.norm_f."):
            new = "backbone.ln_f." + key[len("backbone.norm_f."):]
        elif key.startswith("backbone.layers."):
            parts = key.split(".")
            if parts[3] == "norm":
                parts[3] = "norm1"
            if parts[3] == "mixer" and parts[4] == "rotary_emb":
                continue  # inv_freq buffer, recomputed
            new = ".".join(parts)
        out[new] = value
    return out


def import_mamba_ssm(folder: str | os.PathLike, tensors: dict[str, torch.Tensor], cfg: dict):
    """A dnalm model with the weights of a mamba_ssm MambaLMHeadModel folder (config dict and tensors read)."""
    from dnalm.models.lm import LMConfig, build_model

    name = str(folder)
    lm_cfg = LMConfig.from_dict(lm_config_from_mamba_ssm(cfg, f"{name}/config.json"), source=name)
    model = build_model(lm_cfg)
    load_mapped(model, state_dict_from_mamba_ssm(tensors), name)
    return model


def load_mapped(model, mapped: dict[str, torch.Tensor], name: str) -> None:
    """Load renamed tensors into ``model``, checking that every tensor has a place and the shapes agree."""
    target = model.state_dict()
    tied = model.config.tie_embeddings
    if tied and "lm_head.weight" in mapped:
        emb = mapped.get("backbone.embeddings.word_embeddings.weight")
        if emb is not None and not torch.equal(emb, mapped["lm_head.weight"]):
            raise InputError(f"{name}: tie_embeddings is true but lm_head.weight differs from the embedding")
        mapped = {k: v for k, v in mapped.items() if k != "lm_head.weight"}
    unexpected = sorted(set(mapped) - set(target))
    if unexpected:
        raise InputError(f"{name}: tensors with no place in the model: {', '.join(unexpected[:6])}"
                         + (" ..." if len(unexpected) > 6 else ""))
    missing = sorted(k for k in target if k not in mapped and not _tied_copy(model, k))
    if missing:
        raise InputError(f"{name}: no weights for {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(target[key].shape):
            raise InputError(f"{name}: {key} has shape {tuple(value.shape)}, config.json implies "
                             f"{tuple(target[key].shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{name}: {key} holds non-finite values")
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in mapped.items()}, strict=False)
    model.eval()


def _tied_copy(model, key: str) -> bool:
    """Whether ``key`` names a parameter shared with another name (weight tying), so one copy suffices."""
    if key == "lm_head.weight" and model.config.tie_embeddings:
        return True
    bidi = model.config.bidi
    return bool(bidi and bidi.weight_tie and ".mixer.rev." in key
                and key.split(".mixer.rev.")[1].startswith(("in_proj.", "out_proj.")))


# ---------------------------------------------------------------------------------------------------- export


def mamba_ssm_config(model) -> dict:
    """The MambaConfig dict of a dnalm model, or an InputError saying why mamba_ssm cannot express it."""
    cfg = model.config
    why = []
    if cfg.kind != "causal":
        why.append("it is a bidirectional (masked) model")
    if cfg.mixer not in ("mamba", "mamba2"):
        why.append(f"its mixer is {cfg.mixer!r} (mamba_ssm has Mamba1, Mamba2 and attention layers)")
    if cfg.mlp == "plain":
        why.append("its MLP is the plain fc1-GELU-fc2 (mamba_ssm has the gated MLP)")
    if cfg.norm_eps != 1e-5:
        why.append(f"its norm epsilon is {cfg.norm_eps} (mamba_ssm's MambaLMHeadModel uses 1e-5)")
    if why:
        raise InputError("cannot export to mamba_ssm: " + "; ".join(why))
    ssm = {"layer": "Mamba2" if cfg.mixer == "mamba2" else "Mamba1"}
    # every setting of the typed sub-config, so those whose defaults differ between the two codes are written
    mixer_cfg = dataclasses.asdict(cfg.mamba2 if cfg.mixer == "mamba2" else cfg.mamba)
    keys = _MAMBA2_KEYS if cfg.mixer == "mamba2" else _MAMBA1_KEYS
    if "A_init_range" in mixer_cfg:
        mixer_cfg["A_init_range"] = list(mixer_cfg["A_init_range"])
    ssm.update({k: v for k, v in mixer_cfg.items() if k in keys})
    attn_cfg = {}
    if cfg.attn_layer_idx:
        a = cfg.attention
        head_dim = a.head_dim or cfg.d_model // a.n_heads
        attn_cfg = {
            "num_heads": a.n_heads, "num_heads_kv": a.n_kv_heads or a.n_heads, "head_dim": head_dim,
            "qkv_proj_bias": a.bias if a.qkv_bias is None else a.qkv_bias,
            "out_proj_bias": a.bias if a.out_bias is None else a.out_bias, "causal": True,
            "rotary_emb_dim": (a.rotary_dim or head_dim) if a.rotary else 0, "rotary_emb_base": a.rope_theta,
            "d_conv": a.d_conv, "softmax_scale": a.softmax_scale,
        }
    d_int = model.backbone.layers[0].mlp.fc2.in_features if cfg.mlp == "gated" else 0
    return {
        "d_model": cfg.d_model, "d_intermediate": -(-d_int // GATED_MLP_MULTIPLE) * GATED_MLP_MULTIPLE,
        "n_layer": cfg.n_layer, "vocab_size": cfg.vocab_size, "ssm_cfg": ssm,
        "attn_layer_idx": list(cfg.attn_layer_idx), "attn_cfg": attn_cfg, "rms_norm": cfg.norm == "rmsnorm",
        "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": cfg.pad_vocab_size_multiple,
        "tie_embeddings": cfg.tie_embeddings,
    }


def mamba_ssm_state_dict(model) -> dict[str, torch.Tensor]:
    """The MambaLMHeadModel state dict of a dnalm model (gated MLPs zero-padded to mamba_ssm's multiple of 128)."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if key.startswith("backbone.embeddings.word_embeddings."):
            key = "backbone.embedding." + key[len("backbone.embeddings.word_embeddings."):]
        elif key.startswith("backbone.ln_f."):
            key = "backbone.norm_f." + key[len("backbone.ln_f."):]
        elif key.startswith("backbone.layers."):
            parts = key.split(".")
            if parts[3] == "norm1":
                parts[3] = "norm"
            key = ".".join(parts)
            if parts[3] == "mlp":
                value = _pad_gated_mlp(parts[4], value)
        out[key] = value.clone()
    if model.config.tie_embeddings:
        out["lm_head.weight"] = out["backbone.embedding.weight"]
    return out


def _pad_gated_mlp(which: str, w: torch.Tensor) -> torch.Tensor:
    """Zero hidden units up to a multiple of 128: they contribute y * silu(gate) = 0 * silu(0) = 0 exactly."""
    hidden = w.shape[0] // 2 if which == "fc1" else w.shape[1]
    extra = -(-hidden // GATED_MLP_MULTIPLE) * GATED_MLP_MULTIPLE - hidden
    if not extra:
        return w
    if which == "fc1":  # rows [y; gate]
        y, gate = w.chunk(2, dim=0)
        pad = w.new_zeros(extra, w.shape[1])
        return torch.cat([y, pad, gate, pad], dim=0)
    return torch.cat([w, w.new_zeros(w.shape[0], extra)], dim=1)


def export_mamba_ssm(model, out_dir: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``pytorch_model.bin`` that ``MambaLMHeadModel.from_pretrained(out_dir)`` loads.

    mamba_ssm reads only ``pytorch_model.bin`` (``torch.load``), so that format is written (a plain dict of tensors,
    loadable with ``weights_only=True``).
    """
    from dnalm.utils import atomic_path, atomic_write

    config = mamba_ssm_config(model)
    tensors = mamba_ssm_state_dict(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "pytorch_model.bin") as tmp:
        torch.save(tensors, tmp)
    with atomic_write(out / "config.json") as fh:
        json.dump(config, fh, indent=2)
    return out


__all__ = ["export_mamba_ssm", "import_mamba_ssm", "is_mamba_ssm_config", "lm_config_from_mamba_ssm",
           "mamba_ssm_config", "mamba_ssm_state_dict", "state_dict_from_mamba_ssm"]

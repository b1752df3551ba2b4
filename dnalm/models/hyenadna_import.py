"""Import published HyenaDNA checkpoints into dnalm models.

Three layouts are recognised by their key prefix:

- ``lightning``: the training code's Lightning ``.ckpt`` (``{"state_dict": {"model.backbone...": ...},
  "hyper_parameters": ...}``), e.g. LongSafari/hyenadna-*-seqlen ``weights.ckpt`` (with a ``config.json`` beside it);
- ``hf``: the LongSafari ``-hf`` ports (``pytorch_model.bin`` or ``model.safetensors`` with ``hyena.backbone...``
  keys and a ``config.json`` with ``d_model, n_layer, d_inner, max_seq_len, emb_dim, filter_order, ...``);
- ``standalone``: a bare state dict of the backbone (``backbone...``), as ``standalone_hyenadna.py`` saves it.

The architecture (width, depth, MLP width, Hyena order, filter MLP shape, short-filter kernel, maximum length) is
read from the tensors' shapes; a config (``config.json`` beside the checkpoint, an explicit one, or the
checkpoint's ``hyper_parameters``) supplies what shapes cannot tell (vocabulary, norm epsilon, dropout, the filter
window's ``shift``), and is checked against the shapes.

The decay window's ``shift`` is not stored in checkpoints and the published codes disagree on it: HyenaDNA's training
code (which produced the weights) uses 0.0, its ``standalone_hyenadna.py`` and the ``-hf`` modelling code use 0.05.
Each layout gets the value of the code that defines its outputs (lightning: 0.0, hf and standalone: 0.05) unless a
config names one; ``config_overrides={"hyena": {"shift": ...}}`` picks either.

Pickled checkpoints are read only with ``torch.load(..., weights_only=True)``. Lightning checkpoints often carry
non-tensor Python objects (e.g. OmegaConf configs in ``hyper_parameters``); those classes are replaced by inert
placeholders that record their pickled state without running any of the original code.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from dnalm.errors import InputError
from dnalm.models.weights import describe_load_error

_EMB_SUFFIX = "backbone.embeddings.word_embeddings.weight"
_LAYER_RE = re.compile(r"^backbone\.layers\.(\d+)\.(.+)$")
_DEFAULT_SHIFT = {"lightning": 0.0, "hf": 0.05, "standalone": 0.05}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "weights.ckpt", "last.ckpt")


# ---------------------------------------------------------------------------------------------------- reading
class _Inert:
    """Stand-in for a class pickled in a checkpoint: records its arguments and state, runs nothing."""

    _pickled_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj._args = args
        obj._state = None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self._state = state

    def __repr__(self) -> str:
        return f"<inert {self._pickled_name}>"


def _inert_class(full_name: str) -> type:
    return type("Inert", (_Inert,), {"_pickled_name": full_name})


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, with inert placeholders for the non-tensor classes a checkpoint names."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = exc
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file is a bad input, reported by name
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({describe_load_error(exc)})") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({describe_load_error(first)})") from None
    stand_ins = [(_inert_class(name), name) for name in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: cannot be read with weights_only=True ({describe_load_error(exc)})") from None


def _plain(obj: Any, depth: int = 0) -> Any:
    """Plain Python values from a (possibly OmegaConf-placeholder) hyper-parameter tree."""
    if depth > 50:
        return None
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, _Inert):
        state = obj._state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        if isinstance(state, dict):
            if "_content" in state:  # OmegaConf DictConfig / ListConfig
                return _plain(state["_content"], depth + 1)
            if "_val" in state:  # OmegaConf value node
                return _plain(state["_val"], depth + 1)
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return None


def _find_model_config(tree: Any) -> dict | None:
    """The first dict in a hyper-parameter tree that describes a HyenaDNA model (d_model + layer / n_layer)."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if "d_model" in node and ("layer" in node or "n_layer" in node):
                return node
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
    return None


def _read_json(path: Path) -> dict:
    from dnalm.utils import read_model_json

    data = read_model_json(path)
    if data.get("model_type") == "dnalm":
        raise InputError(f"{path}: this is already a dnalm model directory; load it with dnalm.load_model")
    return data


def read_hyenadna_checkpoint(source, hyenadna_config=None) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """Tensors and model config of a HyenaDNA checkpoint.

    Args:
        source: a state dict (or a dict with ``"state_dict"``), a checkpoint file (``.ckpt``/``.bin``/``.pt``/
            ``.safetensors``) or a directory holding one (plus ``config.json``).
        hyenadna_config: a HyenaDNA config (dict or path to its ``config.json``); default: ``config.json`` beside
            the checkpoint, else the checkpoint's ``hyper_parameters``.

    Returns:
        (flat dict of tensors with the checkpoint's own keys, the model config dict or None, a name for messages).
    """
    config = None
    if isinstance(hyenadna_config, (str, os.PathLike)):
        config = _read_json(Path(hyenadna_config))
    elif isinstance(hyenadna_config, dict):
        config = dict(hyenadna_config)

    if isinstance(source, dict):
        name = "<state dict>"
        raw = source
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if path.is_dir():
            found = [path / f for f in _WEIGHT_FILES if (path / f).exists()]
            found = found or sorted(path.glob("*.ckpt"))
            if not found:
                raise InputError(f"{path}: no HyenaDNA weights found (looked for {', '.join(_WEIGHT_FILES)}, *.ckpt)")
            path = found[0]
        name = str(path)
        if config is None and (path.parent / "config.json").exists():
            config = _read_json(path.parent / "config.json")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                raw = load_file(str(path), device="cpu")
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
        else:
            raw = _torch_load(path)
    if not isinstance(raw, dict):
        raise InputError(f"{name}: expected a dict of tensors, got {type(raw).__name__}")
    if "state_dict" in raw and isinstance(raw["state_dict"], dict):
        if config is None and "hyper_parameters" in raw:
            config = _find_model_config(_plain(raw["hyper_parameters"]))
        raw = raw["state_dict"]
    tensors = {}
    for k, v in raw.items():
        if not torch.is_tensor(v):
            raise InputError(f"{name}: entry {k!r} of the state dict is a {type(v).__name__}, not a tensor")
        tensors[str(k)] = v
    return tensors, config, name


# ---------------------------------------------------------------------------------------------------- config
_INT, _FLOAT, _BOOL = "int", "float", "bool"
# hyper-parameter name -> type; values of another type (e.g. unresolved "${...}" interpolations) are ignored
_TYPES = {
    "d_model": _INT, "n_layer": _INT, "d_inner": _INT, "vocab_size": _INT, "pad_vocab_size_multiple": _INT,
    "embed_dropout": _FLOAT, "resid_dropout": _FLOAT, "layer_norm_epsilon": _FLOAT, "max_length": _INT,
    "order": _INT, "filter_order": _INT, "emb_dim": _INT, "short_filter_order": _INT, "activation_freq": _FLOAT,
    "modulate": _BOOL, "shift": _FLOAT, "lr_pos_emb": _FLOAT, "num_inner_mlps": _INT, "fast_decay_pct": _FLOAT,
    "slow_decay_pct": _FLOAT, "target": _FLOAT, "modulation_lr": _FLOAT, "normalized": _BOOL, "use_bias": _BOOL,
    "dropout": _FLOAT, "filter_dropout": _FLOAT, "filter_lr": _FLOAT, "filter_wd": _FLOAT, "train_freq": _BOOL,
}
_ORIGINAL_LAYER_KEYS = {
    "l_max": "max_length", "order": "order", "filter_order": "filter_order", "emb_dim": "emb_dim",
    "short_filter_order": "short_filter_order", "local_order": "short_filter_order", "w": "activation_freq",
    "modulate": "modulate", "shift": "shift", "lr_pos_emb": "lr_pos_emb", "num_inner_mlps": "num_inner_mlps",
    "fast_decay_pct": "fast_decay_pct", "slow_decay_pct": "slow_decay_pct", "target": "target",
    "modulation_lr": "modulation_lr", "normalized": "normalized", "bias": "use_bias", "dropout": "dropout",
    "filter_dropout": "filter_dropout", "lr": "filter_lr", "wd": "filter_wd",
}
# the -hf config; its modelling code ignores ``use_bias`` (D is always applied), so that key is not read
_HF_KEYS = {
    "max_seq_len": "max_length", "hyena_order": "order", "filter_order": "filter_order", "emb_dim": "emb_dim",
    "short_filter_order": "short_filter_order", "activation_freq": "activation_freq",
    "num_inner_mlps": "num_inner_mlps", "train_freq": "train_freq", "hyena_dropout": "dropout",
    "hyena_filter_dropout": "filter_dropout",
}


def _typed(value: Any, kind: str) -> Any:
    if kind == _BOOL:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind == _INT:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _normalise_config(config: dict | None) -> dict:
    """Original (``layer: {...}``), Lightning hyper-parameter or ``-hf`` config -> flat dict of typed values."""
    if not config:
        return {}
    found: dict[str, Any] = {}
    for k in ("d_model", "n_layer", "d_inner", "vocab_size", "pad_vocab_size_multiple", "embed_dropout",
              "resid_dropout", "layer_norm_epsilon"):
        found[k] = config.get(k)
    layer = config.get("layer")
    if isinstance(layer, dict):  # the training code's hyper-parameters / the original config.json
        if layer.get("_name_", "hyena") != "hyena":
            raise InputError(f"config: layer type {layer.get('_name_')!r} is not a Hyena layer")
        for src, dst in _ORIGINAL_LAYER_KEYS.items():
            if layer.get(src) is not None:
                found[dst] = layer[src]
    else:
        for src, dst in _HF_KEYS.items():
            found[dst] = config.get(src)
    out = {}
    for k, v in found.items():
        if v is not None and (tv := _typed(v, _TYPES[k])) is not None:
            out[k] = tv
    return out


def _layout(prefix: str, config: dict | None) -> str:
    if prefix.startswith("model."):
        return "lightning"
    if prefix.startswith("hyena.") or (config is not None and ("max_seq_len" in config or "hyena_order" in config)):
        return "hf"
    return "standalone"


def _split_state(tensors: dict[str, torch.Tensor], name: str) -> tuple[str, dict, torch.Tensor | None, list[str]]:
    """(prefix, backbone tensors with keys from ``backbone.``, lm_head weight or None, ignored keys)."""
    prefixes = [k[: -len(_EMB_SUFFIX)] for k in tensors if k.endswith(_EMB_SUFFIX)]
    if not prefixes:
        raise InputError(f"{name}: no HyenaDNA backbone found (no key ending in {_EMB_SUFFIX!r})")
    if len(prefixes) > 1:
        raise InputError(f"{name}: several backbones in one checkpoint (prefixes {prefixes})")
    prefix = prefixes[0]
    # the head sits beside the backbone (``model.lm_head``) or one level up (-hf: ``hyena.backbone``, ``lm_head``)
    heads = [k for k in tensors if k.endswith("lm_head.weight") and prefix.startswith(k[: -len("lm_head.weight")])]
    head_key = max(heads, key=len) if heads else None
    head = tensors[head_key] if head_key else None
    backbone, ignored = {}, []
    for k, v in tensors.items():
        if k.startswith(prefix + "backbone."):
            key = k[len(prefix):]
            # gradient-checkpointed training wraps mixers/MLPs in a module with a ``.layer`` attribute
            key = key.replace(".mixer.layer.", ".mixer.").replace(".mlp.layer.", ".mlp.")
            backbone[key] = v
        elif k != head_key:
            ignored.append(k)
    return prefix, backbone, head, ignored


def _infer_config(bb: dict, head, hp: dict, layout: str, name: str) -> tuple[dict, list[str]]:
    """LMConfig fields from the tensors (checked against the config values ``hp``)."""
    emb = bb[_EMB_SUFFIX]
    rows, d_model = emb.shape
    layer_ids = sorted({int(m.group(1)) for k in bb if (m := _LAYER_RE.match(k))})
    if not layer_ids:
        raise InputError(f"{name}: the backbone has no layers")
    if layer_ids != list(range(len(layer_ids))):
        raise InputError(f"{name}: layer indices are not contiguous: {layer_ids}")
    n_layer = len(layer_ids)
    for i in layer_ids:
        if f"backbone.layers.{i}.mixer.Wqkv.weight" in bb:
            raise InputError(
                f"{name}: layer {i} is an attention layer (mixer.Wqkv); only all-Hyena HyenaDNA models can be imported"
            )
        if f"backbone.layers.{i}.mixer.in_proj.weight" not in bb:
            raise InputError(f"{name}: layer {i} has no Hyena mixer (backbone.layers.{i}.mixer.in_proj.weight)")
    m0 = "backbone.layers.0.mixer."
    width = bb[m0 + "in_proj.weight"].shape[0]
    if width % d_model:
        raise InputError(f"{name}: in_proj has {width} outputs, not a multiple of d_model={d_model}")
    order = width // d_model - 1
    short_k = bb[m0 + "short_filter.weight"].shape[-1]
    lin = sorted(
        int(k[len(m0 + "filter_fn.implicit_filter."):].split(".")[0])
        for k in bb
        if k.startswith(m0 + "filter_fn.implicit_filter.") and k.endswith(".weight") and bb[k].dim() == 2
    )
    if len(lin) < 2 or lin != list(range(0, 2 * len(lin), 2)):
        raise InputError(f"{name}: unexpected filter MLP layout (Linear layers at positions {lin})")
    first = bb[f"{m0}filter_fn.implicit_filter.{lin[0]}.weight"]
    filter_order, emb_dim = first.shape
    has_freq = any(k.startswith(m0 + "filter_fn.implicit_filter.") and k.endswith(".freq") for k in bb)
    z = bb.get(m0 + "filter_fn.pos_emb.z")
    if z is not None:
        max_length = z.shape[1]
        if hp.get("max_length") not in (None, max_length):
            raise InputError(
                f"{name}: config says l_max/max_seq_len={hp['max_length']} but the filter's positional features "
                f"(pos_emb.z) have {max_length} positions"
            )
    elif hp.get("max_length"):
        max_length = int(hp["max_length"])
    else:
        raise InputError(f"{name}: cannot tell the maximum length (no pos_emb.z and no config with l_max)")
    fc1 = bb.get("backbone.layers.0.mlp.fc1.weight")
    d_inner = fc1.shape[0] if fc1 is not None else 0
    for key, value in (("d_model", d_model), ("n_layer", n_layer), ("d_inner", d_inner), ("order", order),
                       ("filter_order", filter_order), ("emb_dim", emb_dim), ("short_filter_order", short_k)):
        if key == "d_inner" and fc1 is None:
            continue
        if key in hp and hp[key] != value:
            raise InputError(f"{name}: config says {key}={hp[key]} but the weights have {key}={value}")

    vocab = int(hp.get("vocab_size", min(12, rows)))
    if vocab > rows:
        raise InputError(f"{name}: config vocab_size={vocab} exceeds the {rows} embedding rows")
    mult = int(hp.get("pad_vocab_size_multiple", 1))
    if int(math.ceil(vocab / mult) * mult) != rows:
        mult = rows  # any multiple that rounds vocab up to exactly the stored rows
    tie = head is None or (head.shape == emb.shape and torch.equal(head, emb))

    hyena = {
        "order": order, "filter_order": filter_order, "emb_dim": emb_dim, "num_inner_mlps": len(lin) - 2,
        "short_filter_order": short_k, "train_freq": bool(hp.get("train_freq", has_freq)),
        "in_proj_bias": (m0 + "in_proj.bias") in bb, "shift": float(hp.get("shift", _DEFAULT_SHIFT[layout])),
    }
    for key in ("activation_freq", "modulate", "lr_pos_emb", "fast_decay_pct", "slow_decay_pct", "target",
                "modulation_lr", "normalized", "use_bias", "dropout", "filter_dropout", "filter_lr", "filter_wd"):
        if key in hp:
            hyena[key] = hp[key]
    cfg = {
        "mixer": "hyena", "d_model": d_model, "n_layer": n_layer, "vocab_size": vocab,
        "pad_vocab_size_multiple": mult, "mlp": "plain" if fc1 is not None else "none", "d_intermediate": d_inner,
        "norm": "layernorm", "norm_eps": float(hp.get("layer_norm_epsilon", 1e-5)), "max_length": max_length,
        "tie_embeddings": tie, "dropout": float(hp.get("resid_dropout", 0.0)),
        "embed_dropout": float(hp.get("embed_dropout", 0.0)), "hyena": hyena,
    }
    notes = []
    if head is not None and not tie:
        notes.append("lm_head differs from the embeddings: imported untied")
    return cfg, notes


def _merge_overrides(cfg: dict, overrides: dict | None) -> dict:
    if not overrides:
        return cfg
    out = dict(cfg)
    for k, v in overrides.items():
        if k == "hyena" and isinstance(v, dict):
            out["hyena"] = {**cfg.get("hyena", {}), **v}
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------- import
def import_hyenadna(
    ckpt_path_or_state_dict,
    out_dir: str | os.PathLike | None = None,
    config_overrides: dict | None = None,
    hyenadna_config: dict | str | os.PathLike | None = None,
):
    """Convert a HyenaDNA checkpoint into a dnalm model.

    Args:
        ckpt_path_or_state_dict: Lightning ``.ckpt``, ``-hf`` ``pytorch_model.bin`` / ``model.safetensors``, a
            directory holding one of them (and ``config.json``), or an in-memory state dict in any of the layouts.
        out_dir: if given, the model is also written there with ``save_pretrained`` (config.json,
            model.safetensors, tokenizer.json).
        config_overrides: LMConfig fields to change after inference (``"hyena"`` is merged key by key), e.g.
            ``{"hyena": {"shift": 0.05}}`` or ``{"dropout": 0.1}``; fields that change tensor shapes fail.
        hyenadna_config: the HyenaDNA config (dict or path to config.json) when it is not beside the checkpoint.

    Returns:
        A :class:`dnalm.models.lm.DNALM` in eval mode whose logits equal the published model's. Its
        ``import_info`` attribute records the layout, the source and the keys that were not imported.
    """
    from dnalm.models.lm import LMConfig, build_model

    tensors, config, name = read_hyenadna_checkpoint(ckpt_path_or_state_dict, hyenadna_config)
    prefix, bb, head, ignored = _split_state(tensors, name)
    layout = _layout(prefix, config)
    hp = _normalise_config(config)
    cfg_dict, notes = _infer_config(bb, head, hp, layout, name)
    cfg_dict = _merge_overrides(cfg_dict, config_overrides)
    cfg = LMConfig.from_dict(cfg_dict, source=f"{name} (imported config)")
    model = build_model(cfg)
    if model.config.padded_vocab_size != bb[_EMB_SUFFIX].shape[0]:
        raise InputError(
            f"{name}: the model has {model.config.padded_vocab_size} embedding rows but the checkpoint "
            f"{bb[_EMB_SUFFIX].shape[0]} (vocab_size / pad_vocab_size_multiple overrides?)"
        )

    target = model.state_dict()
    new_sd: dict[str, torch.Tensor] = {}
    used = set()
    for key, ref in target.items():
        if key == "lm_head.weight":
            if cfg.tie_embeddings:
                continue
            src = head if head is not None else bb[_EMB_SUFFIX]
        elif key in bb:
            src = bb[key]
            used.add(key)
        elif key.endswith(".freq"):
            src = _shared_freq(bb, key, cfg, name)
        else:
            raise InputError(f"{name}: checkpoint has no tensor for {key} (expected {prefix}{key})")
        if tuple(src.shape) != tuple(ref.shape):
            raise InputError(f"{name}: {prefix}{key} has shape {tuple(src.shape)}, the model expects {tuple(ref.shape)}")
        new_sd[key] = src.to(ref.dtype)
    extra = sorted(set(bb) - used - {k for k in bb if k.endswith(".freq")})
    if extra:
        raise InputError(
            f"{name}: backbone tensors that dnalm's Hyena model has no place for: {', '.join(extra[:8])}"
            + (" ..." if len(extra) > 8 else "")
        )
    missing, unexpected = model.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_embeddings)]
    if missing or unexpected:  # pragma: no cover - guarded by the loop above
        raise InputError(f"{name}: could not load {missing or unexpected}")
    model.eval()
    if ignored:
        warnings.warn(f"{name}: {len(ignored)} tensor(s) outside the language model were not imported: "
                      f"{', '.join(ignored[:8])}{' ...' if len(ignored) > 8 else ''}", stacklevel=2)
    model.import_info = {
        "source": name, "layout": layout, "ignored_keys": ignored, "notes": notes,
        "shift": cfg.hyena.shift, "config_from": "config" if config else "tensor shapes",
    }
    if out_dir is not None:
        model.save_pretrained(out_dir, extra={"imported_from": name, "hyenadna_layout": layout,
                                              "ignored_keys": ignored, "notes": notes})
    return model


def _shared_freq(bb: dict, key: str, cfg, name: str) -> torch.Tensor:
    """HyenaDNA shares one Sin module across the filter MLP; checkpoints saved with safetensors keep only one of
    its names. Use the same filter's stored frequency (or the configured constant for untrained frequencies)."""
    stem = key.rsplit(".implicit_filter.", 1)[0] + ".implicit_filter."
    for k in sorted(bb):
        if k.startswith(stem) and k.endswith(".freq"):
            return bb[k]
    if not cfg.hyena.train_freq:
        return torch.full((1, cfg.hyena.filter_order), float(cfg.hyena.activation_freq))
    raise InputError(f"{name}: no Sin frequency (implicit_filter.*.freq) stored for {stem[:-1]}")

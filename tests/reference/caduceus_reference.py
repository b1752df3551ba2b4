"""Test-only reference of the published Caduceus masked LM (pure PyTorch, no CUDA, no transformers, no dnalm).

Re-expressed from kuleshov-group/caduceus ``caduceus/modeling_caduceus.py`` (create_block, BiMambaWrapper,
CaduceusEmbeddings, CaduceusMixerModel, Caduceus, CaduceusForMaskedLM) and ``caduceus/modeling_rcps.py``
(RCPSEmbedding, RCPSWrapper, RCPSAddNormWrapper, RCPSMambaBlock, RCPSLMHead), with the same module tree and
parameter names, so a ``CaduceusForMaskedLM`` state dict loads here with ``strict=True``. The Triton fused
add+norm kernels (``rms_norm_fn`` / ``layer_norm_fn``) are replaced by :func:`fused_add_norm_fn`, their reference
semantics; both the fused and the unfused block paths are kept, exactly as published (the fused RCPS block reads
the second half for its forward stream). The Mamba mixer and mamba_ssm's Block come from
``mamba_ssm_reference.py`` beside this file.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import OrderedDict
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def _mamba_reference():
    name = "mamba_ssm_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "mamba_ssm_reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_ref = _mamba_reference()
Mamba, RMSNorm = _ref.Mamba, _ref.RMSNorm


def fused_add_norm_fn(x, weight, bias, eps, residual=None, prenorm=False, residual_in_fp32=False, is_rms=True):
    """Reference semantics of mamba_ssm's rms_norm_fn / layer_norm_fn (dropout 0)."""
    if residual is not None:
        x = x + residual
    residual_out = x.float() if residual_in_fp32 else x
    xf = x.float() if x.dtype != torch.float64 else x
    if is_rms:
        out = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps) * weight
    else:
        out = F.layer_norm(xf, (xf.shape[-1],), weight, bias, eps)
    out = out.to(x.dtype)
    return (out, residual_out) if prenorm else out


def _norm_fn(norm):
    is_rms = isinstance(norm, RMSNorm)
    return partial(fused_add_norm_fn, is_rms=is_rms)


class CaduceusConfig:
    """configuration_caduceus.CaduceusConfig without the PretrainedConfig base."""

    def __init__(self, d_model=2560, n_layer=64, vocab_size=50277, ssm_cfg=None, rms_norm=True, residual_in_fp32=True,
                 fused_add_norm=True, pad_vocab_size_multiple=8, norm_epsilon=1e-5, initializer_cfg=None,
                 bidirectional=True, bidirectional_strategy="add", bidirectional_weight_tie=True, rcps=False,
                 gradient_checkpointing_stride=1, complement_map=None, **kwargs):
        self.d_model, self.n_layer, self.vocab_size, self.ssm_cfg = d_model, n_layer, vocab_size, ssm_cfg
        self.rms_norm, self.residual_in_fp32, self.fused_add_norm = rms_norm, residual_in_fp32, fused_add_norm
        self.pad_vocab_size_multiple, self.norm_epsilon = pad_vocab_size_multiple, norm_epsilon
        self.initializer_cfg, self.bidirectional = initializer_cfg, bidirectional
        self.bidirectional_strategy, self.bidirectional_weight_tie = bidirectional_strategy, bidirectional_weight_tie
        self.rcps, self.complement_map = rcps, complement_map


# ------------------------------------------------------------------------------------------------ modeling_rcps


class RCPSEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, complement_map, **factory_kwargs):
        super().__init__()
        self.register_buffer("complement_map",
                             torch.tensor(list(OrderedDict(complement_map).values()), dtype=torch.long))
        self.embedding = nn.Embedding(vocab_size, d_model, **factory_kwargs)

    @property
    def weight(self):
        return self.embedding.weight

    def rc(self, x):
        return torch.gather(self.complement_map.unsqueeze(0).expand(x.shape[0], -1), dim=1,
                            index=torch.flip(x, dims=[-1]))

    def forward(self, input_ids):
        fwd_out = self.embedding(input_ids)
        rc_out = torch.flip(self.embedding(self.rc(input_ids)), dims=[-2, -1])
        return torch.cat([fwd_out, rc_out], dim=-1)


class RCPSWrapper(nn.Module):
    def __init__(self, submodule):
        super().__init__()
        self.submodule = submodule

    @staticmethod
    def rc(x):
        return torch.flip(x, dims=[-2, -1])

    def forward(self, x, **kwargs):
        n_channels = x.shape[-1]
        fwd_out = self.submodule(x[..., : n_channels // 2], **kwargs)
        rc_out = self.submodule(self.rc(x[..., n_channels // 2 :]), **kwargs)
        return torch.cat([fwd_out, self.rc(rc_out)], dim=-1)


class RCPSAddNormWrapper(RCPSWrapper):
    def forward(self, x, residual=None, prenorm=False):
        n_channels = x.shape[-1]
        if residual is None:
            residual = x
            x_fwd = self.submodule(x[..., : n_channels // 2].to(dtype=self.submodule.weight.dtype))
            x_rc = self.submodule(self.rc(x[..., n_channels // 2 :]).to(dtype=self.submodule.weight.dtype))
            x = torch.cat([x_fwd, self.rc(x_rc)], dim=-1)
        else:
            residual_fwd = x[..., : n_channels // 2] + residual[..., : n_channels // 2]
            x_fwd = self.submodule(residual_fwd.to(dtype=self.submodule.weight.dtype))
            residual_rc = self.rc(x[..., n_channels // 2 :]) + self.rc(residual[..., n_channels // 2 :])
            x_rc = self.submodule(residual_rc.to(dtype=self.submodule.weight.dtype))
            residual = torch.cat([residual_fwd, self.rc(residual_rc)], dim=-1)
            x = torch.cat([x_fwd, self.rc(x_rc)], dim=-1)
        return x if not prenorm else (x, residual)


class RCPSMambaBlock(nn.Module):
    def __init__(self, dim, mixer_cls, norm_cls=nn.LayerNorm, fused_add_norm=False, residual_in_fp32=False,
                 device=None, dtype=None):
        super().__init__()
        self.residual_in_fp32, self.fused_add_norm = residual_in_fp32, fused_add_norm
        self.mixer = RCPSWrapper(mixer_cls(dim))
        norm_f = norm_cls(dim)
        self.norm = norm_f if fused_add_norm else RCPSAddNormWrapper(norm_f)

    def forward(self, hidden_states, residual=None, inference_params=None):
        if not self.fused_add_norm:
            hidden_states, residual = self.norm(hidden_states, residual=residual, prenorm=True)
            if self.residual_in_fp32:
                residual = residual.to(torch.float32)
        else:
            fn = _norm_fn(self.norm)
            half = hidden_states.shape[-1] // 2
            hidden_states_fwd, residual_fwd = fn(
                hidden_states[..., half:], self.norm.weight, self.norm.bias,
                residual=residual[..., half:] if residual is not None else None, prenorm=True,
                residual_in_fp32=self.residual_in_fp32, eps=self.norm.eps)
            hidden_states_rc, residual_rc = fn(
                hidden_states[..., :half].flip(dims=[-2, -1]), self.norm.weight, self.norm.bias,
                residual=residual[..., :half].flip(dims=[-2, -1]) if residual is not None else None, prenorm=True,
                residual_in_fp32=self.residual_in_fp32, eps=self.norm.eps)
            hidden_states = torch.cat([hidden_states_fwd, hidden_states_rc.flip(dims=[-2, -1])], dim=-1)
            residual = torch.cat([residual_fwd, residual_rc.flip(dims=[-2, -1])], dim=-1)
        hidden_states = self.mixer(hidden_states, inference_params=inference_params)
        return hidden_states, residual


class RCPSLMHead(nn.Module):
    def __init__(self, true_dim, vocab_size, complement_map, **factory_kwargs):
        super().__init__()
        self.register_buffer("complement_map",
                             torch.tensor(list(OrderedDict(complement_map).values()), dtype=torch.long))
        self.true_dim = true_dim
        self.lm_head = nn.Linear(true_dim, vocab_size, bias=False, **factory_kwargs)

    @property
    def weight(self):
        return self.lm_head.weight

    def set_weight(self, value):
        self.lm_head.weight = value

    def forward(self, x):
        n_channels = x.shape[-1]
        fwd_logits = F.linear(x[..., : n_channels // 2], self.weight, bias=self.lm_head.bias)
        rc_logits = F.linear(torch.flip(x[..., n_channels // 2 :], dims=[-1]), self.weight[self.complement_map, :],
                             bias=self.lm_head.bias)
        return fwd_logits + rc_logits


# ------------------------------------------------------------------------------------------------ modeling_caduceus


class Block(nn.Module):
    """mamba_ssm Block (no MLP), with the fused path through fused_add_norm_fn."""

    def __init__(self, dim, mixer_cls, norm_cls=nn.LayerNorm, fused_add_norm=False, residual_in_fp32=False):
        super().__init__()
        self.residual_in_fp32, self.fused_add_norm = residual_in_fp32, fused_add_norm
        self.mixer = mixer_cls(dim)
        self.norm = norm_cls(dim)

    def forward(self, hidden_states, residual=None, inference_params=None):
        if not self.fused_add_norm:
            residual = (hidden_states + residual) if residual is not None else hidden_states
            hidden_states = self.norm(residual.to(dtype=self.norm.weight.dtype))
            if self.residual_in_fp32:
                residual = residual.to(torch.float32)
        else:
            hidden_states, residual = _norm_fn(self.norm)(
                hidden_states, self.norm.weight, self.norm.bias, residual=residual, prenorm=True,
                residual_in_fp32=self.residual_in_fp32, eps=self.norm.eps)
        hidden_states = self.mixer(hidden_states, inference_params=inference_params)
        return hidden_states, residual


class BiMambaWrapper(nn.Module):
    def __init__(self, d_model, bidirectional=True, bidirectional_strategy="add", bidirectional_weight_tie=True,
                 **mamba_kwargs):
        super().__init__()
        self.bidirectional, self.bidirectional_strategy = bidirectional, bidirectional_strategy
        self.mamba_fwd = Mamba(d_model=d_model, **mamba_kwargs)
        if bidirectional:
            self.mamba_rev = Mamba(d_model=d_model, **mamba_kwargs)
            if bidirectional_weight_tie:
                self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
                self.mamba_rev.in_proj.bias = self.mamba_fwd.in_proj.bias
                self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight
                self.mamba_rev.out_proj.bias = self.mamba_fwd.out_proj.bias
        else:
            self.mamba_rev = None

    def forward(self, hidden_states, inference_params=None):
        out = self.mamba_fwd(hidden_states, inference_params=inference_params)
        if self.bidirectional:
            out_rev = self.mamba_rev(hidden_states.flip(dims=(1,)), inference_params=inference_params).flip(dims=(1,))
            if self.bidirectional_strategy == "add":
                out = out + out_rev
            elif self.bidirectional_strategy == "ew_multiply":
                out = out * out_rev
        return out


def create_block(d_model, ssm_cfg=None, norm_epsilon=1e-5, rms_norm=False, residual_in_fp32=False,
                 fused_add_norm=False, layer_idx=None, bidirectional=True, bidirectional_strategy="add",
                 bidirectional_weight_tie=True, rcps=False, device=None, dtype=None):
    if ssm_cfg is None:
        ssm_cfg = {}
    factory_kwargs = {"device": device, "dtype": dtype}
    bidirectional_kwargs = {"bidirectional": bidirectional, "bidirectional_strategy": bidirectional_strategy,
                            "bidirectional_weight_tie": bidirectional_weight_tie}
    mixer_cls = partial(BiMambaWrapper, layer_idx=layer_idx, **ssm_cfg, **bidirectional_kwargs, **factory_kwargs)
    norm_cls = partial(nn.LayerNorm if not rms_norm else RMSNorm, eps=norm_epsilon, **factory_kwargs)
    block_cls = RCPSMambaBlock if rcps else Block
    block = block_cls(d_model, mixer_cls, norm_cls=norm_cls, fused_add_norm=fused_add_norm,
                      residual_in_fp32=residual_in_fp32)
    block.layer_idx = layer_idx
    return block


class CaduceusEmbeddings(nn.Module):
    def __init__(self, config, device=None, dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if config.rcps:
            self.word_embeddings = RCPSEmbedding(config.vocab_size, config.d_model, config.complement_map,
                                                 **factory_kwargs)
        else:
            self.word_embeddings = nn.Embedding(config.vocab_size, config.d_model, **factory_kwargs)

    def forward(self, input_ids):
        return self.word_embeddings(input_ids)


class CaduceusMixerModel(nn.Module):
    def __init__(self, config, device=None, dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.fused_add_norm, self.rcps, self.residual_in_fp32 = (config.fused_add_norm, config.rcps,
                                                                 config.residual_in_fp32)
        self.embeddings = CaduceusEmbeddings(config, **factory_kwargs)
        self.layers = nn.ModuleList([
            create_block(config.d_model, ssm_cfg=config.ssm_cfg, norm_epsilon=config.norm_epsilon,
                         rms_norm=config.rms_norm, residual_in_fp32=config.residual_in_fp32,
                         fused_add_norm=config.fused_add_norm, layer_idx=i, bidirectional=config.bidirectional,
                         bidirectional_strategy=config.bidirectional_strategy,
                         bidirectional_weight_tie=config.bidirectional_weight_tie, rcps=config.rcps,
                         **factory_kwargs)
            for i in range(config.n_layer)
        ])
        norm_f = (nn.LayerNorm if not config.rms_norm else RMSNorm)(config.d_model, eps=config.norm_epsilon,
                                                                    **factory_kwargs)
        self.norm_f = norm_f if (config.fused_add_norm or not config.rcps) else RCPSAddNormWrapper(norm_f)

    def forward(self, input_ids, inputs_embeds=None, output_hidden_states=False):
        hidden_states = inputs_embeds if inputs_embeds is not None else self.embeddings(input_ids)
        residual = None
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, residual, inference_params=None)
        if not self.fused_add_norm:
            if self.rcps:
                hidden_states = self.norm_f(hidden_states, residual=residual, prenorm=False)
            else:
                residual = (hidden_states + residual) if residual is not None else hidden_states
                hidden_states = self.norm_f(residual.to(dtype=self.norm_f.weight.dtype))
        else:
            fn = _norm_fn(self.norm_f)
            if self.rcps:
                half = hidden_states.shape[-1] // 2
                hidden_states_fwd = fn(hidden_states[..., :half], self.norm_f.weight, self.norm_f.bias,
                                       eps=self.norm_f.eps, residual=residual[..., :half], prenorm=False,
                                       residual_in_fp32=self.residual_in_fp32)
                hidden_states_rc = fn(hidden_states[..., half:].flip(dims=[-2, -1]), self.norm_f.weight,
                                      self.norm_f.bias, eps=self.norm_f.eps,
                                      residual=residual[..., half:].flip(dims=[-2, -1]), prenorm=False,
                                      residual_in_fp32=self.residual_in_fp32)
                hidden_states = torch.cat([hidden_states_fwd, hidden_states_rc.flip(dims=[-2, -1])], dim=-1)
            else:
                hidden_states = fn(hidden_states, self.norm_f.weight, self.norm_f.bias, eps=self.norm_f.eps,
                                   residual=residual, prenorm=False, residual_in_fp32=self.residual_in_fp32)
        return hidden_states


class Caduceus(nn.Module):
    def __init__(self, config, device=None, dtype=None):
        super().__init__()
        if config.vocab_size % config.pad_vocab_size_multiple != 0:
            config.vocab_size += config.pad_vocab_size_multiple - (config.vocab_size % config.pad_vocab_size_multiple)
        if config.complement_map is not None and config.vocab_size > len(config.complement_map):
            for i in range(len(config.complement_map), config.vocab_size):
                config.complement_map[i] = i
        self.config = config
        self.backbone = CaduceusMixerModel(config, device=device, dtype=dtype)

    def forward(self, input_ids):
        return self.backbone(input_ids)


class CaduceusForMaskedLM(nn.Module):
    """Returns (logits, last hidden state); lm_head tied to the input embedding (HF tie_weights)."""

    def __init__(self, config, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.caduceus = Caduceus(config, device=device, dtype=dtype)
        if config.rcps:
            self.lm_head = RCPSLMHead(complement_map=config.complement_map, vocab_size=config.vocab_size,
                                      true_dim=config.d_model, dtype=dtype)
            self.lm_head.set_weight(self.caduceus.backbone.embeddings.word_embeddings.weight)
        else:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False, device=device, dtype=dtype)
            self.lm_head.weight = self.caduceus.backbone.embeddings.word_embeddings.weight

    def forward(self, input_ids):
        hidden_states = self.caduceus(input_ids)
        return self.lm_head(hidden_states).float(), hidden_states

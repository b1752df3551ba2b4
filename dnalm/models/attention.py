"""Causal grouped-query attention through ``scaled_dot_product_attention`` with a KV cache.

Full-sequence calls use SDPA with ``is_causal=True`` (PyTorch's flash / memory-efficient kernels on CPU and
CUDA, so no (L x L) tensor is built); flash-attn is used when installed and the tensors are CUDA half precision.
Continuations from a cache attend to the cached keys with an explicit (T x S) mask, built per block of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError
from dnalm.models.cache import MixerState

try:  # optional CUDA kernel
    from flash_attn import flash_attn_func  # type: ignore
except Exception:  # pragma: no cover - not installable without CUDA
    flash_attn_func = None


@dataclass
class AttentionConfig:
    """Attention mixer settings."""

    n_heads: int = 4  # query heads
    n_kv_heads: int | None = None  # key/value heads (grouped-query attention); None = n_heads
    rotary: bool = False  # rotary position embedding (off for HybriDNA, which has no positional embedding)
    rope_theta: float = 10000.0  # rotary base
    bias: bool = False  # bias in the projections
    query_block: int = 1024  # queries per block when attending from a cache with an explicit mask
    use_flash_attn: bool = True  # use flash-attn on CUDA when installed
    # mamba_ssm MHA options (defaults keep the plain layout): imported hybrids set them
    head_dim: int | None = None  # channels per head; None = d_model / n_heads
    qkv_bias: bool | None = None  # bias of in_proj; None = `bias`
    out_bias: bool | None = None  # bias of out_proj; None = `bias`
    rotary_dim: int = 0  # with rotary: rotate only the first rotary_dim channels of a head (0 = all)
    d_conv: int = 0  # > 0: causal depthwise conv (with bias, no activation) over q, k, v before attending
    softmax_scale: float | None = None  # None = 1 / sqrt(head_dim)


@dataclass(kw_only=True)
class AttentionState(MixerState):
    """KV cache of one attention layer."""

    k: torch.Tensor  # (B, n_kv_heads, max_length, head_dim) keys of positions 0..pos-1
    v: torch.Tensor  # (B, n_kv_heads, max_length, head_dim) values
    conv_state: torch.Tensor | None = None  # (B, d_conv - 1, qkv_dim) last conv inputs, oldest first (d_conv > 0)


def _rotary(x: torch.Tensor, pos0: int, theta: float, dim: int = 0) -> torch.Tensor:
    """Rotate the first ``dim`` channels (0 = all) of ``x`` (B, H, T, hd) by positions pos0 .. pos0+T-1
    (rotate-half convention, as flash-attn's non-interleaved rotary)."""
    if 0 < dim < x.shape[-1]:
        return torch.cat([_rotary(x[..., :dim], pos0, theta), x[..., dim:]], -1)
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd))
    t = torch.arange(pos0, pos0 + x.shape[-2], device=x.device, dtype=torch.float32)
    freqs = torch.outer(t, inv)  # (T, hd/2)
    cos = torch.cat([freqs.cos(), freqs.cos()], -1).to(x.dtype)
    sin = torch.cat([freqs.sin(), freqs.sin()], -1).to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    """Causal multi-head / grouped-query self-attention with an optional KV cache."""

    def __init__(self, d_model: int, layer_idx: int = 0, config: AttentionConfig | None = None):
        super().__init__()
        cfg = config or AttentionConfig()
        self.config = cfg
        self.layer_idx = layer_idx
        self.n_heads = cfg.n_heads
        self.n_kv = cfg.n_kv_heads or cfg.n_heads
        if d_model % self.n_heads and cfg.head_dim is None:
            raise ConfigError(f"attention: d_model={d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv:
            raise ConfigError(f"attention: n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv}")
        self.head_dim = cfg.head_dim or d_model // self.n_heads
        qkv_dim = (self.n_heads + 2 * self.n_kv) * self.head_dim
        self.in_proj = nn.Linear(d_model, qkv_dim, bias=cfg.bias if cfg.qkv_bias is None else cfg.qkv_bias)
        if cfg.d_conv > 0:
            self.conv1d = nn.Conv1d(qkv_dim, qkv_dim, kernel_size=cfg.d_conv, padding=cfg.d_conv - 1, groups=qkv_dim)
        out_bias = cfg.bias if cfg.out_bias is None else cfg.out_bias
        self.out_proj = nn.Linear(self.n_heads * self.head_dim, d_model, bias=out_bias)

    def allocate_state(self, batch_size: int, max_length: int, device=None, dtype=None) -> AttentionState:
        """Empty KV cache for ``max_length`` positions (device and dtype default to the parameters')."""
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        device = self.in_proj.weight.device if device is None else device
        shape = (batch_size, self.n_kv, max_length, self.head_dim)
        conv = None
        if self.config.d_conv > 0:
            qkv_dim = self.in_proj.out_features
            conv = torch.zeros(batch_size, self.config.d_conv - 1, qkv_dim, device=device, dtype=dtype)
        return AttentionState(
            k=torch.zeros(shape, device=device, dtype=dtype), v=torch.zeros(shape, device=device, dtype=dtype),
            conv_state=conv,
        )

    def forward(self, x: torch.Tensor, state: AttentionState | None = None) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model); with ``state`` x continues the cached sequence."""
        B, T, _ = x.shape
        qkv = self.in_proj(x)
        if self.config.d_conv > 0:
            qkv = self._conv(qkv, state)
        q, k, v = qkv.split([self.n_heads * self.head_dim, self.n_kv * self.head_dim, self.n_kv * self.head_dim], -1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = v.view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        pos0 = 0 if state is None else state.pos
        if self.config.rotary:
            q = _rotary(q, pos0, self.config.rope_theta, self.config.rotary_dim)
            k = _rotary(k, pos0, self.config.rope_theta, self.config.rotary_dim)
        gqa = self.n_kv != self.n_heads
        if state is None:
            y = self._full(q, k, v, gqa)
        else:
            end = pos0 + T
            if end > state.k.shape[2]:
                raise ValueError(f"KV cache holds {state.k.shape[2]} positions; asked for {end}")
            state.k[:, :, pos0:end] = k.to(state.k.dtype)
            state.v[:, :, pos0:end] = v.to(state.v.dtype)
            state.pos = end
            keys = state.k[:, :, :end].to(q.dtype)
            vals = state.v[:, :, :end].to(q.dtype)
            if T == 1:
                y = F.scaled_dot_product_attention(q, keys, vals, enable_gqa=gqa, scale=self.config.softmax_scale)
            else:
                y = self._with_offset(q, keys, vals, pos0, gqa)
        y = y.transpose(1, 2).reshape(B, T, -1)  # (B, T, H*hd)
        return self.out_proj(y)

    def _conv(self, qkv: torch.Tensor, state: AttentionState | None) -> torch.Tensor:
        """Causal depthwise conv over (B, T, qkv_dim), continuing from ``state.conv_state`` if given."""
        T = qkv.shape[1]
        if state is None:
            return self.conv1d(qkv.transpose(1, 2))[..., :T].transpose(1, 2)
        u = torch.cat([state.conv_state.to(qkv.dtype), qkv], dim=1)  # (B, d_conv - 1 + T, qkv_dim)
        state.conv_state = u[:, u.shape[1] - (self.config.d_conv - 1) :].to(state.conv_state.dtype)
        w = self.conv1d.weight.to(qkv.dtype)
        return F.conv1d(u.transpose(1, 2), w, self.conv1d.bias, groups=w.shape[0]).transpose(1, 2)

    def _full(self, q, k, v, gqa: bool) -> torch.Tensor:
        if (
            flash_attn_func is not None
            and self.config.use_flash_attn
            and q.is_cuda
            and q.dtype in (torch.float16, torch.bfloat16)
        ):
            # flash-attn wants (B, T, H, hd) and handles GQA itself
            y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True,
                                softmax_scale=self.config.softmax_scale)
            return y.transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa, scale=self.config.softmax_scale)

    def _with_offset(self, q, keys, vals, pos0: int, gqa: bool) -> torch.Tensor:
        """Queries at positions pos0.. attend to keys 0..pos0+T-1, one block of queries at a time."""
        T, S = q.shape[2], keys.shape[2]
        out = []
        kpos = torch.arange(S, device=q.device)
        for s in range(0, T, self.config.query_block):
            e = min(T, s + self.config.query_block)
            qpos = torch.arange(pos0 + s, pos0 + e, device=q.device)
            stop = pos0 + e
            mask = kpos[None, :stop] <= qpos[:, None]  # (Tb, stop) True = attend
            out.append(
                F.scaled_dot_product_attention(
                    q[:, :, s:e], keys[:, :, :stop], vals[:, :, :stop], attn_mask=mask, enable_gqa=gqa,
                    scale=self.config.softmax_scale,
                )
            )
        return torch.cat(out, dim=2)

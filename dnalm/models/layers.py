"""Building blocks shared by the LM stack: norms, MLPs and the short causal depthwise convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (computed in float32 at least)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        cdt = torch.promote_types(dtype, torch.float32)  # float32 at least; float64 stays float64
        x = x.to(cdt)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.to(cdt)).to(dtype)


def make_norm(kind: str, dim: int, eps: float) -> nn.Module:
    """``"rmsnorm"`` or ``"layernorm"``."""
    if kind == "rmsnorm":
        return RMSNorm(dim, eps)
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    raise ConfigError(f"unknown norm {kind!r} (expected 'rmsnorm' or 'layernorm')")


class Mlp(nn.Module):
    """Plain MLP as in HyenaDNA: fc1 -> GELU -> fc2."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class GatedMlp(nn.Module):
    """Gated MLP as in mamba_ssm's GatedMLP (SwiGLU): fc1 -> (y, gate), y * silu(gate) -> fc2."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_hidden, bias=False)
        self.fc2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * F.silu(gate))


def causal_depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    """Short causal depthwise convolution in the (batch, length, channels) layout, without a padded copy.

    ``out[t] = bias + sum_i weight[:, i] * x[t - (K-1) + i]``, the inputs before the first position being
    ``prefix`` (the previous K-1 inputs, oldest first) or zeros. Equal to ``nn.Conv1d(C, C, K, groups=C,
    padding=K-1)`` on the transposed input, cut to the first T outputs; written as K shifted multiply-adds because
    that is several times faster than a depthwise ``F.conv1d`` on CPU at long lengths and needs no transpose.
    Computed in the promoted dtype of ``x`` and ``weight``.

    Args:
        x: (B, T, C) input.
        weight: (C, K) taps, the newest input's tap last.
        bias: (C,) or None.
        prefix: (B, K-1, C) inputs before ``x``, or None for zeros.

    Returns:
        (B, T, C) output in the promoted dtype.
    """
    length, k = x.shape[1], weight.shape[1]
    cdt = torch.promote_types(x.dtype, weight.dtype)
    w = weight.to(cdt)
    out = x.to(cdt) * w[:, k - 1]
    # in place is autograd-safe: mul/addcmul backward never reads `out`
    for i in range(k - 1):
        shift = k - 1 - i
        if shift < length:
            out[:, shift:].addcmul_(x[:, : length - shift].to(cdt), w[:, i])
        if prefix is not None:
            n = min(shift, length)
            out[:, :n].addcmul_(prefix[:, i : i + n].to(cdt), w[:, i])
    if bias is not None:
        out.add_(bias.to(cdt))
    return out

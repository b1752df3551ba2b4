"""Building blocks shared by the LM stack: norms and MLPs."""

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

"""Building blocks shared by the LM stack: norms, MLPs and the short causal depthwise convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError

# Rows (batch x positions) per block of the no-autograd MLP: its hidden activations (rows x d_hidden) stay a few MB,
# in cache and reused, instead of one (B, L, d_hidden) tensor per call (at 32k tokens x 1024: 134 MB allocated and
# page-faulted twice per layer, measured to cost as much as the GELU itself).
MLP_BLOCK_ROWS = 2048


def blockwise_rows(x: torch.Tensor, fn, d_out: int, rows: int | None = None) -> torch.Tensor:
    """``fn`` (a position-wise map of (n, d_in) rows to (n, d_out)) applied to blocks of ``rows`` rows of ``x``
    (..., d_in), the results written into one (..., d_out) tensor. For no-autograd inference only."""
    rows = rows or MLP_BLOCK_ROWS
    flat = x.reshape(-1, x.shape[-1])
    out = flat.new_empty(flat.shape[0], d_out)
    for s in range(0, flat.shape[0], rows):
        out[s : s + rows] = fn(flat[s : s + rows])
    return out.reshape(*x.shape[:-1], d_out)


def _blockwise(x: torch.Tensor) -> bool:
    """Run a position-wise module in row blocks: on a CPU (a GPU's caching allocator makes large temporaries
    cheap), without autograd, more rows than one block."""
    return not torch.is_grad_enabled() and x.device.type == "cpu" and x.numel() > MLP_BLOCK_ROWS * x.shape[-1]


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
        if _blockwise(x):
            return blockwise_rows(x, self._mlp, self.fc2.out_features)
        return self._mlp(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        # HyenaDNA's MLP activation is GELU's tanh form (flash_attn's Mlp with approximate="tanh")
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class GatedMlp(nn.Module):
    """Gated MLP as in mamba_ssm's GatedMLP (SwiGLU): fc1 -> (y, gate), y * silu(gate) -> fc2."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_hidden, bias=False)
        self.fc2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _blockwise(x):
            return blockwise_rows(x, self._mlp, self.fc2.out_features)
        return self._mlp(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        y, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(y * F.silu(gate))


class _CausalDepthwiseConv(torch.autograd.Function):
    """Autograd of :func:`causal_depthwise_conv` written out: K shifted multiply-adds each way, instead of the
    copy-and-zero backward that autograd builds for in-place updates of slices."""

    @staticmethod
    def forward(ctx, x, weight, bias, prefix):
        ctx.save_for_backward(x, weight, prefix)
        ctx.has_bias = bias is not None
        return _conv_forward(x, weight, bias, prefix)

    @staticmethod
    def backward(ctx, g):
        x, weight, prefix = ctx.saved_tensors
        length, k = x.shape[1], weight.shape[1]
        w = weight.to(g.dtype)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # dx[s] = sum_i w[:, i] g[s + (k-1-i)]
            dx = g * w[:, k - 1]
            for i in range(k - 1):
                shift = k - 1 - i
                if shift < length:
                    dx[:, : length - shift].addcmul_(g[:, shift:], w[:, i])
            dx = dx.to(x.dtype)
        if ctx.needs_input_grad[1]:  # dw[:, i] = sum_{b,t} g[t] x[t - (k-1-i)]
            xc = x.to(g.dtype)
            cols = []
            for i in range(k):
                shift = k - 1 - i
                col = (g[:, shift:] * xc[:, : length - shift]).sum((0, 1)) if shift < length else g.new_zeros(g.shape[-1])
                if prefix is not None and shift:
                    n = min(shift, length)
                    col = col + (g[:, :n] * prefix[:, i : i + n].to(g.dtype)).sum((0, 1))
                cols.append(col)
            dw = torch.stack(cols, dim=1).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g.sum((0, 1))
        return dx, dw, db, None


def _conv_forward(x, weight, bias, prefix):
    length, k = x.shape[1], weight.shape[1]
    cdt = torch.promote_types(x.dtype, weight.dtype)
    w = weight.to(cdt)
    out = x.to(cdt) * w[:, k - 1]
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
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if needs_grad and (prefix is None or not prefix.requires_grad):
        return _CausalDepthwiseConv.apply(x, weight, bias, prefix)
    return _conv_forward(x, weight, bias, prefix)  # no autograd, or gradients into the prefix: plain autograd

"""Building blocks shared by the LM stack: norms, MLPs and the short causal depthwise convolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError

# Rows (batch x positions) per block of the no-autograd MLP: its hidden activations (rows x d_hidden) stay a few MB,
# in cache and reused, instead of one (B, L, d_hidden) tensor per call (at 32k tokens x 1024: 134 MB allocated and
# page-faulted twice per layer, measured to cost as much as the GELU itself).
MLP_BLOCK_ROWS = 2048
# Rows per block of the plain MLP's autograd path on a CPU (:class:`_BlockedMlp`). glibc serves allocations of 32 MiB
# and more by a fresh mmap each time, so every (8192, 1024) float32 activation of a whole-tensor MLP step is
# page-faulted anew (measured: 29 ms to allocate and fill 32 MiB, 4 ms to fill it again); blocks of 2048 rows stay
# under that size and are reused (512 rows measured 1.16x faster than the whole-tensor step at 8192 x 256 -> 1024,
# 2048 rows 1.02x).
MLP_TRAIN_BLOCK_ROWS = 512


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
        if _blocked_autograd(x, self.fc1, self.fc2):
            return _BlockedMlp.apply(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias,
                                     MLP_TRAIN_BLOCK_ROWS)
        return self._mlp(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The reference path (plain autograd over whole tensors)."""
        # HyenaDNA's MLP activation is GELU's tanh form (flash_attn's Mlp with approximate="tanh")
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def _blocked_autograd(x: torch.Tensor, fc1: nn.Linear, fc2: nn.Linear) -> bool:
    """Use :class:`_BlockedMlp`: autograd on, a CPU, no autocast, one dtype, more rows than one block."""
    tensors = (x, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
    return (torch.is_grad_enabled() and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
            and all(t is None or t.dtype == x.dtype for t in tensors)
            and any(t is not None and t.requires_grad for t in tensors)
            and x.numel() > MLP_TRAIN_BLOCK_ROWS * x.shape[-1])


# tanh-GELU's constants: gelu(h) = h/2 (1 + tanh(C (h + A h^3))) = h sigmoid(2 C (h + A h^3))
_GELU_C, _GELU_A = math.sqrt(2 / math.pi), 0.044715


def _gelu_gate(h: torch.Tensor) -> torch.Tensor:
    """``s = sigmoid(2C (h + A h^3))``, so that tanh-GELU is ``h * s`` (the identity (1 + tanh z)/2 = sigmoid 2z;
    torch's tanh was measured 3.6x slower than its sigmoid on this CPU, and its tanh-GELU 2.6x slower than this)."""
    two_c = torch.tensor(2 * _GELU_C, dtype=h.dtype)
    return torch.addcmul(two_c, h, h, value=2 * _GELU_C * _GELU_A).mul_(h).sigmoid_()  # three passes over h


class _BlockedMlp(torch.autograd.Function):
    """``fc2(gelu_tanh(fc1(x)))`` over blocks of rows, forward and backward.

    Notation: x (N, d) rows, h = x W1^T + b1 (N, hidden), s = sigmoid(2C (h + A h^3)) (:func:`_gelu_gate`),
    a = gelu_tanh(h) = h s, y = a W2^T + b2. The blocks of h and s are kept for the backward, which accumulates
    ``dW2 += dy^T a``, ``da = dy W2``, ``dh = da * gelu'(h)`` with ``gelu'(h) = s + h s (1 - s) 2C (1 + 3A h^2)``,
    ``dW1 += dh^T x``, ``dx = dh W1`` block by block, so no temporary is larger than a block (see
    :data:`MLP_TRAIN_BLOCK_ROWS`). The reference is :meth:`Mlp._mlp` under plain autograd (agreement test in
    ``tests/test_models_layers.py``).
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, rows):  # x (..., d), w1 (hidden, d), w2 (d_out, hidden)
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        out = flat.new_empty(flat.shape[0], w2.shape[0])  # (N, d_out)
        saved = []
        for s in range(0, flat.shape[0], rows):
            h = F.linear(flat[s : s + rows], w1, b1)  # (n, hidden)
            gate = _gelu_gate(h)
            saved += [h, gate]
            a = h * gate
            if b2 is None:
                torch.mm(a, w2.t(), out=out[s : s + rows])
            else:
                torch.addmm(b2, a, w2.t(), out=out[s : s + rows])
        ctx.save_for_backward(flat, w1, w2, *saved)
        ctx.rows, ctx.has_b1, ctx.has_b2 = rows, b1 is not None, b2 is not None
        return out.view(*x.shape[:-1], w2.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        flat, w1, w2, *saved = ctx.saved_tensors
        rows = ctx.rows
        gflat = g.reshape(-1, g.shape[-1])  # (N, d_out)
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad[:5]
        dx = torch.empty_like(flat) if need_x else None
        dw1 = torch.zeros_like(w1) if need_w1 else None
        dw2 = torch.zeros_like(w2) if need_w2 else None
        db1 = w1.new_zeros(w1.shape[0]) if need_b1 and ctx.has_b1 else None
        db2 = gflat.sum(0) if need_b2 and ctx.has_b2 else None
        two_c = torch.tensor(2 * _GELU_C, dtype=flat.dtype)
        for i in range(0, len(saved), 2):
            h, gate = saved[i], saved[i + 1]
            s = (i // 2) * rows
            gb = gflat[s : s + rows]  # (n, d_out)
            if need_w2:
                dw2.addmm_(gb.t(), h * gate)
            # gelu'(h) = s + h s (1 - s) 2C (1 + 3A h^2)
            slope = torch.addcmul(two_c, h, h, value=6 * _GELU_C * _GELU_A)  # 2C (1 + 3A h^2)
            slope.mul_(torch.addcmul(gate, gate, gate, value=-1))  # * s (1 - s)
            dh = torch.mm(gb, w2).mul_(torch.addcmul(gate, slope, h))  # (n, hidden)
            if need_w1:
                dw1.addmm_(dh.t(), flat[s : s + rows])
            if db1 is not None:
                db1 += dh.sum(0)
            if need_x:
                torch.mm(dh, w1, out=dx[s : s + rows])
        dx = None if dx is None else dx.view(g.shape[:-1] + (flat.shape[-1],))
        return dx, dw1, db1, dw2, db2, None


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

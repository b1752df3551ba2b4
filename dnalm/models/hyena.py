"""Hyena operator as in HyenaDNA (Nguyen et al. 2023; Poli et al. 2023), with a cached-history step mode.

Order-2 Hyena on an input ``x`` (B, L, d_model):

1. ``in_proj`` projects to ``order + 1`` streams of width d_model: ``x0, x1, ..., v``;
2. a short depthwise causal convolution (``short_filter``, kernel 3) mixes neighbouring positions of each stream;
3. for each long-convolution stage: ``v = v * x_i`` (gating), then ``v = h * v + D * v`` where ``h`` is an implicit
   filter as long as the sequence (``filter_fn``: positional features -> sine MLP -> exponential decay window),
   applied through an FFT convolution in O(L log L);
4. ``y = out_proj(v * x0)``.

Parameter and buffer names follow HyenaDNA's (``in_proj``, ``short_filter``, ``filter_fn.implicit_filter.{i}``,
``filter_fn.pos_emb.z/t``, ``filter_fn.modulation.deltas``, ``filter_fn.bias``, ``out_proj``), so published
checkpoints load one to one (see :mod:`dnalm.models.hyenadna_import`). One deliberate difference: HyenaDNA shares a
single ``Sin`` module (one ``freq`` vector) between all positions of the filter MLP; here each position has its own
``Sin`` (same initial value; an imported checkpoint copies the shared value into each), which keeps every tensor
distinct for safetensors.

Cached decoding (``forward(x, state)``) keeps the last ``short_filter_order - 1`` projected inputs and the whole
history of every long-convolution input stream. A new token's output is then the exact causal sum over that
history (O(context) per token; Hyena has no constant-size recurrent state), so stepping reproduces the full forward
pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError
from dnalm.models.cache import MixerState, shared
from dnalm.models.layers import causal_depthwise_conv

# Largest memoised filter spectrum per operator (eval, no autograd): beyond it the filter is regenerated per call,
# so very long contexts (1M tokens: gigabytes of spectra) do not pin memory.
FILTER_MEMO_BYTES = 1 << 28
# No-autograd forward: positions per block of the position-wise work (projections, short convolution, gating) and
# bytes per channel group of the long convolution's transforms, so that the temporaries stay a few MB, reused from
# block to block, instead of a dozen (B, L, d) and (B, d, n) tensors per layer (see :meth:`HyenaOperator.forward`).
# CPU only: on a GPU the caching allocator makes large temporaries cheap and blocks would only add kernel launches.
BLOCK_ROWS = 2048
FFT_GROUP_BYTES = 1 << 23
# The same for the autograd path's long convolution (:class:`_FFTConv`), forward and backward, smaller: a group's
# transforms stay in the core's cache (whole-model training step at 8k tokens, d_model 256, measured interleaved:
# 1 MiB 3% faster than 2 MiB, 4 MiB 5% and 512 KiB 4% slower). CPU only (on a GPU the whole tensor is one group).
FFT_TRAIN_GROUP_BYTES = 1 << 20


@dataclass
class HyenaConfig:
    """Hyena mixer settings (defaults are HyenaDNA's)."""

    order: int = 2  # depth of the recurrence: order+1 projected streams, order-1 long convolutions
    filter_order: int = 64  # width of the implicit filter MLP
    emb_dim: int = 5  # positional features into the filter MLP: t + (emb_dim-1)/2 cos/sin bands (odd, >= 3)
    num_inner_mlps: int = 2  # hidden (Linear, Sin) pairs of the filter MLP after the first one
    short_filter_order: int = 3  # kernel of the short depthwise causal convolution
    activation_freq: float = 1.0  # initial frequency w of the Sin activations (HyenaDNA's pretraining used 10)
    train_freq: bool = True  # the Sin frequencies are trainable
    modulate: bool = True  # apply the exponential decay window to the filter
    fast_decay_pct: float = 0.3  # fastest-decaying channel reaches `target` at this fraction of the length
    slow_decay_pct: float = 1.5  # slowest-decaying channel reaches `target` at this fraction of the length
    target: float = 1e-2  # decay target of the window
    shift: float = 0.0  # constant added to the window (HyenaDNA training code: 0.0; its standalone/-hf code: 0.05)
    modulation_lr: float = 0.0  # 0 = the decay rates are a fixed buffer, else a parameter trained at this lr
    lr_pos_emb: float = 0.0  # 0 = positional features are a fixed buffer, else a parameter trained at this lr
    filter_lr: float | None = None  # lr of the filter MLP (None: the trainer's); its own group in dnalm.training
    filter_wd: float = 0.0  # weight decay of the filter MLP and positional features (dnalm.training honours it)
    normalized: bool = False  # L1-normalise the filter over channels at each position
    use_bias: bool = True  # D skip term of each long convolution (``filter_fn.bias``)
    in_proj_bias: bool = True  # bias in the input projection (published HyenaDNA checkpoints have one)
    dropout: float = 0.0  # dropout on each gated stream before its long convolution
    filter_dropout: float = 0.0  # dropout on the generated long filter (training only)

    def __post_init__(self):
        if self.order < 2:
            raise ConfigError(f"hyena.order must be >= 2, got {self.order}")
        if self.emb_dim < 3 or self.emb_dim % 2 == 0:
            raise ConfigError(f"hyena.emb_dim must be odd and >= 3 (time, cosine, sine), got {self.emb_dim}")
        for name in ("filter_order", "short_filter_order"):
            if getattr(self, name) < 1:
                raise ConfigError(f"hyena.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_inner_mlps < 0:
            raise ConfigError(f"hyena.num_inner_mlps must be >= 0, got {self.num_inner_mlps}")


# ---------------------------------------------------------------------------------------------------- functions
def fftconv(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Causal long convolution through the FFT, plus the skip term: ``y[t] = sum_{j<=t} k[j] u[t-j] + D u[t]``.

    Both signals are zero-padded to a fast FFT length n >= 2L - 1 (:func:`fft_length`), so the circular
    convolution equals the linear one on the first L outputs. Computed in float32 (float64 inputs stay float64),
    returned in ``u``'s dtype.

    Args:
        u: (..., C, L) input.
        k: (C, L) filter (its first L taps are used).
        D: (C,) skip weights.

    Returns:
        (..., C, L) output.
    """
    L = u.shape[-1]
    n = fft_length(2 * L - 1)
    work = torch.promote_types(u.dtype, torch.float32)
    k_f = torch.fft.rfft(k[..., :L].to(work), n=n)
    u_f = torch.fft.rfft(u.to(work), n=n)
    y = torch.fft.irfft(u_f * k_f, n=n)[..., :L]
    return (y + u.to(work) * D.to(work).unsqueeze(-1)).to(u.dtype)


def causal_conv_direct(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`fftconv`: the same causal convolution as an explicit sum over lags (O(L^2)).

    Args:
        u: (..., C, L) input.
        k: (C, L) filter.
        D: (C,) skip weights.

    Returns:
        (..., C, L) output.
    """
    L = u.shape[-1]
    y = u * D.unsqueeze(-1)
    for lag in range(L):
        # u shifted right by `lag` positions, zeros in front
        shifted = F.pad(u, (lag, 0))[..., :L]
        y = y + k[:, lag : lag + 1] * shifted
    return y


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT libraries are fastest at such sizes (2L itself may have a large prime
    factor, e.g. 2 * 32770 = 2^2 * 5 * 29 * 113)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class _FFTConv(torch.autograd.Function):
    """``y = causal_conv(u, k) + D u`` along dim 1 through real FFTs of size ``n >= 2L - 1``, with a real-FFT backward,
    a group of channels at a time.

    Forward: ``y = irfft(rfft(u) * K)[:L] + D u`` (:func:`fftconv_grouped`), the transforms running over the last
    dimension of transposed views (measured 1.7x faster than transforming along dim 1). Backward (correlations, so
    no complex-to-complex transform, unlike autograd through ``rfft(n > L)``): ``du = irfft(rfft(dy) * conj(K))[:L]
    + D dy``, ``dk = irfft(sum_b rfft(dy) * conj(rfft(u)))[:L]``, ``dD = sum(dy * u)``. Each group's padded input,
    spectra and inverse transforms take :data:`FFT_TRAIN_GROUP_BYTES` and are reused from group to group: whole
    (B, C, n) temporaries are page-faulted afresh at every step, which was measured to cost more than the FFTs. So
    only ``u`` and the filter's spectrum are kept, and the backward transforms ``u`` again (one more FFT per group).
    """

    @staticmethod
    def forward(ctx, u, k, D, n, k_f):  # u (B, L, C), k (L, C) or None, D (C,), k_f (C, n//2+1) or None
        B, L, C = u.shape
        if k_f is None:
            k_f = u.new_empty(C, n // 2 + 1, dtype=_COMPLEX[u.dtype])  # (C, n//2+1)
            for cs in _groups(C, _train_group_bytes(u) // (n * u.element_size())):
                torch.fft.rfft(k[:, cs].t(), n=n, out=k_f[cs])
        out = torch.empty_like(u)  # (B, L, C) in u's memory layout
        fftconv_grouped(u, k_f, D, out, _train_group_bytes(u))
        ctx.save_for_backward(u, D, k_f)
        ctx.n = n
        return out

    @staticmethod
    def backward(ctx, dy):
        u, D, k_f = ctx.saved_tensors
        n, (B, L, C) = ctx.n, u.shape
        need_u, need_k, need_D = ctx.needs_input_grad[:3]
        du = torch.empty_like(u) if need_u or need_D else None  # (B, L, C) in u's memory layout
        dk = u.new_empty(C, L).t() if need_k else None  # (L, C), channels outermost: each group's rows are contiguous
        dD = torch.mul(dy, u, out=du).sum((0, 1)) if need_D else None  # du is the scratch before it is written
        for cs in _groups(C, _train_group_bytes(u) // (B * n * u.element_size())):
            dy_f = torch.fft.rfft(dy[:, :, cs].transpose(1, 2), n=n)  # (B, g, n//2+1)
            if need_k:
                cross = torch.fft.rfft(u[:, :, cs].transpose(1, 2), n=n).conj_physical_().mul_(dy_f)  # (B, g, n//2+1)
                dk[:, cs] = torch.fft.irfft(cross[0] if B == 1 else cross.sum(0), n=n)[..., :L].t()  # (L, g)
            if need_u:
                y = torch.fft.irfft(dy_f.mul_(k_f[cs].conj()), n=n)[..., :L].transpose(1, 2)  # (B, L, g)
                torch.addcmul(y, dy[:, :, cs], D[cs], out=du[:, :, cs])
        return du if need_u else None, dk, dD, None, None


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _train_group_bytes(u: torch.Tensor) -> int:
    """Bytes of one channel group of :class:`_FFTConv`: :data:`FFT_TRAIN_GROUP_BYTES` on a CPU, else all of them."""
    return FFT_TRAIN_GROUP_BYTES if u.device.type == "cpu" else 1 << 62


def _groups(C: int, size: int) -> list[slice]:
    """Slices of ``size`` (at least 1) channels covering ``range(C)``."""
    size = max(1, size)
    return [slice(c, min(C, c + size)) for c in range(0, C, size)]


def fftconv_blc(
    u: torch.Tensor, k: torch.Tensor | None, D: torch.Tensor, k_f: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`fftconv` in the (batch, length, channels) layout, at a fast FFT length, with a real-FFT backward.

    Args:
        u: (B, L, C) input.
        k: (L', C) filter taps (the first L are used); may be None when ``k_f`` is given.
        D: (C,) skip weights.
        k_f: (C, n//2+1) spectrum of the taps at ``n = fft_length(2L - 1)`` (e.g. memoised), or None.

    Returns:
        (B, L, C) ``y[t] = sum_{j<=t} k[j] u[t-j] + D u[t]`` in ``u``'s dtype, computed in float32 at least.
    """
    L = u.shape[1]
    work = torch.promote_types(u.dtype, torch.float32)
    taps = None if k is None else k[:L].to(work)
    return _FFTConv.apply(u.to(work), taps, D.to(work), fft_length(2 * L - 1), k_f).to(u.dtype)


def fftconv_grouped(u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, out: torch.Tensor,
                    group_bytes: int | None = None) -> torch.Tensor:
    """:func:`fftconv_blc`'s forward without autograd, a group of channels at a time (the padded input, its spectrum
    and the inverse transform of a group take ``group_bytes``, default :data:`FFT_GROUP_BYTES`, not the whole
    (B, C, n) of each).

    Args:
        u: (B, L, C) input in float32 or float64.
        k_f: (C, n//2+1) spectrum of the taps at ``n = fft_length(2L - 1)``.
        D: (C,) skip weights.
        out: (B, L, C) output; may be ``u`` itself (each group is read before it is written).
        group_bytes: bytes of one group's padded input.

    Returns:
        ``out``.
    """
    B, L, C = u.shape
    n = fft_length(2 * L - 1)
    for cs in _groups(C, (group_bytes or FFT_GROUP_BYTES) // (B * n * u.element_size())):
        y = torch.fft.rfft(u[:, :, cs].transpose(1, 2), n=n)  # (B, g, n//2+1)
        y = torch.fft.irfft(y.mul_(k_f[cs]), n=n)[..., :L].transpose(1, 2)  # (B, L, g)
        torch.addcmul(y, u[:, :, cs], D[cs], out=out[:, :, cs])
    return out


def _hint(p: torch.Tensor, lr: float | None, wd: float | None) -> None:
    """Attach HyenaDNA's per-parameter optimiser hints (``p._optim``) for trainers that honour them."""
    optim = {}
    if lr is not None:
        optim["lr"] = lr
    if wd is not None:
        optim["weight_decay"] = wd
    p._optim = optim


# ---------------------------------------------------------------------------------------------------- filter
class Sin(nn.Module):
    """Sine activation with a (trainable) per-unit frequency: sin(freq * x)."""

    def __init__(self, dim: int, w: float = 1.0, train_freq: bool = True):
        super().__init__()
        freq = w * torch.ones(1, dim)
        if train_freq:
            self.freq = nn.Parameter(freq)
        else:
            self.register_buffer("freq", freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    """Positional features of the implicit filter: normalised time t and complex-exponential bands.

    ``z`` (1, max_length, emb_dim) = [t, cos(f w), -sin(f w)] with t = linspace(0, 1), w = 2 pi n / max_length and
    ``bands = (emb_dim - 1) // 2`` frequencies f in linspace(1e-4, bands - 1); ``t`` (1, max_length, 1).
    """

    def __init__(self, emb_dim: int, max_length: int, lr_pos_emb: float = 0.0, wd: float | None = 0.0):
        super().__init__()
        self.max_length = max_length
        t = torch.linspace(0, 1, max_length)[None, :, None]  # (1, L, 1)
        bands = (emb_dim - 1) // 2
        t_rescaled = torch.linspace(0, max_length - 1, max_length)[None, :, None]
        w = 2 * math.pi * t_rescaled / max_length  # (1, L, 1)
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]  # (1, 1, bands)
        # real and imaginary parts of exp(-i f w)
        z = torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1)  # (1, L, emb_dim)
        if lr_pos_emb == 0.0:
            self.register_buffer("z", z)
        else:
            self.z = nn.Parameter(z)
            _hint(self.z, lr_pos_emb, wd)
        self.register_buffer("t", t)

    def forward(self, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``L`` positions: z (1, L, emb_dim), t (1, L, 1)."""
        return self.z[:, :L], self.t[:, :L]


class ExponentialModulation(nn.Module):
    """Decay window of the implicit filter: h * (exp(-t |delta_c|) + shift), one rate per channel."""

    def __init__(
        self,
        channels: int,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        target: float = 1e-2,
        shift: float = 0.0,
        modulation_lr: float = 0.0,
    ):
        super().__init__()
        self.shift = shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        deltas = torch.linspace(min_decay, max_decay, channels)[None, None]  # (1, 1, C)
        if modulation_lr == 0.0:
            self.register_buffer("deltas", deltas)
        else:
            self.deltas = nn.Parameter(deltas)
            _hint(self.deltas, modulation_lr, 0.0)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """t: (1, L, 1), x: (1, L, C) -> (1, L, C)."""
        decay = torch.exp(-t * self.deltas.abs())
        return x * (decay + self.shift)


class HyenaFilter(nn.Module):
    """Implicit long filter: positional features -> (Linear, Sin)* -> Linear -> decay window, plus the D skip."""

    def __init__(self, channels: int, config: HyenaConfig, max_length: int):
        super().__init__()
        cfg = config
        self.channels = channels
        self.config = cfg
        self.bias = nn.Parameter(torch.randn(channels))  # D, the skip weight of each long convolution
        self.dropout = nn.Dropout(cfg.filter_dropout)
        self.pos_emb = PositionalEmbedding(cfg.emb_dim, max_length, cfg.lr_pos_emb, cfg.filter_wd)
        layers: list[nn.Module] = [nn.Linear(cfg.emb_dim, cfg.filter_order)]
        layers.append(Sin(cfg.filter_order, cfg.activation_freq, cfg.train_freq))
        for _ in range(cfg.num_inner_mlps):
            layers.append(nn.Linear(cfg.filter_order, cfg.filter_order))
            layers.append(Sin(cfg.filter_order, cfg.activation_freq, cfg.train_freq))
        layers.append(nn.Linear(cfg.filter_order, channels, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(
            channels, cfg.fast_decay_pct, cfg.slow_decay_pct, cfg.target, cfg.shift, cfg.modulation_lr
        )
        for p in self.implicit_filter.parameters():
            _hint(p, cfg.filter_lr, cfg.filter_wd)

    @property
    def max_length(self) -> int:
        return self.pos_emb.max_length

    def filter(self, L: int) -> torch.Tensor:
        """The filter's first ``L`` taps, (L, channels)."""
        if L > self.max_length:
            raise ValueError(f"Hyena filter asked for {L} taps but was built for at most {self.max_length}")
        z, t = self.pos_emb(L)
        h = self.implicit_filter(z.to(self.implicit_filter[0].weight.dtype))  # (1, L, C)
        if self.config.modulate:
            h = self.modulation(t, h)
        if self.config.normalized:
            h = h / h.abs().sum(dim=-1, keepdim=True)
        return h[0]

    def skip(self) -> torch.Tensor:
        """D (channels,), zero when ``use_bias`` is off."""
        return self.bias if self.config.use_bias else torch.zeros_like(self.bias)


# ---------------------------------------------------------------------------------------------------- operator
@dataclass(kw_only=True)
class HyenaState(MixerState):
    """Inference state of one Hyena operator: the recent projected inputs and the long-convolution history."""

    conv: torch.Tensor  # (B, short_filter_order-1, (order+1) d_model) last projected inputs
    hist: torch.Tensor  # (B, max_length, (order-1) d_model) every long-convolution input so far
    filters: tuple | None = shared()  # (weights key, (n, channels) taps): the generated filter, reused per step


class HyenaOperator(nn.Module):
    """HyenaDNA's Hyena operator (token mixer) with a cached-history step mode."""

    def __init__(self, d_model: int, layer_idx: int | None = None, config: HyenaConfig | None = None,
                 max_length: int = 1024):
        super().__init__()
        cfg = config or HyenaConfig()
        self.config = cfg
        self.d_model = d_model
        self.layer_idx = layer_idx
        self.order = cfg.order
        self.max_length = max_length
        width = d_model * (cfg.order + 1)
        self.in_proj = nn.Linear(d_model, width, bias=cfg.in_proj_bias)
        self.out_proj = nn.Linear(d_model, d_model)
        # causal depthwise conv: pad K-1 on both sides and keep the first L outputs
        self.short_filter = nn.Conv1d(
            width, width, cfg.short_filter_order, padding=cfg.short_filter_order - 1, groups=width
        )
        self.filter_fn = HyenaFilter(d_model * (cfg.order - 1), cfg, max_length)
        self.dropout = nn.Dropout(cfg.dropout)
        # (key, spectra) of the last whole-sequence eval forward; derived from the weights, never saved
        self._spectra_memo: tuple | None = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # HyenaDNA's init (its model-wide _init_weights reaches every Linear, the filter MLP included):
        # weights N(0, 0.02), biases zero; the short conv keeps PyTorch's default, D is N(0, 1).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ filters
    def _split_filters(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, C) filter -> (order-1, d_model, L) per stage, and D -> (order-1, d_model).

        HyenaDNA's training code lays channels out as ``(d_model, order-1)`` (stage index fastest).
        """
        o = self.order - 1
        L = k.shape[0]
        k = k.reshape(L, self.d_model, o).permute(2, 1, 0)  # (o, d, L)
        D = self.filter_fn.skip().reshape(self.d_model, o).t()  # (o, d)
        return k, D

    def _filters(self, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.filter_fn.dropout(self.filter_fn.filter(L))
        return self._split_filters(k)

    def _weights_key(self) -> tuple:
        """Identifies the filter's weights: changes when any of them is replaced or updated in place."""
        params = list(self.filter_fn.parameters()) + list(self.filter_fn.buffers())
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)

    def _cached_filters(self, L: int, state: HyenaState) -> tuple[torch.Tensor, torch.Tensor]:
        """Filters for decoding: generated once (for a growing prefix), kept in ``state.filters`` and reused while
        the weights are unchanged.

        With autograd on (or in training mode) the filter is regenerated so gradients and dropout behave as in
        the full forward pass.
        """
        if torch.is_grad_enabled() or self.training:
            return self._filters(L)
        key = self._weights_key()
        memo = state.filters
        if memo is None or memo[0] != key or memo[1].shape[0] < L:
            have = 0 if memo is None or memo[0] != key else memo[1].shape[0]
            n = min(self.max_length, max(L, 2 * have, 1024))
            memo = state.filters = (key, self.filter_fn.filter(n))
        return self._split_filters(memo[1][:L])

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, state: HyenaState | None = None) -> torch.Tensor:
        """x: (B, L, d_model) -> (B, L, d_model).

        With ``state`` (from :meth:`allocate_state`), ``x`` continues the sequence seen so far and the state is
        updated in place (``pos`` advanced by L).
        """
        if state is not None:
            return self._forward_cached(x, state)
        L = x.shape[1]
        if L > self.max_length:
            raise ValueError(f"sequence of {L} tokens is longer than the Hyena filter ({self.max_length})")
        if not torch.is_grad_enabled() and not self.training and x.device.type == "cpu":
            return self._forward_blockwise(x)
        d = self.d_model
        # everything stays in the (B, L, channels) layout with each stream contiguous: in_proj and the short conv
        # run per stream (row blocks of their weights), because element-wise gating on strided slices of one
        # (B, L, 3d) tensor was measured 5x slower than on contiguous tensors; no transposes around the convolutions
        W, b = self.in_proj.weight, self.in_proj.bias
        cw, cb = self.short_filter.weight[:, 0], self.short_filter.bias
        streams = []
        for i in range(self.order + 1):
            rows = slice(i * d, (i + 1) * d)
            u = F.linear(x, W[rows], None if b is None else b[rows])  # (B, L, d)
            streams.append(causal_depthwise_conv(u, cw[rows], None if cb is None else cb[rows]).to(u.dtype))
        *xs, v = streams  # order x (B, L, d), v (B, L, d)
        taps, spectra, D = self._long_filters(L, x.dtype)
        for o, x_i in enumerate(reversed(xs[1:])):
            v = self.dropout(v * x_i)
            v = fftconv_blc(v, None if taps is None else taps[o], D[o], None if spectra is None else spectra[o])
        return self.out_proj(v * xs[0])

    def _forward_blockwise(self, x: torch.Tensor) -> torch.Tensor:
        """The no-autograd eval forward, the same maths as the autograd path of :meth:`forward`, in blocks:
        the projections, short convolutions and first gating run over :data:`BLOCK_ROWS` positions at a time (the
        short convolution continues from the previous block's last inputs), the long convolutions over channel
        groups (:func:`fftconv_grouped`), the last gating and ``out_proj`` again over position blocks. Only the
        streams needed later and the long-convolution signal are whole (B, L, d) tensors; large temporaries cost
        more than the arithmetic on them (they are page-faulted afresh each call)."""
        B, L, _ = x.shape
        d, o, K = self.d_model, self.order, self.config.short_filter_order
        W, b = self.in_proj.weight, self.in_proj.bias
        cw, cb = self.short_filter.weight[:, 0], self.short_filter.bias
        work = torch.promote_types(x.dtype, torch.float32)
        keep = [x.new_empty(B, L, d, dtype=work) for _ in range(o - 1)]  # x_0 .. x_{o-2}, gated in later
        v = x.new_empty(B, L, d, dtype=work)  # the long convolutions' signal, transformed in place
        prefix: list[torch.Tensor | None] = [None] * (o + 1)  # each stream's last K-1 projected inputs
        step = max(K, BLOCK_ROWS // B)
        for s in range(0, L, step):
            xb = x[:, s : s + step]
            streams = []
            for i in range(o + 1):
                rows = slice(i * d, (i + 1) * d)
                u = F.linear(xb, W[rows], None if b is None else b[rows])  # (B, t, d)
                streams.append(causal_depthwise_conv(u, cw[rows], None if cb is None else cb[rows], prefix[i]))
                if K > 1:
                    prefix[i] = u[:, -(K - 1):]  # every block but the last has >= K positions
            for i in range(o - 1):
                keep[i][:, s : s + step] = streams[i]
            torch.mul(streams[o], streams[o - 1], out=v[:, s : s + step])  # first gating: v * x_{o-1}
        _, spectra, D = self._long_filters(L, x.dtype)
        for stage, x_i in enumerate(reversed(keep[1:] + [None])):
            if x_i is not None:
                v.mul_(x_i)
            fftconv_grouped(v, spectra[stage], D[stage].to(work), out=v)
        out = x.new_empty(B, L, d, dtype=self.out_proj.weight.dtype)
        v, x0, flat = v.view(-1, d), keep[0].view(-1, d), out.view(-1, d)
        for s in range(0, B * L, BLOCK_ROWS):
            flat[s : s + BLOCK_ROWS] = self.out_proj(v[s : s + BLOCK_ROWS].mul_(x0[s : s + BLOCK_ROWS]).to(x.dtype))
        return out

    def _long_filters(self, L: int, dtype: torch.dtype):
        """Filters of the whole-sequence forward: ``(taps (o, L, d), None, D (o, d))`` when autograd or training
        needs them, else ``(None, spectra (o, d, n//2+1), D)`` at the FFT length of :func:`fftconv_blc`, memoised
        while the weights, the length and the dtype stay the same (they depend on nothing else)."""
        o, d = self.order - 1, self.d_model
        D = self.filter_fn.skip().reshape(d, o).t()  # (o, d); channels are laid out (d, o), stage fastest
        if torch.is_grad_enabled() or self.training:
            k = self.filter_fn.dropout(self.filter_fn.filter(L))  # (L, C)
            return k.reshape(L, d, o).permute(2, 0, 1), None, D  # (o, L, d) strided views
        work = torch.promote_types(dtype, torch.float32)
        n = fft_length(2 * L - 1)
        key = (self._weights_key(), L, n, work)
        memo = self._spectra_memo
        if memo is not None and memo[0] == key:
            return None, memo[1], D
        k = self.filter_fn.filter(L).to(work)  # (L, C)
        spectra = torch.fft.rfft(k.t(), n=n).reshape(d, o, -1).transpose(0, 1).contiguous()  # (o, d, n//2+1)
        keep = spectra.numel() * spectra.element_size() <= FILTER_MEMO_BYTES
        self._spectra_memo = (key, spectra) if keep else None
        return None, spectra, D

    def allocate_state(self, batch_size: int, max_length: int, device=None, dtype=None) -> HyenaState:
        """Empty cached history for ``batch_size`` rows and up to ``max_length`` tokens (device and dtype default
        to the parameters')."""
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        device = self.in_proj.weight.device if device is None else device
        width = self.d_model * (self.order + 1)
        n = min(max_length, self.max_length)
        return HyenaState(
            conv=torch.zeros(batch_size, self.config.short_filter_order - 1, width, device=device, dtype=dtype),
            hist=torch.zeros(batch_size, n, (self.order - 1) * self.d_model, device=device, dtype=dtype),
        )

    def _forward_cached(self, x: torch.Tensor, state: HyenaState) -> torch.Tensor:
        T = x.shape[1]
        p = state.pos
        hist = state.hist
        end = p + T
        if end > hist.shape[1]:
            raise ValueError(f"Hyena cache holds {hist.shape[1]} positions; asked for {end}")
        K = self.config.short_filter_order
        u = self.in_proj(x)  # (B, T, W)
        conv_in = torch.cat([state.conv.to(u.dtype), u], dim=1)  # (B, K-1+T, W)
        if K > 1:
            state.conv = conv_in[:, -(K - 1):].detach().to(state.conv.dtype)
        uc = F.conv1d(
            conv_in.transpose(1, 2), self.short_filter.weight, self.short_filter.bias, groups=conv_in.shape[-1]
        )  # (B, W, T)
        *xs, v = uc.split(self.d_model, dim=1)
        k, D = self._cached_filters(end, state)  # (o, d, end), (o, d)
        d = self.d_model
        for o, x_i in enumerate(reversed(xs[1:])):
            v = self.dropout(v * x_i)  # (B, d, T)
            hist[:, p:end, o * d:(o + 1) * d] = v.transpose(1, 2).detach().to(hist.dtype)
            if T == 1:
                # y[p] = sum_{s<=p} k[p-s] v[s] + D v[p], directly over the history, accumulated in float32
                # (at least) like fftconv
                work = torch.promote_types(v.dtype, torch.float32)
                with torch.autocast(device_type=v.device.type, enabled=False):
                    past = hist[:, :end, o * d:(o + 1) * d].to(work)  # (B, end, d)
                    taps = k[o].flip(-1).to(work)  # (d, end): taps[:, s] = k[:, end-1-s]
                    y = torch.einsum("bsd,ds->bd", past, taps)[..., None]  # (B, d, 1)
                    y = y + v.to(work) * D[o][:, None].to(work)
                v = y.to(v.dtype)
            else:
                past = hist[:, :end, o * d:(o + 1) * d].transpose(1, 2).to(v.dtype)  # (B, d, end)
                past = torch.cat([past[..., :p], v], dim=-1)  # the new positions keep their autograd graph
                v = fftconv(past, k[o], D[o])[..., p:]
        state.pos = end
        y = (v * xs[0]).transpose(1, 2)  # (B, T, d)
        return self.out_proj(y)

"""Mamba2 (SSD) token mixer: a pure-PyTorch chunked scan with optional mamba_ssm / causal-conv1d kernels.

Readable top to bottom: the configuration, the scan as pure functions (``ssd_chunked`` is the fast reference,
``ssd_recurrent`` the naive sequential recurrence it is tested against), the gated RMSNorm, then the mixer.

The mixer's parameter names, shapes and initialisation follow ``mamba_ssm.modules.mamba2.Mamba2`` (without its
tensor-parallel, ``d_ssm`` and ``D_has_hdim`` options), so a mamba_ssm state dict loads with ``strict=True``.

Notation: B batch, L length, H heads, P head dim, G groups (of heads sharing B/C), N state size, Q chunk size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError
from dnalm.models.cache import MixerState
from dnalm.models.layers import causal_depthwise_conv

# Optional fused kernels; the pure-PyTorch path below is used whenever one is missing.
try:  # pragma: no cover - needs the `cuda` extra
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
except (ImportError, OSError, RuntimeError):  # absent, or a CUDA/triton library failing to load
    mamba_chunk_scan_combined = None
try:  # pragma: no cover - needs the `cuda` extra
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update
except (ImportError, OSError, RuntimeError):
    selective_state_update = None
try:  # pragma: no cover - needs the `cuda` extra
    from causal_conv1d import causal_conv1d_fn, causal_conv1d_update
except (ImportError, OSError, RuntimeError):
    causal_conv1d_fn, causal_conv1d_update = None, None

# Upper bound on the elements of one (batch, heads, chunks-in-block, Q, Q) intra-chunk tensor: chunks are
# processed in blocks of this size, so the scan's working memory does not grow with the sequence length.
BLOCK_ELEMENTS = 1 << 22

# Longest chunk of the pure-PyTorch scan on CPU. The scan's result does not depend on the chunk length; its cost
# does: the intra-chunk work grows with Q, the sequential loop with L / Q. Measured fastest at 64 on CPU for
# L = 1k..16k (d_state 64, headdim 64; forward 1.3x and forward+backward 1.1-1.6x faster than Q = 256). A configured
# ``chunk_size`` below it is kept; the fused kernels and other devices use ``chunk_size`` as configured.
CPU_SCAN_CHUNK = 64


def kernels_available() -> bool:
    """Whether all three fused kernels (chunk scan, causal conv1d, state update) imported."""
    return None not in (
        mamba_chunk_scan_combined,
        selective_state_update,
        causal_conv1d_fn,
        causal_conv1d_update,
    )


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Mamba2Config:
    """Hyperparameters of one Mamba2 mixer (defaults as mamba_ssm's Mamba2, except d_state 64)."""

    d_state: int = 64  # N: SSM state size per head
    d_conv: int = 4  # width of the depthwise causal convolution
    expand: int = 2  # d_inner = expand * d_model
    headdim: int = 64  # P: channels per head (tiny models may use 32); nheads = d_inner / headdim
    ngroups: int = 1  # G: groups of heads sharing B and C (like GQA's key/value groups)
    chunk_size: int = 256  # Q: length of the chunks of the SSD scan
    dt_min: float = (
        0.001  # dt_bias is initialised so that softplus(dt_bias) is log-uniform in [dt_min, dt_max]
    )
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4  # lower clamp of that initial dt
    A_init_range: tuple[float, float] = (1.0, 16.0)  # A = -exp(A_log) starts uniform in -[lo, hi]
    conv_bias: bool = True  # bias in the depthwise conv
    bias: bool = False  # bias in in_proj / out_proj
    norm_before_gate: bool = False  # False: y = rmsnorm(y * silu(z)); True: y = rmsnorm(y) * silu(z)
    rmsnorm: bool = True  # gated RMSNorm before out_proj (else the gate y * silu(z) is applied in the scan)
    use_kernels: bool = True  # use mamba_ssm / causal-conv1d kernels when installed and on CUDA

    def __post_init__(self):
        self.A_init_range = tuple(float(v) for v in self.A_init_range)  # JSON gives a list
        for name in ("d_state", "d_conv", "expand", "headdim", "ngroups", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Mamba2Config.{name} must be a positive integer, got {value!r}")
        if len(self.A_init_range) != 2 or not 0 < self.A_init_range[0] <= self.A_init_range[1]:
            raise ConfigError(
                f"Mamba2Config.A_init_range must be (lo, hi) with 0 < lo <= hi, got {self.A_init_range}"
            )
        if not 0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"Mamba2Config needs 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")


# ---------------------------------------------------------------------------------------------------------------
# The SSD scan as pure functions
# ---------------------------------------------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan accumulates in float32 at least (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def _skip_and_gate(
    y: torch.Tensor, x: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None
) -> torch.Tensor:
    """y + D * x, then * silu(z): the tail shared by both scans. y, x, z: (B, L, H, P); D: (H,) or (H, P)."""
    if D is not None:  # in place into the scan's own output (addcmul's backward never reads y)
        D = D.to(y.dtype)
        y = y.addcmul_(x, D[:, None] if D.dim() == 1 else D)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def ssd_recurrent(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    initial_states: torch.Tensor | None = None,
    return_final_states: bool = False,
):
    """Naive sequential SSD recurrence, one token at a time (the reference; also the decoding step).

    ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T``, ``y_t = h_t C_t (+ D x_t)`` (then ``* silu(z_t)``).

    Args:
        x: (B, L, H, P) inputs.
        dt: (B, L, H) positive step sizes (already ``softplus(dt + dt_bias)``).
        A: (H,) negative decay rates.
        B: (B, L, G, N) input projections; head h uses group ``h // (H // G)``.
        C: (B, L, G, N) output projections.
        D: (H,) or (H, P) skip weights, optional.
        z: (B, L, H, P) gate, optional.
        initial_states: (B, H, P, N) state before the first token, default zeros.
        return_final_states: also return the state after the last token.

    Returns:
        y (B, L, H, P) in x's dtype, and the final state (B, H, P, N) in the compute dtype if asked for.
    """
    batch, length, nheads, headdim = x.shape
    ngroups, dstate = B.shape[-2:]
    cdt = _compute_dtype(x.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf, dtf, Af = x.to(cdt), dt.to(cdt), A.to(cdt)
        Bh = B.to(cdt).repeat_interleave(nheads // ngroups, dim=2)  # (B, L, H, N)
        Ch = C.to(cdt).repeat_interleave(nheads // ngroups, dim=2)  # (B, L, H, N)
        if initial_states is None:
            h = x.new_zeros(batch, nheads, headdim, dstate, dtype=cdt)
        else:
            h = initial_states.to(cdt)
        ys = []
        for t in range(length):
            decay = torch.exp(dtf[:, t] * Af)  # (B, H)
            inp = (dtf[:, t, :, None] * xf[:, t])[..., None] * Bh[:, t, :, None, :]  # (B, H, P, N)
            h = decay[..., None, None] * h + inp
            ys.append(torch.einsum("bhpn,bhn->bhp", h, Ch[:, t]))
        y = torch.stack(ys, dim=1) if ys else xf.new_zeros(xf.shape)  # (B, L, H, P)
        y = _skip_and_gate(y, xf, D, z).to(x.dtype)
    return (y, h) if return_final_states else y


def _ssd_block(xdt, dA, Bc, Cc, h):
    """Scan a block of k whole chunks given the state ``h`` before it; returns (y, state after the block).

    Shapes: xdt (B, k, G, R, Q, P) = x * dt; dA (B, k, G, R, Q) = dt * A; Bc, Cc (B, k, G, 1, Q, N);
    h (B, G, R, P, N). R = heads per group.
    """
    Acs = torch.cumsum(dA, dim=-1)  # (B, k, G, R, Q): log-decay from the chunk start to each position
    Q = dA.shape[-1]

    # 1. Within each chunk: y_l = sum_{s<=l} (C_l . B_s) exp(Acs_l - Acs_s) xdt_s, a masked (Q x Q) form.
    causal = torch.ones(Q, Q, dtype=torch.bool, device=dA.device).tril()
    log_decay = (Acs[..., :, None] - Acs[..., None, :]).masked_fill(~causal, -math.inf)  # (B, k, G, R, Q, Q)
    scores = torch.matmul(Cc, Bc.transpose(-1, -2))  # (B, k, G, 1, Q, Q)
    y = torch.matmul(scores * torch.exp(log_decay), xdt)  # (B, k, G, R, Q, P)
    del log_decay

    # 2. Each chunk's own contribution to the state at its end.
    decay_to_end = torch.exp(Acs[..., -1:] - Acs)  # (B, k, G, R, Q)
    chunk_states = torch.matmul((xdt * decay_to_end[..., None]).transpose(-1, -2), Bc)  # (B, k, G, R, P, N)

    # 3. Across chunks: a sequential recurrence, linear in the number of chunks.
    # unbind once: indexing [:, c] in the loop would make the backward write a zero-filled full-size gradient per
    # chunk (quadratic in the number of chunks); unbind's backward is one stack
    chunk_decay = torch.exp(Acs[..., -1])[..., None, None].unbind(1)  # k x (B, G, R, 1, 1)
    states_in = []
    for decay, new in zip(chunk_decay, chunk_states.unbind(1)):
        states_in.append(h)
        h = torch.addcmul(new, decay, h)  # decay * h + this chunk's own contribution
    states_in = torch.stack(states_in, dim=1)  # (B, k, G, R, P, N): state entering each chunk

    # 4. The incoming state's contribution: y_l += exp(Acs_l) C_l . h_in.
    y = y + torch.matmul(Cc, states_in.transpose(-1, -2)) * torch.exp(Acs)[..., None]  # (B, k, G, R, Q, P)
    return y, h


def _chunk_layouts(xf, dtf, Af, Bf, Cf, Q: int, R: int):
    """Chunk-major, head-split layouts of a span whose length is a multiple of ``Q``, for batched matmuls:
    xdt (B, c, G, R, Q, P), dA (B, c, G, R, Q), Bc and Cc (B, c, G, 1, Q, N)."""
    batch, length, _, headdim = xf.shape
    ngroups, dstate = Bf.shape[-2:]
    n = length // Q
    xdt = (xf * dtf[..., None]).reshape(batch, n, Q, ngroups, R, headdim).permute(0, 1, 3, 4, 2, 5)
    dA = (dtf * Af).reshape(batch, n, Q, ngroups, R).permute(0, 1, 3, 4, 2)
    Bc = Bf.reshape(batch, n, Q, ngroups, 1, dstate).permute(0, 1, 3, 4, 2, 5)
    Cc = Cf.reshape(batch, n, Q, ngroups, 1, dstate).permute(0, 1, 3, 4, 2, 5)
    return xdt, dA, Bc, Cc


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    initial_states: torch.Tensor | None = None,
    return_final_states: bool = False,
):
    """Chunked SSD scan in pure PyTorch, for any length; same result as :func:`ssd_recurrent`.

    The sequence is cut into chunks of ``chunk_size`` and a last, shorter chunk for the remainder (no padding,
    so a length like ``k * chunk_size + 1`` costs no extra chunk). Within a chunk the scan is a masked quadratic form; across chunks the
    state is carried by a sequential loop, so time is linear in the number of chunks, and chunks are processed
    in blocks of bounded size, so working memory beyond inputs and outputs does not grow with the length.
    Computes in float32 (float64 for float64 inputs) with autocast disabled.

    Args:
        x: (B, L, H, P) inputs.
        dt: (B, L, H) positive step sizes (already ``softplus(dt + dt_bias)``).
        A: (H,) negative decay rates.
        B: (B, L, G, N) input projections; head h uses group ``h // (H // G)``.
        C: (B, L, G, N) output projections.
        chunk_size: Q, the chunk length.
        D: (H,) or (H, P) skip weights, optional.
        z: (B, L, H, P) gate, optional: the output is multiplied by ``silu(z)``.
        initial_states: (B, H, P, N) state before the first token, default zeros.
        return_final_states: also return the state after the last token.

    Returns:
        y (B, L, H, P) in x's dtype, and the final state (B, H, P, N) in the compute dtype if asked for.
    """
    batch, length, nheads, headdim = x.shape
    ngroups, dstate = B.shape[-2:]
    if nheads % ngroups:
        raise ValueError(f"ssd_chunked: {nheads} heads are not divisible into {ngroups} groups")
    R = nheads // ngroups
    Q = int(chunk_size)
    cdt = _compute_dtype(x.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf, dtf, Af = x.to(cdt), dt.to(cdt), A.to(cdt)
        Bf, Cf = B.to(cdt), C.to(cdt)
        if initial_states is None:
            h = xf.new_zeros(batch, ngroups, R, headdim, dstate)
        else:
            h = initial_states.to(cdt).reshape(batch, ngroups, R, headdim, dstate)  # (B, G, R, P, N)
        y = xf.new_empty(batch, length, nheads, headdim)  # filled block by block
        n_full = length // Q
        # whole chunks of Q, then the remainder as one shorter chunk (no padded work for lengths like k*Q + 1)
        segments = [(0, n_full, Q)] if n_full else []
        if length - n_full * Q:
            segments.append((n_full * Q, 1, length - n_full * Q))
        for s0, nch, q in segments:
            s1 = s0 + nch * q
            xdt, dA, Bc, Cc = _chunk_layouts(xf[:, s0:s1], dtf[:, s0:s1], Af, Bf[:, s0:s1], Cf[:, s0:s1], q, R)
            per_chunk = batch * nheads * q * max(q, headdim, dstate)
            block = max(1, BLOCK_ELEMENTS // per_chunk)
            for c0 in range(0, nch, block):
                part = slice(c0, c0 + block)
                y_blk, h = _ssd_block(xdt[:, part], dA[:, part], Bc[:, part], Cc[:, part], h)
                k = y_blk.shape[1]
                y[:, s0 + c0 * q : s0 + (c0 + k) * q] = y_blk.permute(0, 1, 4, 2, 3, 5).reshape(
                    batch, k * q, nheads, headdim
                )  # (B, k, G, R, q, P) -> (B, k*q, H, P)
            del xdt  # free the largest temporary before the next segment and the skip term
        y = _skip_and_gate(y, xf, D, z).to(x.dtype)
        final = h.reshape(batch, nheads, headdim, dstate)
    return (y, final) if return_final_states else y


# ---------------------------------------------------------------------------------------------------------------
# Gated RMSNorm (mamba_ssm.ops.triton.layernorm_gated.RMSNorm semantics)
# ---------------------------------------------------------------------------------------------------------------


class RMSNormGated(nn.Module):
    """RMSNorm over groups of channels, gated by silu(z) before (default) or after the norm."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-5,
        group_size: int | None = None,
        norm_before_gate: bool = False,
    ):
        super().__init__()
        self.eps = eps
        self.group_size = hidden_size if group_size is None else group_size
        if hidden_size % self.group_size:
            raise ConfigError(
                f"RMSNormGated: hidden size {hidden_size} is not a multiple of {self.group_size}"
            )
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """x, z: (..., hidden_size) -> (..., hidden_size) in x's dtype, computed in float32 at least."""
        dtype = x.dtype
        cdt = _compute_dtype(dtype)
        x = x.to(cdt)
        if z is not None and not self.norm_before_gate:
            x = x * F.silu(z.to(cdt))
        xg = x.unflatten(-1, (-1, self.group_size))  # (..., groups, group_size)
        ms = torch.linalg.vector_norm(xg, dim=-1, keepdim=True).square() / self.group_size  # mean square
        out = (xg * torch.rsqrt(ms + self.eps)).flatten(-2) * self.weight.to(cdt)  # (..., hidden_size)
        if z is not None and self.norm_before_gate:
            out = out * F.silu(z.to(cdt))
        return out.to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# The mixer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Mamba2State(MixerState):
    """Inference state of one Mamba2 mixer (constant size)."""

    conv_state: torch.Tensor  # (B, conv_dim, d_conv) last d_conv inputs of the conv, newest last
    ssm_state: torch.Tensor  # (B, nheads, headdim, d_state) SSM state, float32 at least


class Mamba2(nn.Module):
    """Mamba2 mixer: in_proj -> [z, xBC, dt], causal conv + SiLU, SSD scan, D skip, gated RMSNorm, out_proj."""

    def __init__(self, d_model: int, layer_idx: int | None = None, config: Mamba2Config | None = None):
        super().__init__()
        cfg = config if config is not None else Mamba2Config()
        self.config = cfg
        self.d_model = d_model
        self.layer_idx = layer_idx
        self.d_inner = cfg.expand * d_model
        self.d_state, self.d_conv = cfg.d_state, cfg.d_conv
        self.headdim, self.ngroups = cfg.headdim, cfg.ngroups
        self.chunk_size = cfg.chunk_size
        if self.d_inner % cfg.headdim:
            raise ConfigError(
                f"Mamba2: d_inner {self.d_inner} (expand x d_model) is not a multiple of "
                f"headdim {cfg.headdim}"
            )
        self.nheads = self.d_inner // cfg.headdim
        if self.nheads % cfg.ngroups:
            raise ConfigError(f"Mamba2: {self.nheads} heads are not divisible into ngroups={cfg.ngroups}")
        self.conv_dim = self.d_inner + 2 * cfg.ngroups * cfg.d_state

        # Order of in_proj's outputs: [z, x, B, C, dt].
        d_in_proj = 2 * self.d_inner + 2 * cfg.ngroups * cfg.d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=cfg.bias)
        self.conv1d = nn.Conv1d(
            self.conv_dim,
            self.conv_dim,
            kernel_size=cfg.d_conv,
            groups=self.conv_dim,
            padding=cfg.d_conv - 1,
            bias=cfg.conv_bias,
        )

        # dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], clamped below at dt_init_floor.
        dt = torch.exp(
            torch.rand(self.nheads) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)
        )
        dt = torch.clamp(dt, min=cfg.dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        A = torch.empty(self.nheads, dtype=torch.float32).uniform_(*cfg.A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # read by optimiser parameter grouping, as in mamba_ssm
        if cfg.rmsnorm:
            self.norm = RMSNormGated(
                self.d_inner,
                eps=1e-5,
                group_size=self.d_inner // cfg.ngroups,
                norm_before_gate=cfg.norm_before_gate,
            )
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=cfg.bias)

    # -- inference state ------------------------------------------------------------------------------------

    def allocate_state(self, batch_size: int, max_length: int, device=None, dtype=None) -> Mamba2State:
        """Empty inference state (its size does not depend on ``max_length``).

        Args:
            batch_size: rows of the batch.
            max_length: unused (a Mamba2 state has constant size); accepted for the common mixer protocol.
            device: default the parameters' device.
            dtype: dtype of the conv state, default the parameters' dtype; the SSM state is kept in float32
                at least because it accumulates over the whole context.

        Returns:
            A :class:`Mamba2State` of zeros.
        """
        device = self.in_proj.weight.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        return Mamba2State(
            conv_state=torch.zeros(batch_size, self.conv_dim, self.d_conv, device=device, dtype=dtype),
            ssm_state=torch.zeros(
                batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=_compute_dtype(dtype)
            ),
        )

    # -- forward ----------------------------------------------------------------------------------------------

    def _use_kernels(self, x: torch.Tensor) -> bool:
        return self.config.use_kernels and x.is_cuda and x.dtype != torch.float64 and kernels_available()

    def forward(self, x: torch.Tensor, state: Mamba2State | None = None) -> torch.Tensor:
        """Mix a sequence, or continue one from an inference state.

        Args:
            x: (B, T, d_model).
            state: None for a whole sequence; else a :class:`Mamba2State` that has seen the tokens before
                ``x``; it is updated in place (new tensors in its fields, ``pos`` advanced by T). T = 1 is a single O(1)
                recurrent step; T > 1 a chunked scan starting from the state.

        Returns:
            (B, T, d_model).
        """
        if state is not None:
            if state.ssm_state.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Mamba2 layer {self.layer_idx}: state has batch {state.ssm_state.shape[0]}, "
                    f"input has batch {x.shape[0]}"
                )
            state.pos += x.shape[1]
            if x.shape[1] == 1:
                return self._step(x, state)
        fast = self._use_kernels(x)
        zxbcdt = self.in_proj(x)  # (B, T, d_in_proj)
        z, xBC, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        del zxbcdt
        z = z.contiguous()  # its own storage, so the projection is freed once xBC and dt are consumed
        xBC = self._conv(xBC, state, fast)  # (B, T, conv_dim), after SiLU
        xs, B, C = torch.split(
            xBC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1
        )
        xs = xs.unflatten(-1, (self.nheads, self.headdim))  # (B, T, H, P)
        B = B.unflatten(-1, (self.ngroups, self.d_state))  # (B, T, G, N)
        C = C.unflatten(-1, (self.ngroups, self.d_state))  # (B, T, G, N)
        zh = None if self.config.rmsnorm else z.unflatten(-1, (self.nheads, self.headdim))  # (B, T, H, P)
        A = -torch.exp(self.A_log.float())  # (H,)
        init = state.ssm_state if state is not None else None
        if fast:  # pragma: no cover - needs CUDA and mamba_ssm
            out = mamba_chunk_scan_combined(
                xs,
                dt,
                A,
                B,
                C,
                self.chunk_size,
                D=self.D,
                z=zh,
                dt_bias=self.dt_bias,
                dt_softplus=True,
                initial_states=None if init is None else init.float(),
                return_final_states=state is not None,
            )
        else:
            dt = F.softplus(dt + self.dt_bias.to(dt.dtype))  # (B, T, H)
            out = ssd_chunked(
                xs,
                dt,
                A,
                B,
                C,
                min(self.chunk_size, CPU_SCAN_CHUNK) if x.device.type == "cpu" else self.chunk_size,
                D=self.D,
                z=zh,
                initial_states=init,
                return_final_states=state is not None,
            )
        del xBC, xs, B, C  # free the conv output before the norm's temporaries
        if state is not None:
            y, final = out
            state.ssm_state = final.to(state.ssm_state.dtype)
        else:
            y = out
        del out
        y = y.flatten(-2)  # (B, T, d_inner)
        if self.config.rmsnorm:
            y = self.norm(y, z)
        return self.out_proj(y)

    def _conv(self, xBC: torch.Tensor, state: Mamba2State | None, fast: bool) -> torch.Tensor:
        """Depthwise causal conv + SiLU over (B, T, conv_dim), continuing from ``state.conv_state`` if given."""
        length, k = xBC.shape[1], self.d_conv
        weight = self.conv1d.weight.squeeze(1)  # (conv_dim, d_conv)
        prefix = None  # (B, d_conv - 1, conv_dim): the inputs before x, oldest first; None means zeros
        if state is not None:
            prev = state.conv_state.transpose(1, 2).to(xBC.dtype)  # (B, d_conv, conv_dim)
            prefix = prev[:, 1:]
            tail = torch.cat([prev, xBC[:, -k:]], dim=1)[:, -k:]  # (B, d_conv, conv_dim): the newest inputs
            state.conv_state = tail.transpose(1, 2).to(state.conv_state.dtype).contiguous()
        if fast:  # pragma: no cover - needs CUDA and causal_conv1d
            xpad = (
                xBC if prefix is None else torch.cat([prefix, xBC], dim=1)
            )  # (B, [d_conv - 1 +] T, conv_dim)
            out = causal_conv1d_fn(
                xpad.transpose(1, 2).contiguous(), weight, self.conv1d.bias, activation="silu"
            )
            return out[..., -length:].transpose(1, 2)  # (B, T, conv_dim)
        out = causal_depthwise_conv(xBC, weight, self.conv1d.bias, prefix)  # (B, T, conv_dim)
        return F.silu(out, inplace=not out.requires_grad).to(xBC.dtype)  # (B, T, conv_dim)

    def _step(self, x: torch.Tensor, state: Mamba2State) -> torch.Tensor:
        """One token (B, 1, d_model) -> (B, 1, d_model); O(1) in the context length."""
        fast = self._use_kernels(x)
        zxbcdt = self.in_proj(x[:, 0])  # (B, d_in_proj)
        z, xBC, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        prev = state.conv_state  # (B, conv_dim, d_conv)
        if fast:  # pragma: no cover - needs CUDA and causal_conv1d
            conv_state = prev.to(xBC.dtype, copy=True)  # the kernel updates it in place
            xBC = causal_conv1d_update(
                xBC, conv_state, self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu"
            )
            state.conv_state = conv_state.to(prev.dtype)
        else:
            conv_state = torch.cat(
                [prev[..., 1:], xBC[..., None].to(prev.dtype)], dim=-1
            )  # (B, conv_dim, d_conv)
            state.conv_state = conv_state
            xBC = (conv_state * self.conv1d.weight.squeeze(1)).sum(-1)  # (B, conv_dim)
            if self.conv1d.bias is not None:
                xBC = xBC + self.conv1d.bias
            xBC = F.silu(xBC).to(z.dtype)
        xs, B, C = torch.split(
            xBC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1
        )
        xs = xs.unflatten(-1, (self.nheads, self.headdim))  # (B, H, P)
        B = B.unflatten(-1, (self.ngroups, self.d_state))  # (B, G, N)
        C = C.unflatten(-1, (self.ngroups, self.d_state))  # (B, G, N)
        zh = None if self.config.rmsnorm else z.unflatten(-1, (self.nheads, self.headdim))  # (B, H, P)
        A = -torch.exp(self.A_log.float())  # (H,)
        if fast:  # pragma: no cover - needs CUDA and mamba_ssm
            ssm_state = state.ssm_state.float().clone()  # updated in place by the kernel
            P, N = self.headdim, self.d_state
            y = selective_state_update(
                ssm_state,
                xs,
                dt[..., None].expand(-1, -1, P),
                A[:, None, None].expand(-1, P, N),
                B,
                C,
                D=self.D[:, None].expand(-1, P),
                z=zh,
                dt_bias=self.dt_bias[:, None].expand(-1, P),
                dt_softplus=True,
            )  # (B, H, P)
            state.ssm_state = ssm_state.to(state.ssm_state.dtype)
        else:
            dt = F.softplus(dt + self.dt_bias.to(dt.dtype))  # (B, H)
            y, final = ssd_recurrent(
                xs[:, None],
                dt[:, None],
                A,
                B[:, None],
                C[:, None],
                D=self.D,
                z=None if zh is None else zh[:, None],
                initial_states=state.ssm_state,
                return_final_states=True,
            )
            y = y[:, 0]  # (B, H, P)
            state.ssm_state = final.to(state.ssm_state.dtype)
        y = y.flatten(-2)  # (B, d_inner)
        if self.config.rmsnorm:
            y = self.norm(y, z)
        return self.out_proj(y)[:, None]  # (B, 1, d_model)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, nheads={self.nheads}, headdim={self.headdim}, d_state={self.d_state}, "
            f"ngroups={self.ngroups}, chunk_size={self.chunk_size}, layer_idx={self.layer_idx}"
        )

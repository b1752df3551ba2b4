"""Mamba (v1, selective scan) token mixer: a pure-PyTorch chunked scan with optional mamba_ssm kernels.

Readable top to bottom: the configuration, the scan as pure functions (``selective_scan_chunked`` is the fast
reference, ``selective_scan_recurrent`` the naive sequential recurrence it is tested against), then the mixer.

The mixer's parameter names, shapes and initialisation follow ``mamba_ssm.modules.mamba_simple.Mamba``
(``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``), so a mamba_ssm or Caduceus state
dict loads with ``strict=True``. Departure: mamba_ssm's pure-PyTorch fallback (``selective_scan_ref``) loops over
every position; here the scan is cut into chunks that are scanned in parallel (a loop over the positions of one
chunk, vectorised across chunks), then joined by a loop over chunks, so a length-L sequence costs O(L) work in
about 3 sqrt(L) Python steps and never materialises an (L, d_inner, d_state) tensor.

Notation: B batch, L length, D channels (d_inner), N state size, R dt rank, Q chunk length, K chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError
from dnalm.models.cache import MixerState

# Optional fused kernels; the pure-PyTorch path below is used whenever one is missing.
try:  # pragma: no cover - needs the `cuda` extra
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except (ImportError, OSError, RuntimeError):  # absent, or a CUDA/triton library failing to load
    selective_scan_fn = None
try:  # pragma: no cover - needs the `cuda` extra
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update
except (ImportError, OSError, RuntimeError):
    selective_state_update = None
try:  # pragma: no cover - needs the `cuda` extra
    from causal_conv1d import causal_conv1d_fn
except (ImportError, OSError, RuntimeError):
    causal_conv1d_fn = None


def kernels_available() -> bool:
    """Whether the fused selective scan, state update and causal conv1d kernels imported."""
    return None not in (selective_scan_fn, selective_state_update, causal_conv1d_fn)


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class MambaConfig:
    """Hyperparameters of one Mamba (v1) mixer (defaults as mamba_ssm's ``Mamba``)."""

    d_state: int = 16  # N: SSM state size per channel
    d_conv: int = 4  # width of the depthwise causal convolution
    expand: int = 2  # d_inner = expand * d_model
    dt_rank: int | str = "auto"  # R: rank of the dt projection; "auto" = ceil(d_model / 16)
    dt_min: float = 0.001  # dt_proj.bias is initialised so that softplus(bias) is log-uniform in [dt_min, dt_max]
    dt_max: float = 0.1
    dt_init: str = "random"  # dt_proj.weight init: "random" (uniform +-std) or "constant"
    dt_scale: float = 1.0  # scales that std (dt_rank ** -0.5)
    dt_init_floor: float = 1e-4  # lower clamp of the initial dt
    conv_bias: bool = True  # bias in the depthwise conv
    bias: bool = False  # bias in in_proj / out_proj
    chunk_size: int = 0  # Q of the pure-PyTorch scan; 0 = about sqrt(L) (fewest Python steps)
    use_kernels: bool = True  # use mamba_ssm / causal-conv1d kernels when installed and on CUDA

    def __post_init__(self):
        for name in ("d_state", "d_conv", "expand"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MambaConfig.{name} must be a positive integer, got {value!r}")
        if self.dt_rank != "auto" and (not isinstance(self.dt_rank, int) or self.dt_rank < 1):
            raise ConfigError(f"MambaConfig.dt_rank must be 'auto' or a positive integer, got {self.dt_rank!r}")
        if self.dt_init not in ("random", "constant"):
            raise ConfigError(f"MambaConfig.dt_init must be 'random' or 'constant', got {self.dt_init!r}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 0:
            raise ConfigError(f"MambaConfig.chunk_size must be 0 (auto) or positive, got {self.chunk_size!r}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"MambaConfig needs 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")


# ---------------------------------------------------------------------------------------------------------------
# The selective scan as pure functions
# ---------------------------------------------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan accumulates in float32 at least (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def _skip_and_gate(y, u, D, z):
    """y + D * u, then * silu(z). y, u, z: (B, L, D); D: (D,)."""
    if D is not None:
        y = y + u * D.to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def selective_scan_recurrent(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
):
    """Naive sequential selective scan, one position at a time (the reference; also the decoding step).

    ``h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t``, ``y_t = h_t C_t + D u_t``, then ``* silu(z_t)``.

    Args:
        u: (B, L, D) inputs.
        delta: (B, L, D) positive step sizes (already ``softplus(dt + dt_bias)``).
        A: (D, N) negative decay rates.
        B: (B, L, N) input projections.
        C: (B, L, N) output projections.
        D: (D,) skip weights, optional.
        z: (B, L, D) gate, optional.
        initial_state: (B, D, N) state before the first position, default zeros.
        return_final_state: also return the state after the last position.

    Returns:
        y (B, L, D) in u's dtype, and the final state (B, D, N) in the compute dtype if asked for.
    """
    batch, length, dim = u.shape
    cdt = _compute_dtype(u.dtype)
    with torch.autocast(device_type=u.device.type, enabled=False):
        uf, df, Af, Bf, Cf = (t.to(cdt) for t in (u, delta, A, B, C))
        h = uf.new_zeros(batch, dim, A.shape[-1]) if initial_state is None else initial_state.to(cdt)
        ys = []
        for t in range(length):
            decay = torch.exp(df[:, t, :, None] * Af)  # (B, D, N)
            h = decay * h + (df[:, t] * uf[:, t])[..., None] * Bf[:, t, None, :]  # (B, D, N)
            ys.append(torch.einsum("bdn,bn->bd", h, Cf[:, t]))
        y = torch.stack(ys, dim=1) if ys else uf.new_zeros(uf.shape)  # (B, L, D)
        y = _skip_and_gate(y, uf, D, z).to(u.dtype)
    return (y, h) if return_final_state else y


def auto_chunk_size(length: int) -> int:
    """Q ~ sqrt(L): the chunked scan then takes about 3 sqrt(L) Python steps."""
    return max(1, math.isqrt(max(length, 1)))


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    chunk_size: int = 0,
):
    """Chunked selective scan in pure PyTorch, O(L) work; same result as :func:`selective_scan_recurrent`.

    The sequence is cut into K chunks of Q positions (the last padded with ``delta = 0``, which keeps the state
    unchanged). Three passes: (1) scan every chunk from a zero state, all chunks at once, keeping only the chunk-end
    states; (2) carry the true state across chunks, ``H_k = exp(sum_k delta A) H_{k-1} + h_end_k``; (3) rescan every
    chunk from its true incoming state, producing the outputs. Each step touches (B, K, D, N) elements, so the work
    is linear in L and no (L, D, N) tensor is built. Computes in float32 (float64 for float64 inputs), autocast off.

    Args:
        u, delta, A, B, C, D, z, initial_state, return_final_state: as :func:`selective_scan_recurrent`.
        chunk_size: Q; 0 picks about sqrt(L).

    Returns:
        y (B, L, D) in u's dtype, and the final state (B, D, N) in the compute dtype if asked for.
    """
    batch, length, dim = u.shape
    dstate = A.shape[-1]
    Q = int(chunk_size) or auto_chunk_size(length)
    K = max(1, -(-length // Q))
    pad = K * Q - length
    cdt = _compute_dtype(u.dtype)
    with torch.autocast(device_type=u.device.type, enabled=False):
        uf, df, Af, Bf, Cf = (t.to(cdt) for t in (u, delta, A, B, C))
        du = df * uf  # (B, L, D)
        if pad:
            df, du = F.pad(df, (0, 0, 0, pad)), F.pad(du, (0, 0, 0, pad))  # delta = 0: state unchanged
            Bf, Cf = F.pad(Bf, (0, 0, 0, pad)), F.pad(Cf, (0, 0, 0, pad))
        dc = df.reshape(batch, K, Q, dim)  # (B, K, Q, D)
        duc = du.reshape(batch, K, Q, dim)  # (B, K, Q, D)
        Bc = Bf.reshape(batch, K, Q, dstate)  # (B, K, Q, N)
        Cc = Cf.reshape(batch, K, Q, dstate)  # (B, K, Q, N)

        # 1. each chunk from a zero state, all chunks at once
        h = uf.new_zeros(batch, K, dim, dstate)
        for t in range(Q):
            h = torch.exp(dc[:, :, t, :, None] * Af) * h + duc[:, :, t, :, None] * Bc[:, :, t, None, :]
        # 2. across chunks; the chunk's total decay is one exponent of a sum (<= 0), so it cannot overflow
        chunk_decay = torch.exp(dc.sum(2)[..., None] * Af)  # (B, K, D, N)
        H = uf.new_zeros(batch, dim, dstate) if initial_state is None else initial_state.to(cdt)
        incoming = []
        for k in range(K):
            incoming.append(H)
            H = chunk_decay[:, k] * H + h[:, k]
        h = torch.stack(incoming, dim=1)  # (B, K, D, N): the state entering each chunk
        # 3. each chunk again from its true incoming state
        ys = []
        for t in range(Q):
            h = torch.exp(dc[:, :, t, :, None] * Af) * h + duc[:, :, t, :, None] * Bc[:, :, t, None, :]
            ys.append(torch.einsum("bkdn,bkn->bkd", h, Cc[:, :, t]))
        y = torch.stack(ys, dim=2).reshape(batch, K * Q, dim)[:, :length]  # (B, K, Q, D) -> (B, L, D)
        y = _skip_and_gate(y, uf, D, z).to(u.dtype)
    return (y, H) if return_final_state else y


# ---------------------------------------------------------------------------------------------------------------
# The mixer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class MambaState(MixerState):
    """Inference state of one Mamba mixer (constant size)."""

    conv_state: torch.Tensor  # (B, d_inner, d_conv) last d_conv inputs of the conv, newest last
    ssm_state: torch.Tensor  # (B, d_inner, d_state) SSM state, float32 at least


class Mamba(nn.Module):
    """Mamba (v1) mixer: in_proj -> [x, z], causal conv + SiLU, x_proj -> [dt, B, C], selective scan, out_proj."""

    def __init__(self, d_model: int, layer_idx: int | None = None, config: MambaConfig | None = None):
        super().__init__()
        cfg = config if config is not None else MambaConfig()
        self.config = cfg
        self.d_model = d_model
        self.layer_idx = layer_idx
        self.d_state, self.d_conv = cfg.d_state, cfg.d_conv
        self.d_inner = int(cfg.expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if cfg.dt_rank == "auto" else int(cfg.dt_rank)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=cfg.bias)  # outputs [x, z]
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=cfg.d_conv,
            groups=self.d_inner,
            padding=cfg.d_conv - 1,
            bias=cfg.conv_bias,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False)  # [dt, B, C]
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)

        # dt_proj keeps the variance of dt at init; its bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max]
        std = self.dt_rank**-0.5 * cfg.dt_scale
        if cfg.dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)
        ).clamp(min=cfg.dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True  # the LM's init zeroes other Linear biases
        # S4D-real init: A[d, n] = -(n + 1)
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # (D, N)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        for p in (self.A_log, self.D):
            p._no_weight_decay = True  # read by optimiser parameter grouping, as in mamba_ssm
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=cfg.bias)

    # -- inference state ------------------------------------------------------------------------------------

    def allocate_state(self, batch_size: int, max_length: int = 0, device=None, dtype=None) -> MambaState:
        """Empty inference state (its size does not depend on ``max_length``).

        Args:
            batch_size: rows of the batch.
            max_length: unused (constant-size state); accepted for the common mixer protocol.
            device: default the parameters' device.
            dtype: dtype of the conv state, default the parameters'; the SSM state is float32 at least.

        Returns:
            A :class:`MambaState` of zeros.
        """
        device = self.in_proj.weight.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        return MambaState(
            conv_state=torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=dtype),
            ssm_state=torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=_compute_dtype(dtype)),
        )

    # -- forward ----------------------------------------------------------------------------------------------

    def _use_kernels(self, x: torch.Tensor) -> bool:
        return self.config.use_kernels and x.is_cuda and x.dtype != torch.float64 and kernels_available()

    def forward(self, x: torch.Tensor, state: MambaState | None = None) -> torch.Tensor:
        """Mix a sequence, or continue one from an inference state.

        Args:
            x: (B, T, d_model).
            state: None for a whole sequence; else a :class:`MambaState` that has seen the tokens before ``x``,
                updated in place (``pos`` advances by T). T = 1 is one O(1) recurrent step; T > 1 a chunked scan.

        Returns:
            (B, T, d_model).
        """
        if state is not None:
            if state.ssm_state.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Mamba layer {self.layer_idx}: state has batch {state.ssm_state.shape[0]}, "
                    f"input has batch {x.shape[0]}"
                )
            state.pos += x.shape[1]
            if x.shape[1] == 1:
                return self._step(x, state)
        fast = self._use_kernels(x) and state is None  # the fused scan takes no initial state
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, D) each
        xs = self._conv(xs, state, fast)  # (B, T, D), after SiLU
        dt, B, C = torch.split(self.x_proj(xs), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # (B, T, D), bias added with the softplus
        A = -torch.exp(self.A_log.float())  # (D, N)
        if fast:  # pragma: no cover - needs CUDA and mamba_ssm
            y = selective_scan_fn(
                xs.transpose(1, 2).contiguous(),
                dt.transpose(1, 2).contiguous(),
                A,
                B.transpose(1, 2).contiguous(),
                C.transpose(1, 2).contiguous(),
                self.D.float(),
                z=z.transpose(1, 2).contiguous(),
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
            ).transpose(1, 2)  # (B, D, T) -> (B, T, D)
        else:
            delta = F.softplus(dt + self.dt_proj.bias.to(dt.dtype))  # (B, T, D)
            out = selective_scan_chunked(
                xs,
                delta,
                A,
                B,
                C,
                D=self.D,
                z=z,
                initial_state=None if state is None else state.ssm_state,
                return_final_state=state is not None,
                chunk_size=self.config.chunk_size,
            )
            if state is not None:
                y, final = out
                state.ssm_state = final.to(state.ssm_state.dtype)
            else:
                y = out
        return self.out_proj(y.to(x.dtype))

    def _conv(self, xs: torch.Tensor, state: MambaState | None, fast: bool) -> torch.Tensor:
        """Depthwise causal conv + SiLU over (B, T, D), continuing from ``state.conv_state`` if given."""
        length, k = xs.shape[1], self.d_conv
        if fast:  # pragma: no cover - needs CUDA and causal_conv1d
            out = causal_conv1d_fn(
                xs.transpose(1, 2).contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu"
            )
            return out.transpose(1, 2)
        u = xs.transpose(1, 2)  # (B, D, T)
        if state is not None:
            prev = state.conv_state.to(u.dtype)  # (B, D, d_conv)
            u = torch.cat([prev[..., 1:], u], dim=-1)  # (B, D, d_conv - 1 + T)
            state.conv_state = u[..., -k:].to(state.conv_state.dtype).contiguous()  # T >= 1: k inputs
            out = F.conv1d(u, self.conv1d.weight.to(u.dtype), self.conv1d.bias, groups=self.d_inner)
        else:
            out = self.conv1d(u)[..., :length]  # zero-padded on both sides; keep the causal part
        return F.silu(out).transpose(1, 2)  # (B, T, D)

    def _step(self, x: torch.Tensor, state: MambaState) -> torch.Tensor:
        """One token (B, 1, d_model) -> (B, 1, d_model); O(1) in the context length."""
        fast = self._use_kernels(x)
        xs, z = self.in_proj(x[:, 0]).chunk(2, dim=-1)  # (B, D) each
        conv_state = torch.cat([state.conv_state[..., 1:], xs[..., None].to(state.conv_state.dtype)], -1)
        state.conv_state = conv_state  # (B, D, d_conv)
        xs = (conv_state * self.conv1d.weight.squeeze(1)).sum(-1)  # (B, D)
        if self.conv1d.bias is not None:
            xs = xs + self.conv1d.bias
        xs = F.silu(xs).to(z.dtype)
        dt, B, C = torch.split(self.x_proj(xs), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # (B, D)
        A = -torch.exp(self.A_log.float())  # (D, N)
        if fast:  # pragma: no cover - needs CUDA and mamba_ssm
            ssm_state = state.ssm_state.float().clone()  # updated in place by the kernel
            y = selective_state_update(
                ssm_state, xs, dt, A, B, C, self.D.float(), z=z, dt_bias=self.dt_proj.bias.float(), dt_softplus=True
            )
            state.ssm_state = ssm_state.to(state.ssm_state.dtype)
        else:
            delta = F.softplus(dt + self.dt_proj.bias.to(dt.dtype))  # (B, D)
            y, final = selective_scan_recurrent(
                xs[:, None], delta[:, None], A, B[:, None], C[:, None], D=self.D, z=z[:, None],
                initial_state=state.ssm_state, return_final_state=True,
            )
            y = y[:, 0]  # (B, D)
            state.ssm_state = final.to(state.ssm_state.dtype)
        return self.out_proj(y.to(x.dtype))[:, None]  # (B, 1, d_model)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
            f"d_conv={self.d_conv}, layer_idx={self.layer_idx}"
        )

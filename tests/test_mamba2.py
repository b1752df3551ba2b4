"""Mamba2 mixer: chunked SSD scan vs the naive recurrence, cached decoding, causality, mamba_ssm layout, kernels."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from dnalm.errors import ConfigError
from dnalm.models import mamba2 as m2
from dnalm.models.cache import InferenceCache
from dnalm.models.mamba2 import Mamba2, Mamba2Config, RMSNormGated, ssd_chunked, ssd_recurrent


def _ssd_inputs(batch, length, nheads, headdim, ngroups, dstate, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, nheads, headdim, generator=g, dtype=dtype)
    dt = F.softplus(torch.randn(batch, length, nheads, generator=g, dtype=dtype) - 1.0)
    A = -torch.exp(torch.rand(nheads, generator=g, dtype=dtype) * 2)  # (-e^2, -1]
    B = torch.randn(batch, length, ngroups, dstate, generator=g, dtype=dtype)
    C = torch.randn(batch, length, ngroups, dstate, generator=g, dtype=dtype)
    D = torch.randn(nheads, generator=g, dtype=dtype)
    h0 = torch.randn(batch, nheads, headdim, dstate, generator=g, dtype=dtype)
    z = torch.randn(batch, length, nheads, headdim, generator=g, dtype=dtype)
    return x, dt, A, B, C, D, h0, z


# ---------------------------------------------------------------------------------------------------------------
# The scan
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length,chunk", [(1, 16), (37, 16), (100, 32), (64, 16), (5, 32)])
@pytest.mark.parametrize("ngroups", [1, 2])
@pytest.mark.parametrize("with_init", [False, True])
def test_chunked_equals_recurrence(length, chunk, ngroups, with_init):
    x, dt, A, B, C, D, h0, _ = _ssd_inputs(2, length, 4, 3, ngroups, 5)
    init = h0 if with_init else None
    y_ref, h_ref = ssd_recurrent(x, dt, A, B, C, D=D, initial_states=init, return_final_states=True)
    y, h = ssd_chunked(x, dt, A, B, C, chunk, D=D, initial_states=init, return_final_states=True)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert h.shape == (2, 4, 3, 5)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-10)


def test_recurrence_matches_explicit_formula():
    """The reference itself against the closed form y_t = sum_s C_t.B_s exp(sum_{s<i<=t} dt_i A) dt_s x_s + D x_t."""
    x, dt, A, B, C, D, _, _ = _ssd_inputs(1, 9, 2, 3, 1, 4)
    y = ssd_recurrent(x, dt, A, B, C, D=D)
    expected = torch.zeros_like(x)
    for h in range(2):
        for t in range(9):
            for s in range(t + 1):
                decay = math.exp(float(dt[0, s + 1 : t + 1, h].sum() * A[h]))
                cb = float(C[0, t, 0] @ B[0, s, 0])
                expected[0, t, h] += cb * decay * dt[0, s, h] * x[0, s, h]
            expected[0, t, h] += D[h] * x[0, t, h]
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_chunked_gate_and_matrix_D():
    x, dt, A, B, C, _, h0, z = _ssd_inputs(1, 45, 4, 3, 2, 5)
    D = torch.randn(4, 3, dtype=torch.float64)  # mamba_ssm's D_has_hdim layout
    y_ref = ssd_recurrent(x, dt, A, B, C, D=D, z=z, initial_states=h0)
    y = ssd_chunked(x, dt, A, B, C, 16, D=D, z=z, initial_states=h0)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)


def test_chunked_continuation_equals_whole():
    """Scanning [a; b] equals scanning a, then b from a's final state (the basis of cached prefill)."""
    x, dt, A, B, C, D, _, _ = _ssd_inputs(2, 70, 4, 3, 1, 5)
    y_all = ssd_chunked(x, dt, A, B, C, 16, D=D)
    y1, h1 = ssd_chunked(x[:, :29], dt[:, :29], A, B[:, :29], C[:, :29], 16, D=D, return_final_states=True)
    y2 = ssd_chunked(x[:, 29:], dt[:, 29:], A, B[:, 29:], C[:, 29:], 16, D=D, initial_states=h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_all, rtol=1e-10, atol=1e-10)


def test_chunked_many_chunks_float32_and_grad():
    """64 chunks (several blocks) in float32 stay close to the float64 recurrence; gradients are finite."""
    x, dt, A, B, C, D, h0, _ = _ssd_inputs(1, 2048, 2, 4, 1, 4)
    y_ref = ssd_recurrent(x, dt, A, B, C, D=D, initial_states=h0)
    old = m2.BLOCK_ELEMENTS
    m2.BLOCK_ELEMENTS = 1 << 14  # force blocks of 8 chunks, so the state crosses block boundaries too
    try:
        xf = x.float().requires_grad_()
        y = ssd_chunked(
            xf, dt.float(), A.float(), B.float(), C.float(), 32, D=D.float(), initial_states=h0.float()
        )
    finally:
        m2.BLOCK_ELEMENTS = old
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-3, atol=1e-3)
    y.square().sum().backward()
    assert torch.isfinite(xf.grad).all() and xf.grad.abs().sum() > 0


class _ShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def _intermediate_shapes(length, chunk):
    # Every small dimension (H, P, N, Q) stays below the number of chunks, so a dimension of size >= nchunks
    # can only be the sequence, the chunk index, or an (nchunks x nchunks) segsum.
    x, dt, A, B, C, D, h0, _ = _ssd_inputs(1, length, 2, 4, 1, 4, dtype=torch.float32)
    with _ShapeRecorder() as rec:
        ssd_chunked(x, dt, A, B, C, chunk, D=D, initial_states=h0, return_final_states=True)
    return rec.shapes


def test_chunked_scan_has_no_chunk_by_chunk_tensor():
    nchunks = 4096 // 32
    shapes = _intermediate_shapes(4096, 32)
    assert shapes
    big = [s for s in shapes if sum(d >= nchunks for d in s) >= 2]
    assert not big, f"(nchunks x nchunks)-like intermediates: {big[:5]}"
    # Working memory is linear: the largest intermediate grows 4x from 16 to 64 chunks (it is an input-sized
    # tensor), never 16x as an (nchunks x nchunks) state mixing matrix would.
    largest16 = max(math.prod(s) for s in _intermediate_shapes(16 * 32, 32))
    largest64 = max(math.prod(s) for s in _intermediate_shapes(64 * 32, 32))
    assert largest64 <= 4 * largest16


def test_chunked_scan_under_bf16_autocast():
    x, dt, A, B, C, D, _, _ = _ssd_inputs(1, 50, 2, 4, 1, 4, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ssd_chunked(x.bfloat16(), dt, A, B.bfloat16(), C.bfloat16(), 16, D=D)
    assert y.dtype == torch.bfloat16
    y_ref = ssd_recurrent(
        x.bfloat16().double(),
        dt.double(),
        A.double(),
        B.bfloat16().double(),
        C.bfloat16().double(),
        D=D.double(),
    )
    torch.testing.assert_close(y.double(), y_ref, rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------------------------------------------------------
# Gated RMSNorm
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_before_gate", [False, True])
def test_rmsnorm_gated_per_group(norm_before_gate):
    norm = RMSNormGated(8, eps=1e-5, group_size=4, norm_before_gate=norm_before_gate).double()
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1, 9, dtype=torch.float64))
    x, z = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    out = norm(x, z)
    for r in range(3):
        for g in range(2):
            sl = slice(4 * g, 4 * g + 4)
            xi = x[r, sl] * (1 if norm_before_gate else F.silu(z[r, sl]))
            ref = xi / torch.sqrt(xi.square().mean() + 1e-5) * norm.weight[sl]
            if norm_before_gate:
                ref = ref * F.silu(z[r, sl])
            torch.testing.assert_close(out[r, sl], ref)


# ---------------------------------------------------------------------------------------------------------------
# The mixer
# ---------------------------------------------------------------------------------------------------------------


def _tiny(ngroups=1, rmsnorm=True, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = Mamba2Config(d_state=8, headdim=8, ngroups=ngroups, chunk_size=8, rmsnorm=rmsnorm, **kw)
    layer = Mamba2(16, layer_idx=0, config=cfg).to(dtype)  # d_inner 32, 4 heads
    with torch.no_grad():  # move off the near-identity init so every term matters
        layer.dt_bias.add_(1.0)
        layer.D.copy_(torch.randn(layer.nheads))
    return layer


def _input(batch=2, length=21, d_model=16, dtype=torch.float64, seed=1):
    return torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("ngroups,rmsnorm", [(1, True), (2, True), (1, False)])
def test_cached_steps_equal_full_forward(ngroups, rmsnorm):
    layer = _tiny(ngroups=ngroups, rmsnorm=rmsnorm)
    x = _input()
    with torch.no_grad():
        full = layer(x)
        state = layer.allocate_state(2, 32, x.device, x.dtype)
        steps = torch.cat([layer(x[:, t : t + 1], state) for t in range(x.shape[1])], 1)
    torch.testing.assert_close(steps, full, rtol=1e-10, atol=1e-10)


def test_prefill_then_steps_equal_full_forward():
    layer = _tiny()
    x = _input(length=30)
    with torch.no_grad():
        full = layer(x)
        state = layer.allocate_state(2, 30, x.device, x.dtype)
        out = [layer(x[:, :13], state)]
        out += [layer(x[:, t : t + 1], state) for t in range(13, 30)]
    torch.testing.assert_close(torch.cat(out, 1), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("split", [2, 3, 7, 19])
def test_prefill_in_two_uneven_pieces(split):
    layer = _tiny(ngroups=2)
    x = _input(length=27)
    with torch.no_grad():
        full = layer(x)
        state = layer.allocate_state(2, 27, x.device, x.dtype)
        out = torch.cat([layer(x[:, :split], state), layer(x[:, split:], state)], 1)
    torch.testing.assert_close(out, full, rtol=1e-10, atol=1e-10)


def test_state_works_with_inference_cache_rows():
    """States are batch-first tensors: selecting a row of the cache continues that row's sequence."""
    layer = _tiny()
    x = _input(length=12)
    with torch.no_grad():
        full = layer(x)
        cache = InferenceCache([layer.allocate_state(2, 12, x.device, x.dtype)], 12)
        layer(x[:, :9], cache.states[0])
        row1 = cache.index_select(torch.tensor([1]))
        snapshot = cache.clone()
        rest = layer(x[1:, 9:], row1.states[0])
        again = layer(x[:, 9:], snapshot.states[0])
    torch.testing.assert_close(rest, full[1:, 9:], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(again, full[:, 9:], rtol=1e-10, atol=1e-10)


def test_state_shapes_and_batch_check():
    layer = _tiny(dtype=torch.float32)
    state = layer.allocate_state(3, 100)
    assert state.conv_state.shape == (3, layer.conv_dim, layer.d_conv)
    assert state.ssm_state.shape == (3, layer.nheads, layer.headdim, layer.d_state)
    assert state.ssm_state.dtype == torch.float32
    assert layer.allocate_state(1, 10, dtype=torch.bfloat16).ssm_state.dtype == torch.float32
    with pytest.raises(ValueError, match="batch"):
        layer(torch.randn(2, 1, 16), state)


def test_causality():
    layer = _tiny()
    x = _input(length=25)
    t = 11
    x2 = x.clone()
    x2[:, t] += 1.0
    with torch.no_grad():
        y, y2 = layer(x), layer(x2)
    torch.testing.assert_close(y2[:, :t], y[:, :t], rtol=0, atol=1e-12)
    assert (y2[:, t] - y[:, t]).abs().max() > 1e-6
    assert (y2[:, t + 5] - y[:, t + 5]).abs().max() > 1e-9  # the change propagates through the state


def test_gradients_flow_to_every_parameter():
    layer = _tiny(dtype=torch.float32)
    x = _input(length=20, dtype=torch.float32).requires_grad_()
    layer(x).square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_bf16_autocast_forward_and_step():
    layer = _tiny(dtype=torch.float32)
    x = _input(length=20, dtype=torch.float32)
    with torch.no_grad():
        ref = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
            state = layer.allocate_state(2, 20, dtype=torch.bfloat16)
            layer(x[:, :15], state)
            steps = torch.cat([layer(x[:, t : t + 1], state) for t in range(15, 20)], 1)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
    scale = ref.abs().max()
    assert (y.float() - ref).abs().max() < 0.05 * scale
    assert (steps.float() - ref[:, 15:]).abs().max() < 0.05 * scale
    # and backward under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = layer(x).float().square().mean()
    loss.backward()
    assert torch.isfinite(layer.A_log.grad).all()


def _mamba_ssm_names_and_shapes(d_model, d_state, d_conv, expand, headdim, ngroups, bias, conv_bias, rmsnorm):
    """The parameters of mamba_ssm.modules.mamba2.Mamba2 (its __init__, without d_ssm / D_has_hdim / TP)."""
    d_inner = expand * d_model
    nheads = d_inner // headdim
    conv_dim = d_inner + 2 * ngroups * d_state
    d_in_proj = 2 * d_inner + 2 * ngroups * d_state + nheads
    # torch lists a module's own parameters before its submodules' (so dt_bias, A_log, D come first there too)
    names = [
        ("dt_bias", (nheads,)),
        ("A_log", (nheads,)),
        ("D", (nheads,)),
        ("in_proj.weight", (d_in_proj, d_model)),
    ]
    if bias:
        names.append(("in_proj.bias", (d_in_proj,)))
    names.append(("conv1d.weight", (conv_dim, 1, d_conv)))
    if conv_bias:
        names.append(("conv1d.bias", (conv_dim,)))
    if rmsnorm:
        names.append(("norm.weight", (d_inner,)))
    names.append(("out_proj.weight", (d_model, d_inner)))
    if bias:
        names.append(("out_proj.bias", (d_model,)))
    return names


@pytest.mark.parametrize(
    "d_model,kw",
    [
        (128, {}),
        (64, {"d_state": 16, "headdim": 32, "ngroups": 2, "bias": True, "conv_bias": False}),
        (48, {"d_state": 8, "headdim": 16, "expand": 1, "rmsnorm": False, "d_conv": 3}),
    ],
)
def test_state_dict_layout_matches_mamba_ssm(d_model, kw):
    cfg = Mamba2Config(**kw)
    layer = Mamba2(d_model, layer_idx=3, config=cfg)
    expected = _mamba_ssm_names_and_shapes(
        d_model,
        cfg.d_state,
        cfg.d_conv,
        cfg.expand,
        cfg.headdim,
        cfg.ngroups,
        cfg.bias,
        cfg.conv_bias,
        cfg.rmsnorm,
    )
    got = [(k, tuple(v.shape)) for k, v in layer.state_dict().items()]
    assert got == expected
    # a state dict in that layout loads strictly
    foreign = {k: torch.randn(shape) for k, shape in expected}
    layer.load_state_dict(foreign, strict=True)
    assert torch.equal(layer.A_log, foreign["A_log"])


def test_initialisation_as_mamba_ssm():
    cfg = Mamba2Config(dt_min=0.002, dt_max=0.05, A_init_range=(2, 8))
    layer = Mamba2(256, config=cfg)  # 8 heads
    dt = F.softplus(layer.dt_bias)
    assert ((dt >= 0.002 - 1e-6) & (dt <= 0.05 + 1e-6)).all()
    A = torch.exp(layer.A_log)
    assert ((A >= 2 - 1e-5) & (A <= 8 + 1e-5)).all()
    assert torch.equal(layer.D, torch.ones(8))
    assert torch.equal(layer.norm.weight, torch.ones(512))
    assert layer.norm.group_size == 512 and not layer.norm.norm_before_gate and layer.norm.eps == 1e-5


def test_config_validation():
    with pytest.raises(ConfigError, match="headdim"):
        Mamba2(20, config=Mamba2Config(headdim=16))  # d_inner 40
    with pytest.raises(ConfigError, match="ngroups"):
        Mamba2(32, config=Mamba2Config(headdim=16, ngroups=3))  # 4 heads
    with pytest.raises(ConfigError, match="A_init_range"):
        Mamba2Config(A_init_range=(0, 4))
    with pytest.raises(ConfigError, match="chunk_size"):
        Mamba2Config(chunk_size=0)
    assert Mamba2Config(A_init_range=[1, 16]).A_init_range == (1.0, 16.0)  # as read back from JSON


def test_no_kernels_on_cpu():
    layer = _tiny(dtype=torch.float32)
    assert not layer._use_kernels(torch.zeros(1, 1, 16))


# ---------------------------------------------------------------------------------------------------------------
# Kernel dispatch plumbing on CPU: stand-ins with the kernels' signatures and semantics (as in mamba_ssm's and
# causal-conv1d's reference functions) check the arguments the fast path passes; the real kernels are checked
# by the gpu tests below.
# ---------------------------------------------------------------------------------------------------------------


def _fake_causal_conv1d_fn(x, weight, bias=None, activation=None):
    dim, width = weight.shape
    assert x.dim() == 3 and x.shape[1] == dim and activation == "silu"
    out = F.conv1d(x, weight[:, None], bias, padding=width - 1, groups=dim)[..., : x.shape[-1]]
    return F.silu(out)


def _fake_causal_conv1d_update(x, conv_state, weight, bias=None, activation=None):
    assert x.dim() == 2 and conv_state.shape == (*x.shape, weight.shape[1]) and activation == "silu"
    assert conv_state.dtype == x.dtype
    conv_state.copy_(torch.roll(conv_state, shifts=-1, dims=-1))  # in place, like the kernel
    conv_state[:, :, -1] = x
    out = (conv_state * weight).sum(-1) + (0 if bias is None else bias)
    return F.silu(out).to(x.dtype)


def _fake_chunk_scan(
    x,
    dt,
    A,
    B,
    C,
    chunk_size,
    D=None,
    z=None,
    dt_bias=None,
    initial_states=None,
    dt_softplus=False,
    return_final_states=False,
):
    assert x.dim() == 4 and dt.shape == x.shape[:3] and A.shape == (x.shape[2],) and dt_softplus
    dt = F.softplus(dt + dt_bias)
    return ssd_recurrent(
        x, dt, A, B, C, D=D, z=z, initial_states=initial_states, return_final_states=return_final_states
    )


def _fake_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    batch, nheads, headdim, dstate = state.shape
    assert x.shape == dt.shape == (batch, nheads, headdim) and A.shape == (nheads, headdim, dstate)
    assert B.shape == C.shape and B.shape[0] == batch and B.shape[2] == dstate and dt_softplus
    assert D.shape == dt_bias.shape == (nheads, headdim)
    dt = F.softplus(dt + dt_bias)
    rep = nheads // B.shape[1]
    Bh, Ch = B.repeat_interleave(rep, dim=1), C.repeat_interleave(rep, dim=1)  # (batch, nheads, dstate)
    new = state * torch.exp(dt[..., None] * A) + dt[..., None] * Bh[:, :, None, :] * x[..., None]
    state.copy_(new)
    out = torch.einsum("bhpn,bhn->bhp", new, Ch) + x * D
    return out * F.silu(z) if z is not None else out


@pytest.mark.parametrize("ngroups,rmsnorm", [(1, True), (2, True), (1, False)])
def test_fast_path_plumbing_with_stand_in_kernels(monkeypatch, ngroups, rmsnorm):
    layer = _tiny(ngroups=ngroups, rmsnorm=rmsnorm)
    x = _input(length=19)
    with torch.no_grad():
        ref_full = layer(x)
        ref_state = layer.allocate_state(2, 19)
        ref_cached = torch.cat(
            [layer(x[:, :11], ref_state)] + [layer(x[:, t : t + 1], ref_state) for t in range(11, 19)], 1
        )
    monkeypatch.setattr(m2, "causal_conv1d_fn", _fake_causal_conv1d_fn)
    monkeypatch.setattr(m2, "causal_conv1d_update", _fake_causal_conv1d_update)
    monkeypatch.setattr(m2, "mamba_chunk_scan_combined", _fake_chunk_scan)
    monkeypatch.setattr(m2, "selective_state_update", _fake_state_update)
    assert m2.kernels_available()
    monkeypatch.setattr(Mamba2, "_use_kernels", lambda self, t: True)
    with torch.no_grad():
        full = layer(x)
        state = layer.allocate_state(2, 19)
        cached = torch.cat(
            [layer(x[:, :11], state)] + [layer(x[:, t : t + 1], state) for t in range(11, 19)], 1
        )
    torch.testing.assert_close(full, ref_full, rtol=1e-10, atol=1e-10)
    # the fast path hands the kernels a float32 SSM state, so what flows through the state is float32-exact
    torch.testing.assert_close(cached, ref_cached, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(state.ssm_state, ref_state.ssm_state, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(state.conv_state, ref_state.conv_state, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# Kernel parity (CUDA + mamba_ssm + causal_conv1d)
# ---------------------------------------------------------------------------------------------------------------

needs_kernels = pytest.mark.skipif(
    not (torch.cuda.is_available() and m2.kernels_available()),
    reason="needs CUDA, mamba_ssm and causal_conv1d",
)


def _gpu_pair(ngroups=1):
    torch.manual_seed(0)
    cfg = Mamba2Config(d_state=64, headdim=32, ngroups=ngroups, chunk_size=64)
    fast = Mamba2(128, layer_idx=0, config=cfg)
    with torch.no_grad():
        fast.dt_bias.add_(1.0)
    ref = copy.deepcopy(fast)
    ref.config = Mamba2Config(**{**cfg.__dict__, "use_kernels": False})
    return fast.cuda(), ref.cuda()


def _rel_err(a, b):
    """Relative L2 error; the Triton kernels use TF32 matmuls, so element-wise fp32 tolerances would be flaky."""
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.gpu
@needs_kernels
@pytest.mark.parametrize("ngroups", [1, 2])
def test_gpu_kernel_forward_matches_reference(ngroups):
    fast, ref = _gpu_pair(ngroups)
    probe = torch.zeros(1, device="cuda")
    assert fast._use_kernels(probe) and not ref._use_kernels(probe)
    x = torch.randn(2, 300, 128, device="cuda")  # not a multiple of the chunk size
    y_fast, y_ref = fast(x), ref(x)
    assert _rel_err(y_fast, y_ref) < 5e-3
    y_fast.square().mean().backward()
    y_ref.square().mean().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        assert _rel_err(p.grad, q.grad) < 2e-2, name


@pytest.mark.gpu
@needs_kernels
def test_gpu_kernel_prefill_and_step_match_reference():
    fast, ref = _gpu_pair()
    x = torch.randn(2, 140, 128, device="cuda")
    with torch.no_grad():
        full = ref(x)
        outs = {}
        for name, layer in (("fast", fast), ("ref", ref)):
            state = layer.allocate_state(2, 140)
            o = [layer(x[:, :97], state)] + [layer(x[:, t : t + 1], state) for t in range(97, 140)]
            outs[name] = torch.cat(o, 1)
    assert _rel_err(outs["ref"], full) < 1e-4  # the reference's own cache, in fp32 on the GPU
    assert _rel_err(outs["fast"], outs["ref"]) < 5e-3
    assert _rel_err(outs["fast"][:, 97:], full[:, 97:]) < 5e-3  # the kernel decode steps


@pytest.mark.gpu
@needs_kernels
def test_gpu_kernel_bf16_autocast_runs():
    fast, ref = _gpu_pair()
    x = torch.randn(1, 512, 128, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        y_fast, y_ref = fast(x), ref(x)
        state = fast.allocate_state(1, 513, dtype=torch.bfloat16)
        fast(x[:, :511], state)
        step = fast(x[:, 511:], state)
    assert torch.isfinite(y_fast.float()).all()
    assert _rel_err(y_fast, y_ref) < 5e-2
    assert _rel_err(step, y_ref[:, 511:]) < 5e-2

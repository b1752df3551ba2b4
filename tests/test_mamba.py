"""Mamba (v1) mixer: chunked scan vs the naive recurrence, cached decoding, causality, mamba_ssm reference."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dnalm.errors import ConfigError
from dnalm.models.mamba import Mamba, MambaConfig, selective_scan_chunked, selective_scan_recurrent

REF_PATH = Path(__file__).parent / "reference" / "mamba_ssm_reference.py"
_spec = importlib.util.spec_from_file_location("mamba_ssm_reference", REF_PATH)
ref = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mamba_ssm_reference", ref)  # dataclasses look their module up
_spec.loader.exec_module(ref)
RefMamba = ref.Mamba


def _scan_inputs(batch, length, dim, dstate, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, dim, generator=g, dtype=dtype)
    delta = F.softplus(torch.randn(batch, length, dim, generator=g, dtype=dtype) - 1.0)
    A = -torch.exp(torch.rand(dim, dstate, generator=g, dtype=dtype) * 2)
    B = torch.randn(batch, length, dstate, generator=g, dtype=dtype)
    C = torch.randn(batch, length, dstate, generator=g, dtype=dtype)
    D = torch.randn(dim, generator=g, dtype=dtype)
    z = torch.randn(batch, length, dim, generator=g, dtype=dtype)
    h0 = torch.randn(batch, dim, dstate, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, z, h0


@pytest.mark.parametrize("length,chunk", [(1, 0), (37, 0), (37, 5), (64, 8), (100, 7), (3, 16)])
@pytest.mark.parametrize("with_init", [False, True])
def test_chunked_scan_equals_recurrence_float64(length, chunk, with_init):
    u, delta, A, B, C, D, z, h0 = _scan_inputs(2, length, 6, 4)
    init = h0 if with_init else None
    y_ref, h_ref = selective_scan_recurrent(u, delta, A, B, C, D, z, init, return_final_state=True)
    y, h = selective_scan_chunked(u, delta, A, B, C, D, z, init, return_final_state=True, chunk_size=chunk)
    assert y.dtype == torch.float64 and y.shape == u.shape and h.shape == (2, 6, 4)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-10)


def test_recurrence_matches_closed_form():
    """y_t = sum_{s<=t} C_t . (exp(sum_{s<i<=t} delta_i A) delta_s u_s B_s) + D u_t, written out by hand."""
    u, delta, A, B, C, D, _, _ = _scan_inputs(1, 7, 2, 3)
    y = selective_scan_recurrent(u, delta, A, B, C, D)
    for d in range(2):
        for t in range(7):
            total = float(D[d] * u[0, t, d])
            for s in range(t + 1):
                decay = torch.exp(delta[0, s + 1 : t + 1, d].sum() * A[d])  # (N,)
                total += float((C[0, t] * decay * delta[0, s, d] * u[0, s, d] * B[0, s]).sum())
            assert abs(float(y[0, t, d]) - total) < 1e-10


def test_chunked_scan_survives_strong_decay():
    """Long chunks with large delta*|A| would overflow a cumulative-product formulation; this one stays finite."""
    u, delta, A, B, C, D, z, _ = _scan_inputs(1, 300, 4, 3, dtype=torch.float32)
    y = selective_scan_chunked(u, delta * 50, A * 10, B, C, D, z, chunk_size=100)
    y_ref = selective_scan_recurrent(u, delta * 50, A * 10, B, C, D, z)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)


def _tiny(seed=0, **kw) -> Mamba:
    torch.manual_seed(seed)
    m = Mamba(16, layer_idx=0, config=MambaConfig(d_state=4, **kw)).double()
    with torch.no_grad():  # non-trivial values everywhere
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def test_mamba_matches_mamba_ssm_reference():
    """Same parameters loaded into the published module (selective_scan_ref path): same outputs."""
    m = _tiny()
    ref = RefMamba(16, d_state=4, layer_idx=0).double()
    ref.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prefix", [0, 1, 5, 9])
def test_cached_steps_equal_full_forward(prefix):
    m = _tiny(1)
    x = torch.randn(2, 14, 16, dtype=torch.float64)
    full = m(x)
    state = m.allocate_state(2)
    assert state.conv_state.device == m.in_proj.weight.device
    outs = [m(x[:, :prefix], state)] if prefix else []
    outs += [m(x[:, t : t + 1], state) for t in range(prefix, 14)]
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-10, atol=1e-10)
    assert state.pos == 14


def test_causal_and_dt_rank():
    m = _tiny(2, dt_rank=3)
    assert m.dt_rank == 3 and m.x_proj.weight.shape == (3 + 8, 32)
    assert Mamba(40).dt_rank == 3  # "auto" = ceil(40 / 16)
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    y = m(x)
    x2 = x.clone()
    x2[:, 7:] += 1.0
    torch.testing.assert_close(m(x2)[:, :7], y[:, :7])


def test_parameter_names_as_mamba_ssm():
    names = set(Mamba(16).state_dict())
    assert names == {
        "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias",
        "A_log", "D", "out_proj.weight",
    }


def test_bad_config():
    with pytest.raises(ConfigError, match="dt_rank"):
        MambaConfig(dt_rank="big")
    with pytest.raises(ConfigError, match="d_state"):
        MambaConfig(d_state=0)


def test_gradients_flow_through_chunked_scan():
    m = _tiny(3).float()
    x = torch.randn(1, 20, 16, requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert m.A_log.grad is not None and m.dt_proj.weight.grad.abs().sum() > 0

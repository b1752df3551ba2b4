"""Hyena mixer: FFT convolution vs direct convolution, causality, cached decoding vs the full forward pass."""

from __future__ import annotations

import pytest
import torch

from dnalm.errors import ConfigError
from dnalm.models.cache import InferenceCache
from dnalm.models.hyena import (
    HyenaConfig,
    HyenaFilter,
    HyenaOperator,
    PositionalEmbedding,
    causal_conv_direct,
    fft_length,
    fftconv,
    fftconv_blc,
)


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights at a scale where every path of the operator contributes (the published init is tiny)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("freq"):
                p.copy_(torch.rand(p.shape, generator=g) * 2 + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return module


def _operator(d_model=8, order=2, max_length=64, dtype=torch.float64, seed=0, **cfg) -> HyenaOperator:
    op = HyenaOperator(d_model, layer_idx=0, config=HyenaConfig(order=order, filter_order=16, **cfg),
                       max_length=max_length)
    return _randomize(op, seed).to(dtype).eval()


# ---------------------------------------------------------------------------------------------------- fftconv
@pytest.mark.parametrize("L", [1, 2, 5, 17, 64, 129])
def test_fftconv_equals_direct_causal_convolution(L):
    g = torch.Generator().manual_seed(L)
    u = torch.randn(3, 4, L, generator=g, dtype=torch.float64)
    k = torch.randn(4, L, generator=g, dtype=torch.float64)
    D = torch.randn(4, generator=g, dtype=torch.float64)
    got = fftconv(u, k, D)
    assert got.dtype == torch.float64 and got.shape == u.shape
    torch.testing.assert_close(got, causal_conv_direct(u, k, D), rtol=0, atol=1e-11)


def test_direct_convolution_is_the_textbook_sum():
    # an independent triple loop, so fftconv is not only compared with another vectorised formula
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
    k = torch.randn(3, 9, generator=g, dtype=torch.float64)
    D = torch.randn(3, generator=g, dtype=torch.float64)
    want = torch.zeros_like(u)
    for b in range(2):
        for c in range(3):
            for t in range(9):
                want[b, c, t] = D[c] * u[b, c, t] + sum(k[c, j] * u[b, c, t - j] for j in range(t + 1))
    torch.testing.assert_close(causal_conv_direct(u, k, D), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(fftconv(u, k, D), want, rtol=0, atol=1e-12)


def test_fftconv_low_precision_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(2)
    u = torch.randn(2, 4, 50, generator=g)
    k = torch.randn(4, 50, generator=g) * 0.1
    D = torch.randn(4, generator=g)
    ref = fftconv(u.double(), k.double(), D.double())
    out32 = fftconv(u, k, D)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=1e-4)
    out16 = fftconv(u.bfloat16(), k.bfloat16(), D.bfloat16())
    assert out16.dtype == torch.bfloat16
    assert (out16.double() - ref).abs().max() < 0.1 * ref.abs().max()


def test_fftconv_uses_only_the_first_L_taps():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(1, 2, 10, generator=g, dtype=torch.float64)
    k = torch.randn(2, 30, generator=g, dtype=torch.float64)
    D = torch.zeros(2, dtype=torch.float64)
    torch.testing.assert_close(fftconv(u, k, D), causal_conv_direct(u, k[:, :10], D), rtol=0, atol=1e-12)


def test_fft_length_is_the_smallest_5_smooth_size():
    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in list(range(1, 400)) + [65539, 2 * 32770 - 1, 262143]:
        m = fft_length(n)
        assert m >= n and smooth(m), n
        assert not any(smooth(j) for j in range(n, m)), n
    assert fft_length(2 * 32770 - 1) == 65610 and fft_length(16383) == 16384


@pytest.mark.parametrize("L,grouped", [(1, False), (2, False), (13, False), (64, False), (97, False), (13, True),
                                      (97, True)])
def test_fftconv_blc_equals_direct_and_its_backward_is_exact(monkeypatch, L, grouped):
    import dnalm.models.hyena as hyena

    if grouped:  # channel groups of 2, 2 and 1 (forward, filter spectrum and backward run group by group)
        monkeypatch.setattr(hyena, "FFT_TRAIN_GROUP_BYTES", 2 * 2 * fft_length(2 * L - 1) * 8)
    g = torch.Generator().manual_seed(L)
    u = torch.randn(2, L, 5, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(L + 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    D = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    want = causal_conv_direct(u.transpose(1, 2), k[:L].t(), D).transpose(1, 2)
    torch.testing.assert_close(fftconv_blc(u, k, D), want, rtol=0, atol=1e-11)
    # the hand-written real-FFT backward against numerical derivatives
    assert torch.autograd.gradcheck(lambda a, b, c: fftconv_blc(a, b, c), (u, k, D))
    # a precomputed spectrum gives the same output
    k_f = torch.fft.rfft(k[:L].detach().t(), n=fft_length(2 * L - 1))
    torch.testing.assert_close(fftconv_blc(u, None, D, k_f), want, rtol=0, atol=1e-11)


# ---------------------------------------------------------------------------------------------------- filter
@pytest.mark.parametrize("L", [1, 3, 31, 97])
def test_filter_shapes_at_odd_lengths(L):
    filt = HyenaFilter(12, HyenaConfig(filter_order=8), max_length=97)
    k = filt.filter(L)
    assert k.shape == (L, 12)
    assert torch.isfinite(k).all()
    # the filter of a prefix is the prefix of the filter (positional features are fixed by max_length)
    torch.testing.assert_close(k, filt.filter(97)[:L], rtol=0, atol=1e-6)


def test_filter_longer_than_max_length_raises():
    filt = HyenaFilter(4, HyenaConfig(filter_order=8), max_length=20)
    with pytest.raises(ValueError, match="at most 20"):
        filt.filter(21)


def test_positional_features_match_complex_exponential():
    pe = PositionalEmbedding(emb_dim=7, max_length=33)
    z, t = pe(33)
    assert z.shape == (1, 33, 7) and t.shape == (1, 33, 1)
    n = torch.arange(33, dtype=torch.float64)
    f = torch.linspace(1e-4, 2, 3, dtype=torch.float64)
    w = 2 * torch.pi * n[:, None] / 33
    e = torch.exp(-1j * f[None] * w)  # (33, 3)
    torch.testing.assert_close(z[0, :, 0].double(), n / 32, rtol=0, atol=1e-6)
    torch.testing.assert_close(z[0, :, 1:4].double(), e.real, rtol=0, atol=1e-5)
    torch.testing.assert_close(z[0, :, 4:7].double(), e.imag, rtol=0, atol=1e-5)


def test_modulation_decays_and_shift_adds_a_floor():
    cfg = HyenaConfig(filter_order=8)
    filt = HyenaFilter(6, cfg, max_length=200)
    t = filt.pos_emb.t
    ones = torch.ones(1, 200, 6)
    window = filt.modulation(t, ones)[0]  # (L, C)
    assert torch.all(window[1:] <= window[:-1])  # decays along the sequence
    assert torch.allclose(window[0], torch.ones(6))
    # the fastest channel reaches the target (1e-2) at fast_decay_pct=0.3 of the length
    fast = window[:, -1]
    assert abs(float(fast[int(0.3 * 199)]) - 1e-2) < 2e-3
    filt2 = HyenaFilter(6, HyenaConfig(filter_order=8, shift=0.05), max_length=200)
    torch.testing.assert_close(filt2.modulation(t, ones), filt.modulation(t, ones) + 0.05)


def test_invalid_config_raises():
    with pytest.raises(ConfigError, match="emb_dim"):
        HyenaConfig(emb_dim=4)
    with pytest.raises(ConfigError, match="order"):
        HyenaConfig(order=1)


# ---------------------------------------------------------------------------------------------------- operator
def _naive_operator(op: HyenaOperator, x: torch.Tensor) -> torch.Tensor:
    """The operator written out position by position (order 2) with the direct convolution."""
    d = op.d_model
    B, L, _ = x.shape
    u = op.in_proj(x)  # (B, L, 3d)
    w = op.short_filter.weight[:, 0]  # (3d, K)
    K = w.shape[1]
    uc = torch.zeros_like(u)
    for t in range(L):
        acc = op.short_filter.bias.clone().expand(B, -1)
        for j in range(K):  # tap j multiplies u[t - (K-1) + j]
            s = t - (K - 1) + j
            if s >= 0:
                acc = acc + w[:, j] * u[:, s]
        uc[:, t] = acc
    x0, x1, v = uc[..., :d], uc[..., d:2 * d], uc[..., 2 * d:]
    k = op.filter_fn.filter(L)  # (L, d)
    D = op.filter_fn.bias
    z = (v * x1).transpose(1, 2)  # (B, d, L)
    y = causal_conv_direct(z, k.t(), D).transpose(1, 2)
    return op.out_proj(y * x0)


def test_operator_matches_naive_order2():
    op = _operator(order=2, max_length=40)
    x = torch.randn(2, 23, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(op(x), _naive_operator(op, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("order", [2, 3])
def test_operator_is_causal(order):
    op = _operator(order=order)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 30, 8, generator=g, dtype=torch.float64)
    t = 17
    x2 = x.clone()
    x2[:, t] += torch.randn(2, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y, y2 = op(x), op(x2)
    torch.testing.assert_close(y2[:, :t], y[:, :t], rtol=0, atol=1e-12)
    assert (y2[:, t:] - y[:, t:]).abs().amax(dim=-1).min() > 1e-8  # the change reaches every later position


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("chunks", [[1] * 21, [6, 1, 1, 9, 1, 3], [21]])
def test_cached_steps_reproduce_full_forward(order, chunks):
    op = _operator(order=order, max_length=32, seed=order)
    x = torch.randn(3, sum(chunks), 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = op(x)
        state = op.allocate_state(3, 32, dtype=torch.float64)
        outs, i = [], 0
        for T in chunks:
            outs.append(op(x[:, i:i + T], state))
            i += T
    assert state.pos == sum(chunks)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=0, atol=1e-10)


def test_cached_steps_float32_and_short_filter_kernel_5():
    op = _operator(order=2, max_length=64, dtype=torch.float32, short_filter_order=5)
    x = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = op(x)
        state = op.allocate_state(2, 64)
        steps = torch.cat([op(x[:, i:i + 1], state) for i in range(40)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4 * float(full.abs().max()))


def test_cache_state_is_batch_first_and_survives_cache_operations():
    op = _operator(order=2, max_length=32)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 20, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        full = op(x)
        state = op.allocate_state(2, 32, dtype=torch.float64)
        for v in state.row_tensors().values():
            assert v.shape[0] == 2
        op(x[:, :12], state)
        cache = InferenceCache([state], max_length=32)
        assert cache.seqlen_offset == 12  # read from the state's one position counter
        # row 1, twice; then continue both copies with row 1's tokens
        rep = cache.index_select(torch.tensor([1])).repeat_interleave(2)
        clone = cache.clone()
        cont = op(x[[1, 1], 12:], rep.states[0])
        torch.testing.assert_close(cont, full[[1, 1], 12:], rtol=0, atol=1e-10)
        # the clone is independent of the original: continuing it leaves `state` untouched
        before = state.hist.clone()
        op(x[:, 12:], clone.states[0])
        assert torch.equal(state.hist, before) and state.pos == 12


def test_cached_filter_follows_weight_updates():
    op = _operator(order=2, max_length=32)
    x = torch.randn(1, 10, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        state = op.allocate_state(1, 32, dtype=torch.float64)
        op(x[:, :5], state)
        op.filter_fn.implicit_filter[0].weight.mul_(1.7)  # in-place update (as an optimiser step would do)
        stepped = op(x[:, 5:6], state)
        full = op(x[:, :6])
    torch.testing.assert_close(stepped[:, 0], full[:, 5], rtol=0, atol=1e-10)


def test_eval_filter_memo_follows_weights_length_and_mode():
    op = _operator(order=2, max_length=48)
    x = torch.randn(2, 30, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        first = op(x)
        assert op._spectra_memo is not None
        torch.testing.assert_close(op(x), first, rtol=0, atol=0)  # reused
        torch.testing.assert_close(op(x[:, :17]), first[:, :17], rtol=0, atol=1e-12)  # another length
        op.filter_fn.implicit_filter[2].weight.mul_(0.5)  # an in-place update invalidates it
        changed = op(x)
    torch.testing.assert_close(changed, _naive_operator(op, x), rtol=0, atol=1e-10)
    assert (changed - first).abs().max() > 1e-6
    op.train()  # training regenerates the filter with autograd
    y = op(x)
    assert y.requires_grad
    torch.testing.assert_close(y, changed, rtol=0, atol=1e-12)


def test_too_long_inputs_raise():
    op = _operator(max_length=16)
    with pytest.raises(ValueError, match="longer"):
        op(torch.zeros(1, 17, 8, dtype=torch.float64))
    state = op.allocate_state(1, 16, dtype=torch.float64)
    op(torch.zeros(1, 16, 8, dtype=torch.float64), state)
    with pytest.raises(ValueError, match="holds 16"):
        op(torch.zeros(1, 1, 8, dtype=torch.float64), state)


def test_gradients_reach_the_implicit_filter():
    op = _operator(order=2, dtype=torch.float32).train()
    x = torch.randn(2, 20, 8)
    op(x).pow(2).mean().backward()
    for name in ("in_proj.weight", "short_filter.weight", "filter_fn.implicit_filter.0.weight",
                 "filter_fn.implicit_filter.1.freq", "filter_fn.bias", "out_proj.weight"):
        grad = op.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_131k_forward_and_last_cached_step_agree():
    # the full forward at 131,072 tokens runs through the FFT (no L x L tensor); the direct O(L) sum of a
    # cached step at the last position gives the same output
    L = 131072
    op = HyenaOperator(4, config=HyenaConfig(filter_order=8, num_inner_mlps=1), max_length=L)
    _randomize(op, 10).eval()
    x = torch.randn(1, L, 4, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        full = op(x)
        state = op.allocate_state(1, L)
        op(x[:, : L - 1], state)
        last = op(x[:, L - 1:], state)
    assert full.shape == (1, L, 4) and torch.isfinite(full).all()
    torch.testing.assert_close(last[:, 0], full[:, -1], rtol=1e-3, atol=1e-3 * float(full[:, -1].abs().max()))


@pytest.mark.parametrize("order,B,K", [(2, 2, 3), (3, 1, 5), (2, 3, 1)])
def test_blockwise_eval_forward_matches_the_autograd_path_across_block_edges(monkeypatch, order, B, K):
    # tiny blocks and channel groups so that the no-autograd forward crosses many position blocks (the short
    # convolution continues from the previous block) and channel groups of the long convolution
    import dnalm.models.hyena as hyena

    monkeypatch.setattr(hyena, "BLOCK_ROWS", 7)
    monkeypatch.setattr(hyena, "FFT_GROUP_BYTES", 3 * B * 64 * 8)  # 3 channels per group at n = 64
    op = _operator(order=order, max_length=40, short_filter_order=K)
    x = torch.randn(B, 29, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        got = op(x)
    want = op(x)  # autograd on: the whole-tensor path
    assert want.requires_grad and not got.requires_grad
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-12)
    if order == 2 and K == 3:
        torch.testing.assert_close(got, _naive_operator(op, x), rtol=0, atol=1e-10)

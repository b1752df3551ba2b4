"""Shared layers: the short causal depthwise convolution against nn.Conv1d, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from dnalm.models.layers import causal_depthwise_conv


def _reference(x, weight, bias, prefix):
    """nn.Conv1d's depthwise convolution on [prefix | x] padded on the left, first outputs cut."""
    k = weight.shape[1]
    full = x if prefix is None else torch.cat([prefix, x], 1)
    pad = k - 1 if prefix is None else 0
    y = F.conv1d(F.pad(full.transpose(1, 2), (pad, 0)), weight[:, None], bias, groups=x.shape[-1])
    return y.transpose(1, 2)[:, -x.shape[1]:]


@pytest.mark.parametrize("length,k,with_prefix,with_bias", [(17, 3, False, True), (2, 4, True, True),
                                                               (9, 4, True, False), (1, 3, False, True)])
def test_causal_depthwise_conv_values_and_gradients(length, k, with_prefix, with_bias):
    g = torch.Generator().manual_seed(length * k)
    x = torch.randn(2, length, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True) if with_bias else None
    prefix = torch.randn(2, k - 1, 6, dtype=torch.float64, generator=g) if with_prefix else None
    torch.testing.assert_close(causal_depthwise_conv(x, w, b, prefix), _reference(x, w, b, prefix), rtol=0, atol=1e-12)
    inputs = (x, w) + ((b,) if with_bias else ())
    assert torch.autograd.gradcheck(lambda *a: causal_depthwise_conv(a[0], a[1], a[2] if with_bias else None, prefix),
                                    inputs)
    with torch.no_grad():  # the no-autograd path gives the same numbers
        torch.testing.assert_close(causal_depthwise_conv(x, w, b, prefix), _reference(x, w, b, prefix), rtol=0,
                                   atol=1e-12)


@pytest.mark.parametrize("kind", ["plain", "gated"])
def test_mlp_in_row_blocks_without_autograd_equals_the_whole_tensor(monkeypatch, kind):
    import dnalm.models.layers as layers

    monkeypatch.setattr(layers, "MLP_BLOCK_ROWS", 5)
    torch.manual_seed(0)
    mlp = (layers.Mlp(6, 24) if kind == "plain" else layers.GatedMlp(6, 24)).double()
    x = torch.randn(3, 13, 6, dtype=torch.float64)
    want = mlp(x)  # autograd on: one whole-tensor pass
    with torch.no_grad():
        got = mlp(x)  # 39 rows in blocks of 5
    if kind == "plain":
        torch.testing.assert_close(want, mlp.fc2(F.gelu(mlp.fc1(x), approximate="tanh")), rtol=0, atol=0)
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-14)
    with torch.no_grad():
        torch.testing.assert_close(mlp(x[:, :1]), want[:, :1].detach(), rtol=0, atol=1e-14)  # one block

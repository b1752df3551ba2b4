"""The mixer state protocol: typed states, one position counter, one allocate_state signature, ConfigError."""

import inspect

import pytest
import torch

from dnalm.errors import ConfigError
from dnalm.models.attention import Attention, AttentionConfig, AttentionState
from dnalm.models.cache import InferenceCache, MixerState
from dnalm.models.hyena import HyenaConfig, HyenaOperator, HyenaState
from dnalm.models.mamba2 import Mamba2, Mamba2Config, Mamba2State


def _mixers():
    torch.manual_seed(0)
    return [
        (Mamba2(16, config=Mamba2Config(d_state=8, headdim=8, chunk_size=4)), Mamba2State),
        (HyenaOperator(16, config=HyenaConfig(filter_order=8), max_length=32), HyenaState),
        (Attention(16, config=AttentionConfig(n_heads=2, rotary=True)), AttentionState),
    ]


def test_one_allocate_state_signature_and_defaults():
    signatures = {
        tuple((p.name, p.default) for p in inspect.signature(m.allocate_state).parameters.values()) for m, _ in _mixers()
    }
    empty = inspect.Parameter.empty
    assert signatures == {(("batch_size", empty), ("max_length", empty), ("device", None), ("dtype", None))}
    for mixer, kind in _mixers():
        mixer.to(torch.float64)
        st = mixer.allocate_state(3, 20)
        assert type(st) is kind and isinstance(st, MixerState) and st.pos == 0
        for name, t in st.row_tensors().items():
            assert t.shape[0] == 3 and t.device == mixer.out_proj.weight.device, name
            assert t.dtype == torch.float64, name  # the parameters' dtype by default
        assert st.batch_size == 3


def test_every_mixer_advances_its_one_position_counter_and_the_cache_reads_it():
    x = torch.randn(2, 11, 16, generator=torch.Generator().manual_seed(1))
    mixers = [m.eval() for m, _ in _mixers()]
    cache = InferenceCache([m.allocate_state(2, 20) for m in mixers], max_length=20)
    with torch.no_grad():
        for m, st in zip(mixers, cache.states):
            full = m(x)
            parts = [m(x[:, :6], st), m(x[:, 6:7], st), m(x[:, 7:], st)]
            torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-4, atol=1e-5)
            assert st.pos == 11
    assert cache.seqlen_offset == 11
    both = InferenceCache.cat([cache, cache.index_select(torch.tensor([1]))])
    assert both.batch_size == 3 and both.seqlen_offset == 11
    assert all(type(a) is type(b) for a, b in zip(both.states, cache.states))
    cache.states[0].pos += 1  # layers that disagree are a bug, reported rather than hidden
    with pytest.raises(RuntimeError, match="disagree"):
        _ = cache.seqlen_offset


def test_hyena_filter_memo_lives_in_the_state_and_is_shared_by_rows():
    op = HyenaOperator(8, config=HyenaConfig(filter_order=8), max_length=32).eval()
    st = op.allocate_state(2, 32)
    with torch.no_grad():
        op(torch.randn(2, 5, 8), st)
    assert st.filters is not None and "filters" not in st.row_tensors()
    rows = InferenceCache([st]).repeat_interleave(3).states[0]
    assert rows.filters is st.filters and rows.hist.shape[0] == 6


@pytest.mark.parametrize("config", [dict(n_heads=3), dict(n_heads=4, n_kv_heads=3)])
def test_attention_configuration_problems_are_config_errors(config):
    with pytest.raises(ConfigError, match="divisible"):
        Attention(16, config=AttentionConfig(**config))

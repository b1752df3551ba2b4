"""The LM stack over every mixer: cached decoding == full forward, causality, persistence, generation."""

import dataclasses
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

import dnalm
from dnalm.errors import ConfigError, DnalmError
from dnalm.models import PRESETS, LMConfig, build_model, load_model, preset_config

# small versions of every family: (preset, overrides)
SMALL = {
    "transformer": ("transformer-tiny", dict(d_model=32, n_layer=2, attention=dict(n_heads=4, n_kv_heads=2, rotary=True))),
    "mamba2": ("mamba2-tiny", dict(d_model=32, n_layer=2, mamba2=dict(d_state=8, headdim=16, chunk_size=16))),
    "hybrid": (
        "hybridna-tiny",
        dict(d_model=32, n_layer=3, attn_layer_idx=[1], mamba2=dict(d_state=8, headdim=16, chunk_size=16),
             attention=dict(n_heads=2)),
    ),
    "hyena": ("hyenadna-tiny", dict(d_model=32, n_layer=2, d_intermediate=64, max_length=256)),
}


def small_model(name, seed=0, **kw):
    preset, over = SMALL[name]
    torch.manual_seed(seed)
    m = build_model(preset, **{**over, **kw})
    return m.eval()


def ids(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(7, 12, (b, t), generator=g)


def decode_in_pieces(m, x, cut1, cut2, max_length=64):
    """Logits of ``x`` through a fresh cache: prefill ``[0, cut1)`` and ``[cut1, cut2)``, then one token at a time."""
    c = m.allocate_cache(x.shape[0], max_length)
    parts = [m(x[:, :cut1], cache=c).logits, m(x[:, cut1:cut2], cache=c).logits]
    parts += [m(x[:, i : i + 1], cache=c).logits for i in range(cut2, x.shape[1])]
    return torch.cat(parts, 1), c


@pytest.mark.parametrize("name", list(SMALL))
def test_cached_decoding_equals_full_forward(name):
    m = small_model(name)
    x = ids(2, 45)
    with torch.no_grad():
        full = m(x).logits
        cached, c = decode_in_pieces(m, x, 17, 30)
    assert c.seqlen_offset == 45
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(SMALL))
def test_causality(name):
    m = small_model(name)
    x = ids(1, 40)
    t = 23
    y = x.clone()
    y[0, t] = 7 if x[0, t] != 7 else 8
    with torch.no_grad():
        a, b = m(x).logits, m(y).logits
    torch.testing.assert_close(a[:, :t], b[:, :t], atol=1e-5, rtol=1e-5)
    assert (a[:, t:] - b[:, t:]).abs().max() > 1e-6


@pytest.mark.parametrize("name", list(SMALL))
def test_save_load_round_trip_is_exact(name, tmp_path):
    m = small_model(name, seed=3)
    m.tokenizer.add_condition_tokens(["<a=1>"])
    m.save_pretrained(tmp_path / "m")
    m2 = load_model(tmp_path / "m")
    assert m2.config == m.config
    assert m2.tokenizer.vocab == m.tokenizer.vocab
    sd1, sd2 = m.state_dict(), m2.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    x = ids(2, 30)
    with torch.no_grad():
        assert torch.equal(m(x).logits, m2(x).logits)


@pytest.mark.parametrize("name", list(SMALL))
def test_loss_is_next_token_cross_entropy(name):
    m = small_model(name)
    x = ids(2, 20)
    x[1, 15:] = dnalm.DNATokenizer.pad_token_id
    out = m(x, labels=x)
    logits = out.logits[:, :-1].reshape(-1, m.config.vocab_size)
    target = x[:, 1:].reshape(-1)
    keep = target != 4
    ref = F.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["transformer", "hybrid"])
def test_gradient_checkpointing_gives_same_gradients(name):
    x = ids(2, 33)
    grads = []
    for ckpt in (False, True):
        m = small_model(name, seed=1, gradient_checkpointing=ckpt).train()
        m(x, labels=x).loss.backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(SMALL))
def test_bf16_autocast_runs(name):
    m = small_model(name).train()
    x = ids(2, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x, labels=x)
    assert torch.isfinite(out.loss)
    out.loss.backward()


@pytest.mark.parametrize("name", list(SMALL))
def test_generation_cached_equals_uncached_and_is_seeded(name):
    m = small_model(name)
    prompt = ids(2, 12)
    a = m.generate(prompt, 20, seed=5, top_k=3)
    b = m.generate(prompt, 20, seed=5, top_k=3, use_cache=False)
    c = m.generate(prompt, 20, seed=6, top_k=3)
    assert a.shape == (2, 32) and torch.equal(a[:, :12], prompt)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    only_bases = m.generate(prompt, 30, seed=1, allowed_token_ids=[7, 8, 9, 10])
    assert ((only_bases[:, 12:] >= 7) & (only_bases[:, 12:] <= 10)).all()
    greedy = m.generate(prompt, 5, temperature=0)
    with torch.no_grad():
        first = m(prompt).logits[:, -1].argmax(-1)
    assert torch.equal(greedy[:, 12], first)


def test_logprobs_of_generated_tokens():
    m = small_model("transformer")
    prompt = ids(1, 5)
    out, lp = m.generate(prompt, 6, seed=0, return_logprobs=True)
    with torch.no_grad():
        logp = torch.log_softmax(m(out).logits.float(), -1)
    ref = logp[0, 4:-1].gather(-1, out[0, 5:, None])[:, 0]
    torch.testing.assert_close(lp[0], ref, atol=1e-5, rtol=1e-5)


def test_top_p_keeps_the_nucleus():
    from dnalm.models import sample_next

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, top_p=0.7, generator=g)) for _ in range(200)}
    assert draws == {0, 1}
    draws = {int(sample_next(logits, top_k=1, generator=g)) for _ in range(20)}
    assert draws == {0}


def test_num_last_tokens_and_embed():
    m = small_model("hybrid")
    x = ids(2, 25)
    with torch.no_grad():
        full = m(x, return_hidden=True)
        last = m(x, num_last_tokens=3).logits
        emb = m.embed(x)
    torch.testing.assert_close(last, full.logits[:, -3:])
    assert emb.shape == (2, 25, 32)
    torch.testing.assert_close(emb, full.hidden_states)


def test_layer_patterns_and_presets():
    cfg = preset_config("hybridna-300m")
    assert cfg.attn_layer_idx == [4, 12, 20] and cfg.layer_pattern.count("attention") == 3
    assert preset_config("hybridna-tiny").layer_pattern == ["mamba2"] * 4 + ["attention"] + ["mamba2"] * 3
    assert set(preset_config("transformer-tiny").layer_pattern) == {"attention"}
    for name in PRESETS:
        with torch.device("meta"):
            m = build_model(name)
        assert m.num_parameters() > 0
    with torch.device("meta"):
        big = build_model("hybridna-300m")
    assert 250e6 < big.num_parameters() < 400e6


def test_config_errors():
    with pytest.raises(ConfigError, match="n_layers: unknown key; did you mean 'n_layer'"):
        LMConfig.from_dict({"d_model": 8, "n_layers": 2})
    with pytest.raises(ConfigError, match="mixer"):
        LMConfig(mixer="lstm")
    with pytest.raises(ConfigError, match="attn_layer_idx"):
        LMConfig(n_layer=4, attn_layer_idx=[4])
    with pytest.raises(ConfigError, match="unknown model preset"):
        build_model("hyenadna-huge")
    with pytest.raises(ConfigError, match="attention.n_head: unknown key; did you mean 'attention.n_heads'"):
        build_model("transformer-tiny", attention=dict(n_head=4))


def test_too_long_input_is_an_error():
    m = small_model("hyena")
    with pytest.raises(DnalmError, match="maximum length"):
        m(ids(1, 300))


def test_resize_token_embeddings_keeps_old_rows():
    m = small_model("transformer")
    old = m.backbone.embeddings.word_embeddings.weight.detach().clone()
    m.resize_token_embeddings(20)
    w = m.backbone.embeddings.word_embeddings.weight
    assert w.shape[0] == 24 and torch.equal(w[:16], old)
    assert m.lm_head.weight is w
    assert m(ids(1, 5)).logits.shape[-1] == 20


def test_info_command(tmp_path, capsys):
    from dnalm.cli import main

    m = small_model("hybrid")
    m.save_pretrained(tmp_path / "m")
    assert main(["info", "--model", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "MAM" in out and f"{m.num_parameters():,}" in out
    assert main(["info", "--model", "hybridna-300m"]) == 0
    assert main(["info", "--model", "nope"]) == 2
    assert "neither a model directory nor a preset" in capsys.readouterr().err


# ------------------------------------------------------------------------------- condition broadcast (generators)


def conditional(name, seed=0):
    """A small model with two condition tokens (ids 12, 13) broadcast to every later position."""
    m = small_model(name, seed=seed)
    m.tokenizer.add_condition_tokens(["<c=0>", "<c=1>"])
    m.resize_token_embeddings(len(m.tokenizer))
    m.config.condition_min_id = 12
    return m


def cond_ids(b, t, seed=0):
    x = ids(b, t, seed)
    x[:, 0] = dnalm.DNATokenizer.bos_token_id
    x[:, 1] = torch.arange(b) % 2 + 12  # row i: condition <c=i % 2>
    return x


@pytest.mark.parametrize("name", ["hybrid", "hyena"])
def test_condition_broadcast_equals_loop_reference(name):
    # reference: add sum_{s <= t, x_s a condition token} E[x_s] position by position, then run the blocks
    m = conditional(name).double()
    x = cond_ids(2, 30)
    x[0, 9] = 13  # a second condition token mid-sequence also counts from its position on
    with torch.no_grad():
        emb = m.backbone.embeddings(x)
        ref = emb.clone()
        for t in range(x.shape[1]):
            for s in range(t + 1):
                ref[:, t] += emb[:, s] * (x[:, s] >= 12)[:, None]
        h = ref
        for layer in m.backbone.layers:
            h = layer(h)
        ref_logits = m.lm_head(m.backbone.final_norm(h))[..., : m.config.vocab_size]
        torch.testing.assert_close(m(x).logits, ref_logits, atol=1e-10, rtol=1e-10)
        m.config.condition_min_id = 0  # off: the prefix token alone
        assert (m(x).logits - ref_logits).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(SMALL))
def test_condition_broadcast_cached_decoding_and_batch_ops(name):
    m = conditional(name)
    x = cond_ids(2, 40)
    with torch.no_grad():
        full = m(x).logits
        cached, _ = decode_in_pieces(m, x, 2, 20)
        torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
        # the running condition sum follows rows through the cache's batch operations (sampling, beam search)
        c = m.allocate_cache(2, 64)
        m(x[:, :20], cache=c)
        swapped = c.index_select(torch.tensor([1, 0]))
        step = m(x[[1, 0], 20:21], cache=swapped).logits[:, -1]
        torch.testing.assert_close(step, full[[1, 0], 20], atol=1e-4, rtol=1e-4)
        c = m.allocate_cache(1, 64)
        m(x[:1, :20], cache=c)
        rep = c.repeat_interleave(3)
        step = m(x[[0, 0, 0], 20:21], cache=rep).logits[:, -1]
        torch.testing.assert_close(step, full[[0, 0, 0], 20], atol=1e-4, rtol=1e-4)


def test_condition_broadcast_round_trip_and_refusals(tmp_path):
    m = conditional("hybrid", seed=4)
    m.save_pretrained(tmp_path / "g")
    m2 = load_model(tmp_path / "g")
    assert m2.config.condition_min_id == 12
    x = cond_ids(2, 20)
    with torch.no_grad():
        assert torch.equal(m(x).logits, m2(x).logits)
    with pytest.raises(ConfigError, match="causal"):
        LMConfig(kind="masked", condition_min_id=12)
    with pytest.raises(ConfigError, match="condition_min_id"):
        LMConfig(condition_min_id=-1)

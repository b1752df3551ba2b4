"""Models people bring: mamba_ssm hybrids and Caduceus against their published references, round trips, caching."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from dnalm.errors import DnalmError, InputError
from dnalm.models import load_model
from dnalm.models.importers import detect_format, import_model, resolve_model
from dnalm.models.mamba_ssm_format import export_mamba_ssm

REF_DIR = Path(__file__).parent / "reference"


def _load(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REF_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


mref = _load("mamba_ssm_reference")
cref = _load("caduceus_reference")

HYBRID = {
    "d_model": 32, "d_intermediate": 64, "n_layer": 3, "vocab_size": 12, "pad_vocab_size_multiple": 8,
    "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 16, "chunk_size": 8, "d_conv": 4},
    "attn_layer_idx": [1],
    "attn_cfg": {"num_heads": 4, "num_heads_kv": 2, "head_dim": 8, "rotary_emb_dim": 4, "qkv_proj_bias": False,
                 "out_proj_bias": True, "d_conv": 3, "causal": True},
    "rms_norm": True, "residual_in_fp32": False, "fused_add_norm": True, "tie_embeddings": True,
}
MAMBA1 = {
    "d_model": 24, "d_intermediate": 0, "n_layer": 2, "vocab_size": 12, "pad_vocab_size_multiple": 8,
    "ssm_cfg": {"d_state": 8, "dt_rank": 3}, "rms_norm": False, "tie_embeddings": False, "residual_in_fp32": False,
}
# residual_in_fp32 only rounds the residual stream to float32; False keeps the float64 comparison exact


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Random values in every parameter (norm weights and biases too), so no tensor is at its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def write_mamba_ssm(folder: Path, config: dict, seed: int = 0, safetensors: bool = False):
    """A MambaLMHeadModel on random weights, saved the way mamba_ssm's save_pretrained does."""
    torch.manual_seed(seed)
    ref = mref.MambaLMHeadModel(mref.MambaConfig(**config))  # float32 weights, as published checkpoints
    _perturb(ref, seed)
    folder.mkdir(parents=True, exist_ok=True)
    if safetensors:
        save_model(ref, str(folder / "model.safetensors"))
    else:
        torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config))
    return ref.double().eval()  # compared in float64 against the imported model, also made float64


def write_caduceus(folder: Path, rcps: bool, fused: bool, strategy: str = "add", seed: int = 0):
    """A CaduceusForMaskedLM on random weights, saved as safetensors (shared tensors once, as HF does)."""
    config = {
        "model_type": "caduceus", "d_model": 16, "n_layer": 2, "vocab_size": 12, "pad_vocab_size_multiple": 8,
        "ssm_cfg": {"d_state": 4, "d_conv": 4, "expand": 2, "dt_rank": "auto", "use_fast_path": True},
        "rms_norm": True, "fused_add_norm": fused, "residual_in_fp32": False, "norm_epsilon": 1e-5,
        "bidirectional": True, "bidirectional_strategy": strategy, "bidirectional_weight_tie": True, "rcps": rcps,
        "complement_map": {str(i): c for i, c in enumerate([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11])},
    }
    torch.manual_seed(seed)
    ref = cref.CaduceusForMaskedLM(cref.CaduceusConfig(**json.loads(json.dumps(config))))
    _perturb(ref, seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(ref, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return ref.double().eval()


def _ids(batch=2, length=21, seed=1):
    return torch.randint(7, 12, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------- mamba_ssm


@pytest.mark.parametrize("config,safetensors", [(HYBRID, False), (MAMBA1, True)], ids=["mamba2-attn", "mamba1"])
def test_mamba_ssm_import_reproduces_reference(tmp_path, config, safetensors):
    ref = write_mamba_ssm(tmp_path / "src", config, safetensors=safetensors)
    assert detect_format(tmp_path / "src") == "mamba_ssm"
    model = import_model(tmp_path / "src").double()
    assert model.import_info["format"] == "mamba_ssm"
    x = _ids()
    with torch.no_grad():
        ref_logits, ref_hidden = ref(x)
        out = model(x, return_hidden=True)
    torch.testing.assert_close(out.hidden_states, ref_hidden, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.logits, ref_logits[..., :12], rtol=1e-9, atol=1e-9)


def test_hybrid_cached_decoding_equals_full_forward(tmp_path):
    """Attention with a q/k/v conv and partial rotary, and Mamba2, continue from their states exactly."""
    write_mamba_ssm(tmp_path / "src", HYBRID)
    model = import_model(tmp_path / "src").double()
    x = _ids(2, 13)
    with torch.no_grad():
        full = model(x).logits
        cache = model.allocate_cache(2, 13)
        parts = [model(x[:, :5], cache=cache).logits] + [model(x[:, t : t + 1], cache=cache).logits
                                                          for t in range(5, 13)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-9, atol=1e-9)


def test_mamba_ssm_round_trip_is_exact(tmp_path):
    """import -> save -> load -> export -> import gives the same tensors and logits, and mamba_ssm loads the export."""
    write_mamba_ssm(tmp_path / "src", HYBRID)
    first = import_model(tmp_path / "src", out_dir=tmp_path / "dnalm")
    loaded = load_model(tmp_path / "dnalm")
    export_mamba_ssm(loaded, tmp_path / "export")
    exported_cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    ref = mref.MambaLMHeadModel(mref.MambaConfig(**exported_cfg))
    ref.load_state_dict(torch.load(tmp_path / "export" / "pytorch_model.bin", weights_only=True), strict=True)
    again = import_model(tmp_path / "export")
    sd1, sd2 = first.state_dict(), again.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    x = _ids()
    with torch.no_grad():
        torch.testing.assert_close(ref.eval()(x)[0][..., :12], first(x).logits, rtol=1e-5, atol=1e-5)


def test_export_pads_gated_mlp_for_mamba_ssm(tmp_path):
    """mamba_ssm rounds GatedMLP widths up to 128; the export zero-pads, which changes nothing."""
    from dnalm.models import build_model

    torch.manual_seed(0)
    model = build_model({"mixer": "mamba", "d_model": 16, "n_layer": 2, "d_intermediate": 40, "mlp": "gated",
                             "mamba": {"d_state": 4}}).double().eval()
    export_mamba_ssm(model, tmp_path / "export")
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["d_intermediate"] == 128 and cfg["ssm_cfg"]["layer"] == "Mamba1"
    ref = mref.MambaLMHeadModel(mref.MambaConfig(**{**cfg, "residual_in_fp32": False})).double()
    ref.load_state_dict(torch.load(tmp_path / "export" / "pytorch_model.bin", weights_only=True), strict=True)
    x = _ids()
    with torch.no_grad():
        torch.testing.assert_close(ref.eval()(x)[0][..., :12], model(x).logits, rtol=1e-9, atol=1e-9)


def test_export_refuses_what_mamba_ssm_cannot_express():
    from dnalm.models import build_model

    with pytest.raises(InputError, match="hyena"):
        export_mamba_ssm(build_model("hyenadna-tiny"), "/nonexistent/never-written")


def test_mamba_ssm_unsupported_settings_are_named(tmp_path):
    bad = {**HYBRID, "attn_cfg": {**HYBRID["attn_cfg"], "causal": False}}
    write_mamba_ssm(tmp_path / "src", HYBRID)
    (tmp_path / "src" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="causal"):
        import_model(tmp_path / "src")


# ---------------------------------------------------------------------------------------------------- Caduceus


@pytest.mark.parametrize("rcps,fused,strategy", [(True, True, "add"), (True, False, "add"),
                                                 (False, True, "ew_multiply")])
def test_caduceus_import_reproduces_reference(tmp_path, rcps, fused, strategy):
    ref = write_caduceus(tmp_path / "src", rcps, fused, strategy)
    assert detect_format(tmp_path / "src") == "caduceus"
    model = import_model(tmp_path / "src").double()
    assert model.is_bidirectional and model.hidden_size == (32 if rcps else 16)
    x = _ids()
    with torch.no_grad():
        ref_logits, ref_hidden = ref(x)
        out = model(x, return_hidden=True)
    torch.testing.assert_close(out.hidden_states, ref_hidden, rtol=1e-9, atol=1e-9)
    # the published head returns logits.float()
    torch.testing.assert_close(out.logits.float(), ref_logits[..., :12], rtol=1e-6, atol=1e-6)


def test_caduceus_round_trip_is_exact(tmp_path):
    write_caduceus(tmp_path / "src", rcps=True, fused=True)
    first = import_model(tmp_path / "src", out_dir=tmp_path / "dnalm")
    loaded = load_model(tmp_path / "dnalm")
    x = _ids()
    with torch.no_grad():
        assert torch.equal(first(x).logits, loaded(x).logits)


def test_rcps_model_is_rc_equivariant(tmp_path):
    """Embedding of the reverse complement == the embedding flipped along length and channels; MLM logits of the
    reverse complement == the logits flipped along length with complementary tokens."""
    write_caduceus(tmp_path / "src", rcps=True, fused=True)
    model = import_model(tmp_path / "src").double()
    comp = torch.tensor([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11])
    x = _ids(3, 17)
    x_rc = comp[x.flip(1)]
    with torch.no_grad():
        e, e_rc = model.embed(x), model.embed(x_rc)
        lg, lg_rc = model(x).logits, model(x_rc).logits
    assert e.shape == (3, 17, 32)
    torch.testing.assert_close(e_rc, e.flip(1, 2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lg_rc, lg.flip(1)[..., comp], rtol=1e-10, atol=1e-10)
    assert not torch.allclose(e, e.flip(1, 2))  # the property is not trivially true


def test_bidirectional_model_refuses_to_generate(tmp_path):
    write_caduceus(tmp_path / "src", rcps=False, fused=True)
    model = import_model(tmp_path / "src")
    with pytest.raises(DnalmError, match="bidirectional"):
        model.generate(_ids(1, 5), 3)


def test_masked_lm_loss_counts_masked_positions_only(tmp_path):
    write_caduceus(tmp_path / "src", rcps=True, fused=True)
    model = import_model(tmp_path / "src")
    x = _ids(1, 10)
    labels = torch.full_like(x, -100)
    labels[0, 4] = x[0, 4]
    masked = x.clone()
    masked[0, 4] = 3  # [MASK]
    out = model(masked, labels=labels)
    expected = -torch.log_softmax(out.logits[0, 4].float(), -1)[x[0, 4]]
    torch.testing.assert_close(out.loss, expected)


# ---------------------------------------------------------------------------------------------------- --model hook


def test_model_flag_converts_on_the_fly_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("DNALM_CACHE", str(tmp_path / "cache"))
    write_caduceus(tmp_path / "src", rcps=True, fused=True)
    model = load_model(tmp_path / "src")  # what every --model goes through
    assert model.is_bidirectional
    folder = resolve_model(tmp_path / "src")
    assert folder.parent == tmp_path / "cache" / "imported" and (folder / "model.safetensors").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(tmp_path / "src") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not converted twice


def test_unrecognised_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DNALM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a dnalm model folder"):
        load_model(tmp_path / "junk")


def test_bidirectional_embed_ignores_right_padding(tmp_path):
    """Each row of a right-padded batch gets the states it has alone (the reversed pass must not read pads)."""
    write_caduceus(tmp_path / "src", rcps=True, fused=True)
    model = import_model(tmp_path / "src").double()
    a, b = _ids(1, 12, seed=3), _ids(1, 7, seed=4)
    batch = torch.full((2, 12), 4)
    batch[0], batch[1, :7] = a[0], b[0]
    mask = (batch != 4).long()
    with torch.no_grad():
        h = model.embed(batch, mask)
        torch.testing.assert_close(h[0], model.embed(a)[0])
        torch.testing.assert_close(h[1, :7], model.embed(b)[0])
        assert not torch.allclose(model.hidden(batch)[1, :7], h[1, :7])  # padding would have changed them
    assert torch.equal(h[1, 7:], torch.zeros_like(h[1, 7:]))


def test_caduceus_backbone_folder_imports(tmp_path):
    """A bare ``Caduceus`` (no LM head) folder: same hidden states; the head is tied to the embedding."""
    config = json.loads(json.dumps({
        "model_type": "caduceus", "d_model": 16, "n_layer": 2, "vocab_size": 12, "ssm_cfg": {"d_state": 4},
        "fused_add_norm": False, "residual_in_fp32": False, "rcps": False, "bidirectional_strategy": "add"}))
    torch.manual_seed(2)
    ref = cref.Caduceus(cref.CaduceusConfig(**config))
    _perturb(ref, 2)
    (tmp_path / "src").mkdir()
    save_model(ref, str(tmp_path / "src" / "model.safetensors"))
    (tmp_path / "src" / "config.json").write_text(json.dumps(config))
    model = import_model(tmp_path / "src").double()
    x = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x), ref.double()(x), rtol=1e-9, atol=1e-9)

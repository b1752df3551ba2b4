"""HyenaDNA checkpoint import: published layouts -> dnalm model with the reference model's outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import dnalm
from dnalm.cli import main as cli_main
from dnalm.errors import InputError
from dnalm.models.hyenadna_import import import_hyenadna

REF_PATH = Path(__file__).parent / "reference" / "hyenadna_standalone.py"


def _load_reference():
    spec = importlib.util.spec_from_file_location("hyenadna_reference_standalone", REF_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

CFG = {"d_model": 32, "n_layer": 2, "d_inner": 64, "vocab_size": 12, "l_max": 130, "filter_order": 16,
       "emb_dim": 5, "w": 10, "pad_vocab_size_multiple": 8}


def _ids(B=2, L=100, seed=0):
    return torch.randint(0, 12, (B, L), generator=torch.Generator().manual_seed(seed))


def _reference(shift: float):
    return ref.build_reference(
        d_model=CFG["d_model"], n_layer=CFG["n_layer"], d_inner=CFG["d_inner"], vocab_size=CFG["vocab_size"],
        l_max=CFG["l_max"], filter_order=CFG["filter_order"], emb_dim=CFG["emb_dim"], shift=shift, w=CFG["w"],
        pad_vocab_size_multiple=CFG["pad_vocab_size_multiple"], seed=1,
    )


def _original_config() -> dict:
    """config.json as published beside LongSafari/hyenadna-*-seqlen weights.ckpt."""
    return {
        "d_model": CFG["d_model"], "n_layer": CFG["n_layer"], "d_inner": CFG["d_inner"], "vocab_size": 12,
        "resid_dropout": 0.0, "embed_dropout": 0.1, "fused_mlp": False, "fused_dropout_add_ln": True,
        "residual_in_fp32": True, "pad_vocab_size_multiple": 8, "return_hidden_state": True,
        "layer": {"_name_": "hyena", "emb_dim": 5, "filter_order": CFG["filter_order"], "local_order": 3,
                  "l_max": CFG["l_max"], "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0},
    }


def _hf_config() -> dict:
    """config.json of the LongSafari -hf ports."""
    return {
        "model_type": "hyenadna", "architectures": ["HyenaDNAForCausalLM"], "d_model": CFG["d_model"],
        "n_layer": CFG["n_layer"], "d_inner": CFG["d_inner"], "vocab_size": 12, "max_seq_len": CFG["l_max"],
        "emb_dim": 5, "filter_order": CFG["filter_order"], "short_filter_order": 3, "hyena_order": 2,
        "activation_freq": 10, "num_inner_mlps": 2, "embed_dropout": 0.1, "hyena_dropout": 0.0,
        "hyena_filter_dropout": 0.0, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "pad_vocab_size_multiple": 8, "train_freq": True, "use_bias": True, "tie_word_embeddings": True,
    }


def _assert_same_logits(model, reference, ids):
    with torch.no_grad():
        want = reference(ids)[..., :12]
        got = model(ids).logits
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * float(want.abs().max()))
        # in float64 the two implementations agree to rounding
        got64 = model.double()(ids).logits
        want64 = reference.double()(ids)[..., :12]
        torch.testing.assert_close(got64, want64, rtol=0, atol=1e-5)
    model.float()
    reference.float()


class FakeDictConfig:
    """Pickled into hyper_parameters like an OmegaConf DictConfig (``_content`` holds the values)."""

    setstate_calls = 0

    def __init__(self, content):
        self._content = content

    def __setstate__(self, state):  # must never run during import
        FakeDictConfig.setstate_calls += 1
        self.__dict__.update(state)


# ---------------------------------------------------------------------------------------------------- layouts
def test_lightning_ckpt_with_hyper_parameters(tmp_path):
    reference = _reference(shift=0.0)  # the training code's window
    sd = {"model." + k: v for k, v in reference.state_dict().items()}
    sd["decoder.0.output_transform.weight"] = torch.zeros(2, CFG["d_model"])  # a task head: not part of the LM
    hparams = {"model": FakeDictConfig({"_name_": "lm", **_original_config()}), "trainer": {"devices": 1}}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": hparams, "epoch": 3, "optimizer_states": []}, path)
    calls = FakeDictConfig.setstate_calls
    with pytest.warns(UserWarning, match="decoder.0.output_transform.weight"):
        model = import_hyenadna(path)
    assert FakeDictConfig.setstate_calls == calls  # no code of the pickled class ran
    assert model.import_info["layout"] == "lightning"
    assert model.import_info["ignored_keys"] == ["decoder.0.output_transform.weight"]
    cfg = model.config
    assert (cfg.d_model, cfg.n_layer, cfg.d_intermediate, cfg.max_length) == (32, 2, 64, 130)
    assert cfg.mixer == "hyena" and cfg.mlp == "plain" and cfg.norm == "layernorm" and cfg.tie_embeddings
    assert cfg.padded_vocab_size == 16 and cfg.vocab_size == 12
    assert cfg.hyena.shift == 0.0 and cfg.hyena.activation_freq == 10.0  # from hyper_parameters
    _assert_same_logits(model, reference, _ids())


def test_lightning_ckpt_with_config_json_beside_it(tmp_path):
    reference = _reference(shift=0.0)
    torch.save({"state_dict": {"model." + k: v for k, v in reference.state_dict().items()}}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(_original_config()))
    model = import_hyenadna(tmp_path)  # a directory: finds weights.ckpt and config.json
    assert model.import_info["config_from"] == "config"
    _assert_same_logits(model, reference, _ids(seed=1))


def test_hf_layout_pytorch_model_bin(tmp_path):
    reference = _reference(shift=0.05)  # the -hf modelling code's window
    # HyenaDNAForCausalLM: the backbone under ``hyena.``, the (tied) head at the top level
    sd = {"hyena." + k: v for k, v in reference.state_dict().items() if k.startswith("backbone.")}
    sd["lm_head.weight"] = reference.lm_head.weight
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(_hf_config()))
    model = import_hyenadna(tmp_path / "pytorch_model.bin")
    assert model.import_info["layout"] == "hf" and model.config.hyena.shift == 0.05
    assert model.import_info["ignored_keys"] == [] and model.config.tie_embeddings
    _assert_same_logits(model, reference, _ids(seed=2))


def test_hf_layout_safetensors_with_merged_shared_tensors(tmp_path):
    # safetensors keeps one name per shared tensor: only implicit_filter.1.freq of each filter, no lm_head
    reference = _reference(shift=0.05)
    sd = {}
    for k, v in reference.state_dict().items():
        if k.endswith((".3.freq", ".5.freq")) or not k.startswith("backbone."):
            continue
        sd["hyena." + k] = v.clone().contiguous()
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(_hf_config()))
    model = import_hyenadna(tmp_path)
    sin3 = model.backbone.layers[1].mixer.filter_fn.implicit_filter[3].freq
    torch.testing.assert_close(sin3, reference.backbone.layers[1].mixer.filter_fn.implicit_filter[1].freq)
    _assert_same_logits(model, reference, _ids(seed=3))


def test_standalone_state_dict_in_memory_without_config():
    reference = _reference(shift=0.05)  # standalone_hyenadna.py's window
    model = import_hyenadna(reference.state_dict())
    assert model.import_info["layout"] == "standalone"
    assert model.import_info["config_from"] == "tensor shapes"
    _assert_same_logits(model, reference, _ids(seed=4))


def test_shift_is_load_bearing_and_overridable():
    reference = _reference(shift=0.0)
    sd = {"model." + k: v for k, v in reference.state_dict().items()}
    wrong = import_hyenadna({"state_dict": sd}, config_overrides={"hyena": {"shift": 0.05}})
    ids = _ids(seed=5)
    with torch.no_grad():
        diff = (wrong(ids).logits - reference(ids)[..., :12]).abs().max()
    assert diff > 1e-2
    right = import_hyenadna({"state_dict": sd})
    _assert_same_logits(right, reference, ids)


def test_imported_model_cached_decoding_matches_full_forward():
    reference = _reference(shift=0.0)
    model = import_hyenadna({"state_dict": {"model." + k: v for k, v in reference.state_dict().items()}})
    ids = _ids(B=2, L=40, seed=6)
    with torch.no_grad():
        full = model(ids).logits
        cache = model.allocate_cache(2, 40)
        first = model(ids[:, :25], cache=cache).logits
        steps = [model(ids[:, t:t + 1], cache=cache).logits for t in range(25, 40)]
    got = torch.cat([first] + steps, 1)
    torch.testing.assert_close(got, full, rtol=0, atol=1e-4 * float(full.abs().max()))


# ---------------------------------------------------------------------------------------------------- errors
def test_config_that_contradicts_the_weights_is_an_error(tmp_path):
    reference = _reference(shift=0.0)
    torch.save({"state_dict": {"model." + k: v for k, v in reference.state_dict().items()}}, tmp_path / "w.ckpt")
    bad = _original_config()
    bad["d_model"] = 64
    with pytest.raises(InputError, match="d_model=64"):
        import_hyenadna(tmp_path / "w.ckpt", hyenadna_config=bad)
    bad = _original_config()
    bad["layer"]["l_max"] = 1026
    with pytest.raises(InputError, match="1026"):
        import_hyenadna(tmp_path / "w.ckpt", hyenadna_config=bad)


def test_missing_and_unknown_tensors_are_errors():
    sd = dict(_reference(shift=0.0).state_dict())
    del sd["backbone.layers.1.mixer.out_proj.bias"]
    with pytest.raises(InputError, match="backbone.layers.1.mixer.out_proj.bias"):
        import_hyenadna(dict(sd))
    sd = dict(_reference(shift=0.0).state_dict())
    sd["backbone.layers.0.mixer.ord_proj_w"] = torch.zeros(2, 1, 1)
    with pytest.raises(InputError, match="ord_proj_w"):
        import_hyenadna(sd)
    sd = dict(_reference(shift=0.0).state_dict())
    sd["backbone.layers.1.mixer.Wqkv.weight"] = torch.zeros(96, 32)
    with pytest.raises(InputError, match="attention layer"):
        import_hyenadna(sd)
    with pytest.raises(InputError, match="no HyenaDNA backbone"):
        import_hyenadna({"encoder.weight": torch.zeros(3)})


def test_unreadable_file_is_an_input_error(tmp_path):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="broken.ckpt"):
        import_hyenadna(path)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_round_trip(tmp_path, capsys):
    reference = _reference(shift=0.0)
    ckpt = tmp_path / "hyenadna" / "weights.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {"model." + k: v for k, v in reference.state_dict().items()}}, ckpt)
    (ckpt.parent / "config.json").write_text(json.dumps(_original_config()))
    out = tmp_path / "dnalm_model"
    rc = cli_main(["import-hyenadna", str(ckpt), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "lightning" in printed and str(out) in printed
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    model = dnalm.load_model(out)
    _assert_same_logits(model, reference, _ids(seed=7))


def test_cli_override_and_bad_input(tmp_path, capsys):
    reference = _reference(shift=0.05)
    torch.save(reference.state_dict(), tmp_path / "standalone.pt")
    out = tmp_path / "m"
    rc = cli_main(["import-hyenadna", str(tmp_path / "standalone.pt"), "--out", str(out),
                   "--set", "hyena.shift=0.0", "--set", "dropout=0.1"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["hyena"]["shift"] == 0.0 and cfg["dropout"] == 0.1
    (tmp_path / "junk.ckpt").write_text("junk")
    rc = cli_main(["import-hyenadna", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "junk.ckpt" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    rc = cli_main(["import-hyenadna", str(tmp_path / "standalone.pt"), "--out", str(tmp_path / "y"),
                   "--set", "hyena.shift=[unclosed"])
    assert rc == 2 and "hyena.shift" in capsys.readouterr().err
    rc = cli_main(["import-hyenadna", str(tmp_path / "standalone.pt"), "--out", str(tmp_path / "z"),
                   "--set", "hyena.shfit=0.0"])
    err = capsys.readouterr().err
    assert rc == 2 and "hyena.shfit: unknown key; did you mean 'hyena.shift'?" in err and "Traceback" not in err
    assert not (tmp_path / "z").exists()

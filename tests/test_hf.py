"""The Hugging Face face (``hf`` extra): AutoModel*.from_pretrained on a dnalm folder gives dnalm's logits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")

import dnalm
import dnalm.hf  # registers model_type dnalm with transformers
from dnalm.errors import InputError


def _ids(batch=2, length=17):
    return torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(0))


def test_auto_causal_lm_gives_dnalm_logits(tmp_path):
    torch.manual_seed(0)
    dnalm.build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                      mamba2={"d_state": 16, "headdim": 16, "chunk_size": 8},
                      attention={"n_heads": 2}).save_pretrained(tmp_path / "m")
    config = transformers.AutoConfig.from_pretrained(tmp_path / "m")
    assert config.model_type == "dnalm" and config.config["n_layer"] == 2
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert isinstance(hf, dnalm.hf.DnalmForCausalLM)
    ref = dnalm.load_model(tmp_path / "m")
    x = _ids()
    with torch.no_grad():
        out = hf(x, labels=x)
        expected = ref(x, labels=x)
    assert torch.equal(out.logits, expected.logits) and torch.equal(out.loss, expected.loss)
    hf.save_pretrained(tmp_path / "again")  # the dnalm layout, readable by both
    assert torch.equal(dnalm.load_model(tmp_path / "again")(x).logits, expected.logits)


def test_auto_masked_lm_for_bidirectional_models(tmp_path):
    spec = importlib.util.spec_from_file_location("byom_import_tests_hf", Path(__file__).parent / "test_import_model.py")
    imp = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("byom_import_tests_hf", imp)
    spec.loader.exec_module(imp)
    imp.write_caduceus(tmp_path / "cad", rcps=True, fused=True)
    dnalm.import_model(tmp_path / "cad", out_dir=tmp_path / "m")
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "m")
    x = _ids()
    with torch.no_grad():
        assert torch.equal(hf(x).logits, dnalm.load_model(tmp_path / "m")(x).logits)
    with pytest.raises(InputError, match="AutoModelForMaskedLM"):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m")

"""Inference dtype: every mixer family runs in bfloat16 (float32 inside the scans), loaded by name or converted."""

import pytest
import torch

from dnalm.errors import ConfigError
from dnalm.models import build_model, load_model
from dnalm.models.lm import resolve_dtype

SMALL = {
    "hyena": ("hyenadna-tiny", dict(d_model=32, n_layer=2, d_intermediate=64, max_length=256)),
    "hybrid": ("hybridna-tiny", dict(d_model=32, n_layer=3, attn_layer_idx=[1], max_length=256,
                                     mamba2=dict(d_state=8, headdim=16, chunk_size=16), attention=dict(n_heads=2))),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_bfloat16_model_by_name_matches_float32_and_decodes(name, tmp_path):
    preset, over = SMALL[name]
    torch.manual_seed(0)
    build_model(preset, **over).save_pretrained(tmp_path / "m")
    m32 = load_model(tmp_path / "m")
    m16 = load_model(tmp_path / "m", dtype="bfloat16")
    assert m16.dtype == torch.bfloat16
    x = torch.randint(7, 11, (2, 120), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = m32(x).logits, m16(x).logits
        assert got.dtype == torch.bfloat16
        assert float((got.float() - ref).abs().max()) < 0.05 * float(ref.abs().max())
        cache = m16.allocate_cache(2, 130)
        parts = [m16(x[:, :100], cache=cache).logits] + [m16(x[:, t:t + 1], cache=cache).logits for t in range(100, 120)]
    steps = torch.cat(parts, 1).float()
    assert float((steps - got.float()).abs().max()) < 0.05 * float(ref.abs().max())
    assert cache.seqlen_offset == 120


def test_dtype_names_are_checked():
    assert resolve_dtype("bfloat16") is torch.bfloat16 and resolve_dtype(torch.float32) is torch.float32
    with pytest.raises(ConfigError, match="bf16"):
        resolve_dtype("bf16")

"""Tokenize DNA, build each model family, check cached generation, save and reload.

    python examples/00_models.py
"""

import tempfile

import torch

import dnalm

tok = dnalm.DNATokenizer()
batch = tok(["ACGTACGTTTGACCA", "GGGCCCAAATTT"], padding=True, return_tensors="pt")  # as a HF tokenizer
print("input_ids:\n", batch["input_ids"])
print("reverse complement of row 0:", tok.decode(tok.reverse_complement(tok.encode("ACGTACGTTTGACCA"))))

for preset in ["hyenadna-tiny", "mamba2-tiny", "hybridna-tiny", "transformer-tiny"]:
    torch.manual_seed(0)
    model = dnalm.build_model(preset, d_model=64, n_layer=2, attn_layer_idx=[1] if preset == "hybridna-tiny" else [])
    model.eval()
    prompt = torch.tensor([tok.encode("ACGTACGTAC", add_special_tokens=False)])
    out = model.generate(prompt, max_new_tokens=20, seed=0, allowed_token_ids=list(tok.base_ids))
    again = model.generate(prompt, max_new_tokens=20, seed=0, allowed_token_ids=list(tok.base_ids), use_cache=False)
    assert torch.equal(out, again), "cached decoding must reproduce the full forward"
    pattern = "".join(k[0].upper() for k in model.config.layer_pattern)
    print(f"{preset:18s} {model.num_parameters():>9,} params  layers {pattern:4s}  sample {tok.decode(out[0])}")

with tempfile.TemporaryDirectory() as d:
    model.save_pretrained(d)
    again = dnalm.load_model(d)
    x = torch.randint(7, 11, (1, 32))
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
    print("save_pretrained / load_model round trip: exact")
    half = dnalm.load_model(d, dtype="bfloat16")  # bfloat16 weights; scans, FFTs and norms accumulate in float32
    with torch.no_grad():
        ref, low = model(x).logits, half(x).logits.float()
    print(f"bfloat16 model: largest logit difference {float((low - ref).abs().max()):.3f} "
          f"(logits up to {float(ref.abs().max()):.1f})")

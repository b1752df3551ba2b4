"""Bring your own model: import a mamba_ssm hybrid and a Caduceus model, check them, use them, export.

Without ``--source``: builds two models with random weights from the test-only references of the published code
(``tests/reference/mamba_ssm_reference.py``: mamba_ssm's ``MambaLMHeadModel``; ``tests/reference/
caduceus_reference.py``: Caduceus's ``CaduceusForMaskedLM``) and saves them exactly as those libraries do:

- a Mamba2 + attention hybrid with gated MLPs (``config.json`` + ``pytorch_model.bin``), the stack HybriDNA-style
  models are trained with;
- a reverse-complement-equivariant Caduceus (RCPS) masked LM (``config.json`` + ``model.safetensors``).

Each is imported with ``dnalm.import_model`` (what ``dnalm import-model SRC --out DIR`` runs; ``--model SRC`` on any
command converts on the fly), and the script prints the format found and the largest logit difference to the
reference (relative to the largest logit; float32). Then: the hybrid generates a few bases and is exported back to mamba_ssm (``dnalm export --format
mamba_ssm``); the Caduceus model is checked for RC equivariance and scores one SNV with the masked marginal; and, if
``transformers`` is installed (the ``hf`` extra), ``AutoModelForCausalLM.from_pretrained`` loads the imported hybrid.

With ``--source PATH``: imports your own folder or checkpoint (HyenaDNA, mamba_ssm or Caduceus) into ``--out``.

Run: ``python examples/08_bring_your_own_model.py [--out DIR] [--source PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_model

import dnalm
from dnalm.models.mamba_ssm_format import export_mamba_ssm

ROOT = Path(__file__).resolve().parents[1]


def load_reference(name: str):
    """A test-only reference module (loaded by path: ``tests`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "reference" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def write_mamba_ssm_hybrid(folder: Path):
    """What MambaLMHeadModel.save_pretrained writes: config.json + pytorch_model.bin."""
    ref = load_reference("mamba_ssm_reference")
    config = {"d_model": 64, "d_intermediate": 128, "n_layer": 4, "vocab_size": 12, "pad_vocab_size_multiple": 8,
              "ssm_cfg": {"layer": "Mamba2", "d_state": 32, "headdim": 32, "chunk_size": 16},
              "attn_layer_idx": [2], "attn_cfg": {"num_heads": 4, "num_heads_kv": 2, "head_dim": 16,
                                                  "rotary_emb_dim": 8, "causal": True, "qkv_proj_bias": False,
                                                  "out_proj_bias": False},
              "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "tie_embeddings": True}
    torch.manual_seed(0)
    model = ref.MambaLMHeadModel(ref.MambaConfig(**config))
    randomise(model, 0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return model.eval()


def write_caduceus(folder: Path):
    """A CaduceusForMaskedLM (RCPS) saved as Hugging Face does: config.json + model.safetensors."""
    ref = load_reference("caduceus_reference")
    config = {"model_type": "caduceus", "d_model": 32, "n_layer": 2, "vocab_size": 12, "pad_vocab_size_multiple": 8,
              "ssm_cfg": {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto"}, "rms_norm": True,
              "fused_add_norm": True, "residual_in_fp32": False, "bidirectional": True,
              "bidirectional_strategy": "add", "bidirectional_weight_tie": True, "rcps": True,
              "complement_map": {str(i): c for i, c in enumerate([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11])}}
    torch.manual_seed(1)
    model = ref.CaduceusForMaskedLM(ref.CaduceusConfig(**json.loads(json.dumps(config))))
    randomise(model, 1)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--source", default=None, help="import this folder/checkpoint instead of the built ones")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="dnalm_byom_"))
    tok = dnalm.DNATokenizer()

    if args.source:
        model = dnalm.import_model(args.source, out_dir=out / "imported")
        kind = "bidirectional" if model.is_bidirectional else "causal"
        print(f"found {model.import_info['format']}: {kind}, {model.num_parameters():,} parameters -> {out}/imported")
        return

    x = torch.tensor(tok.encode_np("ACGTTGCATGCAAGCTTACGGATCCA"))[None]

    # 1. a mamba_ssm Mamba2 + attention hybrid
    ref = write_mamba_ssm_hybrid(out / "mamba_ssm_hybrid")
    hybrid = dnalm.import_model(out / "mamba_ssm_hybrid", out_dir=out / "hybrid_dnalm")
    with torch.no_grad():
        expected = ref(x)[0][..., :12]
        diff = ((hybrid(x).logits - expected).abs().max() / expected.abs().max()).item()
    print(f"{hybrid.import_info['format']:<10} {'hybrid':<10} {diff:.2e}  (largest logit difference / largest logit)")
    print("  layers:", dnalm.load_model(out / "hybrid_dnalm").config.layer_pattern)
    print("  generated:", tok.decode(hybrid.generate(x[:, :8], 12, seed=0, allowed_token_ids=tok.base_ids)[0]))
    export_mamba_ssm(hybrid, out / "hybrid_back_to_mamba_ssm")
    again = dnalm.import_model(out / "hybrid_back_to_mamba_ssm")
    same = all(torch.equal(a, b) for a, b in zip(hybrid.state_dict().values(), again.state_dict().values()))
    print(f"  exported to mamba_ssm and re-imported: identical weights = {same}")

    # 2. a Caduceus RCPS masked LM
    ref = write_caduceus(out / "caduceus")
    cad = dnalm.import_model(out / "caduceus", out_dir=out / "caduceus_dnalm")
    with torch.no_grad():
        expected = ref(x)[0][..., :12]
        diff = ((cad(x).logits - expected).abs().max() / expected.abs().max()).item()
        x_rc = torch.tensor(tok.encode_np(dnalm.reverse_complement(tok.decode(x[0].tolist()))))
        e, e_rc = cad.embed(x), cad.embed(x_rc[None])
    print(f"{cad.import_info['format']:<10} {'caduceus':<10} {diff:.2e}  (largest logit difference / largest logit)")
    print(f"  RC equivariance |embed(rc(x)) - flip(embed(x))| = {(e_rc - e.flip(1, 2)).abs().max().item():.1e}")
    from dnalm.variants import score_sequence_pairs

    scores = score_sequence_pairs(cad, ["ACGTTGCATGCA"], ["ACGTTGGATGCA"], progress=False)
    print(f"  SNV C>G masked marginal = {scores['masked_marginal'][0]:.3f}, "
          f"embedding cosine distance = {scores['embedding_cosine'][0]:.2e}")

    # 3. the Hugging Face face
    try:
        importlib.import_module("dnalm.hf")  # registers model_type dnalm with transformers
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("transformers not installed (pip install -e '.[hf]'): skipped the Hugging Face check")
        return
    hf = AutoModelForCausalLM.from_pretrained(out / "hybrid_dnalm")
    with torch.no_grad():
        same = torch.equal(hf(x).logits, dnalm.load_model(out / "hybrid_dnalm")(x).logits)
    print(f"  AutoModelForCausalLM.from_pretrained gives dnalm.load_model's logits: {same}")


if __name__ == "__main__":
    main()

"""Import a HyenaDNA checkpoint into dnalm and check that it reproduces the published model's outputs.

Without ``--checkpoint``: builds a small HyenaDNA model with random weights from the test-only reference
implementation (``tests/reference/hyenadna_standalone.py``, HyenaDNA's own module tree and maths), writes it in the
two published layouts — a Lightning ``weights.ckpt`` with the original ``config.json`` beside it, and the ``-hf``
``model.safetensors`` + ``config.json`` — imports each with ``import_hyenadna`` (what ``dnalm import-hyenadna CKPT
--out DIR`` runs), reloads the written dnalm directory with ``dnalm.load_model`` and prints the largest absolute
difference between its logits and the reference's.

With ``--checkpoint PATH``: imports a real HyenaDNA checkpoint you downloaded (e.g. the ``weights.ckpt`` +
``config.json`` of LongSafari/hyenadna-tiny-1k-seqlen, or a ``-hf`` folder) and prints the model's next-base
probabilities along a short sequence.

Run: ``python examples/03_import_hyenadna.py [--out DIR] [--length 200] [--checkpoint PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

import dnalm
from dnalm.models import import_hyenadna

ROOT = Path(__file__).resolve().parents[1]


def load_reference():
    """The test-only HyenaDNA reference module (loaded by path: ``tests`` is not a package)."""
    spec = importlib.util.spec_from_file_location("hyenadna_reference", ROOT / "tests/reference/hyenadna_standalone.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_lightning(reference, folder: Path, cfg: dict) -> Path:
    """weights.ckpt ({"state_dict": {"model.<key>": tensor}}) + the original config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"model." + k: v for k, v in reference.state_dict().items()}}, folder / "weights.ckpt")
    layer = {"_name_": "hyena", "emb_dim": 5, "filter_order": cfg["filter_order"], "local_order": 3,
             "l_max": cfg["l_max"], "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}
    config = {"d_model": cfg["d_model"], "n_layer": cfg["n_layer"], "d_inner": cfg["d_inner"], "vocab_size": 12,
              "pad_vocab_size_multiple": 8, "embed_dropout": 0.1, "resid_dropout": 0.0, "layer": layer}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder / "weights.ckpt"


def write_hf(reference, folder: Path, cfg: dict) -> Path:
    """model.safetensors with ``hyena.backbone...`` keys (shared tensors stored once) + the -hf config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"hyena." + k: v.clone().contiguous() for k, v in reference.state_dict().items()
               if k.startswith("backbone.") and not k.endswith((".3.freq", ".5.freq"))}
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"model_type": "hyenadna", "d_model": cfg["d_model"], "n_layer": cfg["n_layer"],
              "d_inner": cfg["d_inner"], "vocab_size": 12, "max_seq_len": cfg["l_max"], "emb_dim": 5,
              "filter_order": cfg["filter_order"], "short_filter_order": 3, "hyena_order": 2, "activation_freq": 10,
              "num_inner_mlps": 2, "layer_norm_epsilon": 1e-5, "pad_vocab_size_multiple": 8}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder / "model.safetensors"


def round_trip(out: Path, length: int) -> None:
    ref = load_reference()
    cfg = {"d_model": 64, "n_layer": 2, "d_inner": 256, "l_max": max(length, 2) + 2, "filter_order": 32}
    ids = torch.randint(7, 11, (2, length), generator=torch.Generator().manual_seed(0))  # A/C/G/T ids
    print(f"reference HyenaDNA: d_model {cfg['d_model']}, {cfg['n_layer']} layers, l_max {cfg['l_max']}; "
          f"input {tuple(ids.shape)}")
    print(f"{'layout':<10} {'checkpoint':<44} {'max |logit diff|':>17}")
    # the window shift differs between HyenaDNA's training code (0.0) and its -hf port (0.05)
    for layout, shift, writer in (("lightning", 0.0, write_lightning), ("hf", 0.05, write_hf)):
        reference = ref.build_reference(d_model=cfg["d_model"], n_layer=cfg["n_layer"], d_inner=cfg["d_inner"],
                                        l_max=cfg["l_max"], filter_order=cfg["filter_order"], shift=shift, seed=1)
        ckpt = writer(reference, out / f"hyenadna_{layout}", cfg)
        model_dir = out / f"dnalm_from_{layout}"
        import_hyenadna(ckpt, out_dir=model_dir)
        model = dnalm.load_model(model_dir)
        with torch.no_grad():
            diff = (model(ids).logits - reference(ids)[..., :12]).abs().max().item()
        print(f"{layout:<10} {ckpt.relative_to(out)!s:<44} {diff:>17.2e}")
    print(f"dnalm model directories written under {out}")


def score_real(checkpoint: str, out: Path) -> None:
    model = import_hyenadna(checkpoint, out_dir=out / "imported")
    info, cfg = model.import_info, model.config
    print(f"imported {info['source']} ({info['layout']}): d_model {cfg.d_model}, {cfg.n_layer} layers, "
          f"max length {cfg.max_length}, {model.num_parameters():,} parameters -> {out / 'imported'}")
    seq = "ACGTTGCAAGCTTGCATGCCTGCAGGTCGACTCTAGAGGATCCCCGGGTACC"
    tok = model.tokenizer
    ids = torch.tensor([tok.encode(seq)])
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0], -1)[:, tok.base_ids]  # (L, 4): P(next base)
    print("pos base  P(A)  P(C)  P(G)  P(T)   (prediction of the next base)")
    for i in range(min(12, len(seq))):
        print(f"{i:>3}  {seq[i]}   " + "  ".join(f"{p:.2f}" for p in probs[i].tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--length", type=int, default=200, help="tokens in the comparison batch")
    parser.add_argument("--checkpoint", default=None, help="a real HyenaDNA checkpoint to import instead")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="dnalm_hyenadna_"))
    if args.checkpoint:
        score_real(args.checkpoint, out)
    else:
        round_trip(out, args.length)


if __name__ == "__main__":
    main()

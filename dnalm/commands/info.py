"""Print a model's parameter count, layer pattern and maximum length (a saved directory or a preset name)."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model directory (save_pretrained) or preset name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    import json
    from pathlib import Path

    from dnalm.models import PRESETS, build_model, load_model, read_model_config

    if Path(args.model).is_dir():
        cfg, extra = read_model_config(args.model)
        model = load_model(args.model)
        source = str(Path(args.model).resolve())
    elif args.model in PRESETS:
        import torch

        with torch.device("meta"):
            model = build_model(args.model)
        cfg, extra, source = model.config, {}, f"preset {args.model}"
    else:
        from dnalm.errors import InputError

        raise InputError(f"--model {args.model!r}: neither a model directory nor a preset ({', '.join(PRESETS)})")
    pattern = cfg.layer_pattern
    info = {
        "source": source,
        "parameters": model.num_parameters(),
        "d_model": cfg.d_model,
        "n_layer": cfg.n_layer,
        "layer_pattern": pattern,
        "attn_layer_idx": cfg.attn_layer_idx,
        "mlp": cfg.mlp,
        "norm": cfg.norm,
        "vocab_size": cfg.vocab_size,
        "condition_tokens": list(getattr(model.tokenizer, "condition_tokens", []) or []),
        "max_length": cfg.max_length,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    short = {"hyena": "H", "mamba2": "M", "attention": "A"}
    print(f"model          {info['source']}")
    print(f"parameters     {info['parameters']:,} ({info['parameters'] / 1e6:.2f} M)")
    print(f"d_model        {cfg.d_model}")
    print(f"layers         {cfg.n_layer}: {''.join(short[k] for k in pattern)}  (H=hyena M=mamba2 A=attention)")
    print(f"mlp / norm     {cfg.mlp} / {cfg.norm}")
    print(f"vocab          {cfg.vocab_size} (condition tokens: {len(info['condition_tokens'])})")
    print(f"max length     {cfg.max_length:,} nt")
    return 0

"""Print the installation (versions, threads, CUDA and kernel availability, presets) and, with --model, a model's
parameters, layer pattern, maximum length and training record (a saved folder or a preset name)."""

from __future__ import annotations

KERNELS = {  # optional fast paths: import name -> what uses it
    "mamba_ssm": "Mamba2 SSD scan / state update (CUDA)",
    "causal_conv1d": "Mamba2 causal conv1d (CUDA)",
    "flash_attn": "attention (CUDA)",
    "pyBigWig": "bigWig output",
}


def add_arguments(p) -> None:
    p.add_argument("--model", metavar="MODEL", help="a model folder or a preset name (default: the installation only)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def environment() -> dict:
    """Versions, threads, devices and optional kernels of this installation."""
    import importlib.util
    import os
    import platform

    import torch

    from dnalm import __version__
    from dnalm.models import PRESETS

    return {
        "dnalm": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "kernels": {name: importlib.util.find_spec(name) is not None for name in KERNELS},
        "presets": list(PRESETS),
    }


def model_info(source: str) -> dict:
    """Size, layout and (for a pretrained folder) the training record of a model folder or preset."""
    from pathlib import Path

    import torch

    from dnalm.models import PRESETS, build_model, load_model, read_model_config

    if Path(source).is_dir():
        cfg, extra = read_model_config(source)
        model = load_model(source)
        where = str(Path(source).resolve())
    elif source in PRESETS:
        with torch.device("meta"):
            model = build_model(source)
        cfg, extra, where = model.config, {}, f"preset {source} (random weights)"
    else:
        from dnalm.errors import InputError

        raise InputError(f"--model {source!r}: neither a model directory nor a preset ({', '.join(PRESETS)})")
    record = extra.get("pretrain") or {}
    return {
        "source": where,
        "parameters": model.num_parameters(),
        "d_model": cfg.d_model,
        "n_layer": cfg.n_layer,
        "layer_pattern": cfg.layer_pattern,
        "attn_layer_idx": cfg.attn_layer_idx,
        "mlp": cfg.mlp,
        "norm": cfg.norm,
        "vocab_size": cfg.vocab_size,
        "condition_tokens": list(getattr(model.tokenizer, "condition_tokens", []) or []),
        "max_length": cfg.max_length,
        "training": {k: record[k] for k in ("step", "tokens", "genomes", "val_length", "last_validation")
                     if k in record},
    }


def run(args) -> int:
    import json

    info = {"environment": environment()}
    if args.model:
        info["model"] = model_info(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    env = info["environment"]
    print(f"dnalm          {env['dnalm']} (python {env['python']}, torch {env['torch']})")
    print(f"threads        {env['torch_threads']} torch threads, {env['cpu_count']} CPUs")
    cuda = ", ".join(env["cuda_devices"]) if env["cuda_available"] else "not available"
    print(f"CUDA           {cuda}" + (f" (CUDA {env['cuda_version']})" if env["cuda_version"] else ""))
    for name, present in env["kernels"].items():
        print(f"{name:<15}{'installed' if present else 'not installed'}: {KERNELS[name]}")
    print(f"presets        {', '.join(env['presets'])}")
    if "model" not in info:
        return 0
    m = info["model"]
    short = {"hyena": "H", "mamba2": "M", "attention": "A", "mamba": "S"}
    print()
    print(f"model          {m['source']}")
    print(f"parameters     {m['parameters']:,} ({m['parameters'] / 1e6:.2f} M)")
    print(f"d_model        {m['d_model']}")
    pattern = "".join(short.get(k, "?") for k in m["layer_pattern"])
    print(f"layers         {m['n_layer']}: {pattern}  (H=hyena M=mamba2 A=attention)")
    print(f"mlp / norm     {m['mlp']} / {m['norm']}")
    print(f"vocab          {m['vocab_size']} (condition tokens: {len(m['condition_tokens'])})")
    print(f"max length     {m['max_length']:,} nt")
    t = m["training"]
    if t:
        val = (t.get("last_validation") or {}).get("val_bits_per_base")
        print(f"trained        {t.get('step', 0):,} steps, {t.get('tokens', 0):,} tokens"
              + (f", validation {val:.4f} bits/base" if val is not None else ""))
        for g in t.get("genomes", []):
            print(f"  genome       {g}")
    return 0

"""Convert a HyenaDNA checkpoint (Lightning .ckpt, -hf pytorch_model.bin / model.safetensors, or a standalone
state dict) into a dnalm model directory (config.json + model.safetensors + tokenizer.json)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file, or a directory holding one (and its config.json)")
    parser.add_argument("--out", required=True, help="output dnalm model directory")
    parser.add_argument(
        "--config",
        default=None,
        help="HyenaDNA config.json (original or -hf format); default: config.json beside the checkpoint, "
        "else the checkpoint's hyper_parameters, else the tensor shapes alone",
    )
    parser.add_argument(
        "--override",
        default=None,
        metavar="JSON",
        help='dnalm LMConfig fields to override, e.g. \'{"hyena": {"shift": 0.05}}\' '
        "(the filter window shift defaults to 0.0 for Lightning checkpoints, 0.05 for -hf/standalone ones)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import warnings

    from dnalm.errors import ConfigError
    from dnalm.models.hyenadna_import import import_hyenadna

    overrides = None
    if args.override:
        try:
            overrides = json.loads(args.override)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--override: not valid JSON ({exc})") from None
        if not isinstance(overrides, dict):
            raise ConfigError("--override: expected a JSON object of LMConfig fields")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = import_hyenadna(args.checkpoint, out_dir=args.out, config_overrides=overrides,
                                hyenadna_config=args.config)
    info = model.import_info
    cfg = model.config
    print(f"imported {info['source']} ({info['layout']} layout, config from {info['config_from']})")
    print(f"  d_model={cfg.d_model} n_layer={cfg.n_layer} d_inner={cfg.d_intermediate} max_length={cfg.max_length} "
          f"order={cfg.hyena.get('order')} shift={cfg.hyena.get('shift')} parameters={model.num_parameters():,}")
    if info["ignored_keys"]:
        print(f"  not imported ({len(info['ignored_keys'])} tensors outside the language model): "
              + ", ".join(info["ignored_keys"]))
    for note in info["notes"]:
        print(f"  note: {note}")
    for w in caught:
        if "not imported" not in str(w.message):
            print(f"  warning: {w.message}")
    print(f"wrote {args.out}")
    return 0

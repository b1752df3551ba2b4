"""Convert a HyenaDNA checkpoint (Lightning .ckpt, -hf pytorch_model.bin / model.safetensors, or a standalone
state dict) into a dnalm model directory (config.json + model.safetensors + tokenizer.json)."""

from __future__ import annotations

import argparse

from dnalm.commands import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file, or a directory holding one (and its config.json)")
    options.add_output_options(parser, "folder", "output dnalm model folder")
    parser.add_argument(
        "--hyenadna-config",
        default=None,
        metavar="FILE",
        help="HyenaDNA config.json (original or -hf format); default: config.json beside the checkpoint, "
        "else the checkpoint's hyper_parameters, else the tensor shapes alone",
    )
    options.add_settings_options(
        parser, what="the dnalm LMConfig (the filter window shift defaults to 0.0 for Lightning checkpoints, 0.05 "
        "for -hf/standalone ones)", example="hyena.shift=0.05", config=False)


def run(args: argparse.Namespace) -> int:
    import warnings

    from dnalm.models.hyenadna_import import import_hyenadna

    overrides = options.nested_overrides(args.set) or None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = import_hyenadna(args.checkpoint, out_dir=args.out, config_overrides=overrides,
                                hyenadna_config=args.hyenadna_config)
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

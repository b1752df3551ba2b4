"""Convert a model people bring into a dnalm model folder: HyenaDNA checkpoints (every published layout), mamba_ssm
MambaLMHeadModel folders (Mamba1/Mamba2 + attention hybrids) and Caduceus folders; says which format it found.
(``dnalm import-hyenadna`` is the same command.)"""

from __future__ import annotations

import argparse

from dnalm.commands import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="SRC",
                        help="model folder (config.json + weights) or HyenaDNA checkpoint file")
    options.add_output_options(parser, "folder", "output dnalm model folder")
    parser.add_argument("--format", choices=["hyenadna", "mamba_ssm", "caduceus"], default=None,
                        help="skip format detection")
    parser.add_argument(
        "--hyenadna-config",
        default=None,
        metavar="FILE",
        help="HyenaDNA only: its config.json (original or -hf format); default: config.json beside the "
        "checkpoint, else the checkpoint's hyper_parameters, else the tensor shapes alone",
    )
    options.add_settings_options(
        parser, what="the dnalm LMConfig of a HyenaDNA import (the filter window shift defaults to 0.0 for "
        "Lightning checkpoints, 0.05 for -hf/standalone ones)", example="hyena.shift=0.05", config=False)


def run(args: argparse.Namespace) -> int:
    import warnings

    from dnalm.config import overrides_dict
    from dnalm.errors import ConfigError
    from dnalm.models.importers import detect_format, import_model
    from dnalm.models.lm import LMConfig

    # typed and checked against LMConfig before the checkpoint is read (--out / --overwrite: the CLI's guard)
    overrides = overrides_dict(LMConfig, args.set) or None
    fmt = args.format or detect_format(args.checkpoint)
    if fmt == "dnalm":
        raise ConfigError(f"{args.checkpoint} is already a dnalm model folder; nothing to import")
    if fmt != "hyenadna" and (args.hyenadna_config or overrides):
        raise ConfigError(f"--hyenadna-config and --set apply to HyenaDNA checkpoints; {args.checkpoint} is {fmt}")
    kwargs = {"config_overrides": overrides, "hyenadna_config": args.hyenadna_config} if fmt == "hyenadna" else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = import_model(args.checkpoint, out_dir=args.out, format=fmt, **kwargs)
    info = model.import_info
    cfg = model.config
    kind = "bidirectional masked LM" if model.is_bidirectional else "causal LM"
    print(f"found {fmt} format: {info['source']}" + (f" ({info['layout']} layout, config from {info['config_from']})"
                                                    if fmt == "hyenadna" else ""))
    print(f"  {kind}: mixer={cfg.mixer} attn_layer_idx={cfg.attn_layer_idx} d_model={cfg.d_model} "
          f"n_layer={cfg.n_layer} mlp={cfg.mlp} d_intermediate={cfg.d_intermediate} max_length={cfg.max_length} "
          f"parameters={model.num_parameters():,}")
    if fmt == "hyenadna":
        print(f"  order={cfg.hyena.order} shift={cfg.hyena.shift}")
    if info.get("ignored_keys"):
        print(f"  not imported ({len(info['ignored_keys'])} tensors outside the language model): "
              + ", ".join(info["ignored_keys"]))
    for note in info.get("notes", []):
        print(f"  note: {note}")
    for w in caught:
        if "not imported" not in str(w.message):
            print(f"  warning: {w.message}")
    print(f"wrote {args.out}")
    return 0

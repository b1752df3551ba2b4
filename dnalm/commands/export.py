"""Export a dnalm model to another library's format: ``--format mamba_ssm`` writes a folder that
``mamba_ssm.models.mixer_seq_simple.MambaLMHeadModel.from_pretrained`` loads (config.json + pytorch_model.bin)."""

from __future__ import annotations

import argparse

from dnalm.commands import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a dnalm model folder or an importable checkpoint")
    parser.add_argument("--format", required=True, choices=["mamba_ssm"], help="target format")
    options.add_output_options(parser, "folder", "output folder")


def run(args: argparse.Namespace) -> int:
    from dnalm.models import load_model
    from dnalm.models.mamba_ssm_format import export_mamba_ssm

    model = load_model(args.model)  # --out / --overwrite (and --out == --model) are checked by the CLI's guard
    export_mamba_ssm(model, args.out)
    print(f"wrote {args.out} (mamba_ssm MambaLMHeadModel: config.json + pytorch_model.bin)")
    return 0

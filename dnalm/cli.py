"""`dnalm` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in ``dnalm/commands/<name>.py`` (or another package's module) and defines
``add_arguments(parser)`` and ``run(args) -> int | None``. Modules import heavy libraries (torch,
lightning) inside ``run`` so that ``dnalm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

# name -> (module, one-line help). Add a line here to add a subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare-genome": ("dnalm.commands.prepare_genome", "bgzip + index a FASTA/GenBank genome, or build the demo yeast genome"),
    "derive-tasks": ("dnalm.commands.derive_tasks", "derive promoter/CRE/coding-SNV tasks from a genome + annotation"),
    "report": ("dnalm.commands.report", "collect result tables and plots into report.md / report.html"),
    "info": ("dnalm.commands.info", "print a model's parameters, layer pattern and maximum length"),
    "pretrain": ("dnalm.commands.pretrain", "pretrain a DNA language model on genomes (Lightning; --resume, DDP/FSDP)"),
    "evaluate-lm": ("dnalm.commands.evaluate_lm", "bits per base of a model on held-out sequence beside order-k Markov baselines"),
    "finetune": ("dnalm.commands.finetune", "fine-tune a model on a task (GUE, GenomicBenchmarks, BED, CSV, per-base)"),
    "benchmark": ("dnalm.commands.benchmark", "run a benchmark suite: fine-tuned model vs frozen probe vs k-mer baseline"),
    "embed": ("dnalm.commands.embed", "write sequence embeddings (pooled or per base) of a table or BED to .npz/.safetensors"),
    "predict": ("dnalm.commands.predict", "predict with a fine-tuned head on FASTA, a table or BED + genome: TSV or bedGraph/bigWig"),
    "finetune-generator": ("dnalm.commands.finetune_generator", "fine-tune a model into a conditional CRE generator (condition tokens)"),
    "generate": ("dnalm.commands.generate", "generate sequences (conditions, exact length, constraints, beam search) to FASTA"),
    "train-oracle": ("dnalm.commands.train_oracle", "train a CNN regression oracle of CRE activity (held-out Spearman/Pearson)"),
    "evaluate-cre": ("dnalm.commands.evaluate_cre", "score generated CREs: oracle activity per class, diversity, novelty, k-mers, motifs"),
    "score-variants": ("dnalm.commands.score_variants", "score VCF/TSV variants (LLR, embedding distance) into VCF/TSV"),
    "merge-scores": ("dnalm.commands.merge_scores", "merge score-variants shard outputs into the single-process VCF/TSV"),
    "variant-summary": ("dnalm.commands.variant_summary", "summarise a scored VCF: statuses, scores, per-class AUROC"),
    "ism": ("dnalm.commands.ism", "in-silico saturation mutagenesis of a sequence or region (TSV + heatmap/logo)"),
    "attribute": ("dnalm.commands.attribute", "attribution maps (ig, saliency, deeplift, ism) of a head's output or LM likelihood"),
    "motifs": ("dnalm.commands.motifs", "scan motifs with p-values, or discover them (TF-MoDISco) in attributions"),
    "import-model": ("dnalm.commands.import_model", "convert a HyenaDNA, mamba_ssm or Caduceus model into a dnalm model folder"),
    "import-hyenadna": ("dnalm.commands.import_model", "alias of import-model (HyenaDNA checkpoints and the other formats)"),
    "export": ("dnalm.commands.export", "export a dnalm model to another format (mamba_ssm)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnalm",
        description="Single-nucleotide DNA language models: data, models, pretraining, fine-tuning, "
        "variant effects and CRE generation.",
    )
    from dnalm import __version__

    parser.add_argument("--version", action="version", version=f"dnalm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose module is not there (tests check all import)
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)  # --out and --overwrite come together (options.add_output_options)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    from dnalm.errors import DnalmError
    from dnalm.io.output import Terminated, install_signal_handlers, remove_temporaries

    install_signal_handlers()
    try:
        with _output_guard(args):
            rc = args._module.run(args)
    except DnalmError as exc:
        print(f"dnalm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"dnalm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dnalm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"dnalm {args.command}: terminated (signal {exc.signum}); temporary files removed", file=sys.stderr)
        return 128 + exc.signum
    except Exception as exc:  # an internal error: short message, traceback on request
        if os.environ.get("DNALM_DEBUG"):
            traceback.print_exc()
        print(
            f"dnalm {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "(set DNALM_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 3
    finally:
        remove_temporaries()
    return int(rc or 0)


def _output_guard(args: argparse.Namespace):
    """The output checks of :class:`dnalm.io.output.OutputGuard` around a command with ``--out``.

    A command module may set ``OUTPUT = "self"`` (it checks and writes its outputs itself, e.g. ``--resume``);
    the files a command writes beside ``--out`` are declared in :data:`dnalm.io.output.SIBLINGS`.
    """
    import contextlib

    from dnalm.io.output import SIBLINGS, OutputGuard, check_location, sibling_paths

    out = getattr(args, "out", None)
    module = args._module
    if not out:
        return contextlib.nullcontext()
    if getattr(module, "OUTPUT", None) == "self":
        check_location(out, getattr(args, "_out_kind", None))  # where it can be written at all, before any work
        return contextlib.nullcontext()
    inputs = [v for k, v in vars(args).items() if not k.startswith("_") and k not in ("out", "command")]
    siblings = sibling_paths(out, SIBLINGS.get(args.command, ()))
    return OutputGuard(out, overwrite=args.overwrite, inputs=inputs, siblings=siblings,
                       kind=getattr(args, "_out_kind", None))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Predict with a fine-tuned head (dnalm finetune's OUT/model) on sequences from FASTA, a CSV/TSV table, or BED
intervals + a genome: a TSV of predictions per sequence, or for per-base heads a bedGraph/bigWig track."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, help="fine-tuned model folder (with head.json), e.g. dnalm finetune's OUT/model",
                              batch_size=64, batch_help="sequences per forward pass")
    options.add_input_option(p, "FASTA (gzip ok), CSV/TSV with a sequence column, or a BED file (needs --fasta)")
    p.add_argument("--fasta", help="genome FASTA for BED input")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    p.add_argument("--length", type=options.positive_int, help="BED: resize intervals to this many bp around their centre")
    options.add_output_options(p, "file", "output file: .tsv (one row per sequence); per-base heads also "
                               ".bedGraph or .bw (bigWig, needs pyBigWig)")


def run(args) -> int:
    from pathlib import Path

    from dnalm.errors import InputError
    from finetune.predict import predict_file

    if not (Path(args.model) / "head.json").is_file():
        raise InputError(f"--model {args.model}: not a fine-tuned model folder (no head.json); "
                         "use dnalm embed or score-variants for a language model")
    device, dtype = options.setup_compute(args)
    model = options.load_model(args, device, dtype, heads=True)
    info = predict_file(model, args.input, args.out, fasta=args.fasta, sequence_column=args.sequence_column,
                        length=args.length, batch_size=args.batch_size, progress=options.progress(args))
    print(f"wrote {info['file']}: {info['rows']:,} sequences ({model.config.kind} head, {info['format']})")
    return 0

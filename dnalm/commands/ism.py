"""In-silico saturation mutagenesis: every single-base change of a sequence, genome region or file of sequences,
scored by a language model (LLR) or by a fine-tuned head (--head: the change of its prediction).

Writes OUT/ism.tsv (position, ref, A, C, G, T scores, importance; 1-based genome coordinates for regions and BED
intervals) and OUT/ism.png (heatmap + sequence logo on the same coordinates); with --input, OUT/ism.tsv holds every
record (a `name` column first) and OUT/plots/ one plot per record.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, required=False, batch_size=64, batch_help="mutant sequences per forward pass",
                              help="language model: a dnalm model folder, an importable checkpoint, or a preset "
                              "name (random weights); or use --head")
    p.add_argument("--head", metavar="DIR",
                   help="instead of --model: a fine-tuned model folder (dnalm finetune/benchmark's OUT/model, as "
                   "dnalm predict loads); scores are the change of its output")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--region", help="CHROM:START-END, 1-based inclusive (needs --fasta)")
    src.add_argument("--sequence", help="a DNA sequence")
    src.add_argument("--input", metavar="FILE",
                     help="sequences: FASTA (gzip ok), CSV/TSV with a sequence column, or a BED file (needs --fasta; "
                     "intervals on the + strand, in genome coordinates)")
    p.add_argument("--fasta", help="reference genome FASTA for --region or a BED --input")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    p.add_argument(
        "--flank", type=options.non_negative_int, default=0,
        help="genome context added on each side of a region or BED interval (read, not mutated)",
    )
    p.add_argument(
        "--strands", choices=["+", "-", "both"], default="+", help="language model: strand(s) to score (default +)"
    )
    p.add_argument("--output", type=options.int_in(0), default=0,
                   help="--head: output column scored (class of a multiclass or per-base head, target of a "
                   "regression head; default 0)")
    p.add_argument("--position", type=options.int_in(0),
                   help="--head with a per-base head: the base (0-based in the sequence or region) whose output "
                   "is scored")
    options.add_output_options(p, "folder", "output folder: ism.tsv and ism.png (with --input: plots/)")


def run(args) -> int:
    from pathlib import Path

    from dnalm.errors import InputError

    if bool(args.model) == bool(args.head):
        raise InputError("give --model (a language model) or --head (a fine-tuned model folder), not both"
                         if args.model else "give --model (a language model) or --head (a fine-tuned model folder)")
    if args.head and not (Path(args.head) / "head.json").is_file():
        raise InputError(f"--head {args.head}: not a fine-tuned model folder (no head.json)")
    if (args.region or (args.input and _is_bed(args.input))) and not args.fasta:
        raise InputError(f"{'--region' if args.region else args.input}: needs --fasta GENOME")
    device, dtype = options.setup_compute(args)
    if args.head:
        args.model = args.head
    model = options.load_model(args, device, dtype, heads=bool(args.head))  # predict's loader for a head
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = {"flank": args.flank, "strands": args.strands, "batch_size": args.batch_size,
              "progress": options.progress(args), "output": args.output, "position": args.position}
    if args.input:
        from dnalm.data.sequences import read_sequence_input
        from dnalm.variants.ism import ism_records_to_files

        records = read_sequence_input(args.input, args.fasta, args.sequence_column, label_columns=None,
                                      strand_aware=False)
        table = ism_records_to_files(model, out, records, genome=args.fasta, **common)
        print(f"wrote {out / 'ism.tsv'} ({len(records):,} sequences, {len(table):,} positions) and "
              f"{out / 'plots'}/")
        return 0
    from dnalm.variants import ism_to_files

    table = ism_to_files(model, str(out / "ism"), sequence=args.sequence, region=args.region, genome=args.fasta,
                         **common)
    print(f"wrote {out / 'ism.tsv'} and {out / 'ism.png'} ({len(table):,} positions)")
    return 0


def _is_bed(path: str) -> bool:
    from dnalm.data.sequences import is_bed

    return is_bed(path)

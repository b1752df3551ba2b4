"""In-silico saturation mutagenesis: the LLR of every single-base change of a sequence or genome region.

Writes OUT/ism.tsv (position, ref, A, C, G, T LLRs, importance) and OUT/ism.png (heatmap + sequence logo).
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, batch_size=64, batch_help="mutant sequences per forward pass")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--region", help="CHROM:START-END, 1-based inclusive (needs --fasta)")
    src.add_argument("--sequence", help="a DNA sequence")
    p.add_argument("--fasta", help="reference genome FASTA for --region")
    p.add_argument(
        "--flank", type=options.non_negative_int, default=0, help="genome context added on each side of --region (not mutated)"
    )
    p.add_argument(
        "--strands", choices=["+", "-", "both"], default="+", help="strand(s) to score (default +)"
    )
    options.add_output_options(p, "folder", "output folder: writes ism.tsv and ism.png into it")


def run(args) -> int:
    from pathlib import Path

    from dnalm.errors import InputError
    from dnalm.variants import ism_to_files

    if args.region and not args.fasta:
        raise InputError("--region needs --fasta")
    device, dtype = options.setup_compute(args)
    model = options.load_model(args, device, dtype)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = ism_to_files(
        model,
        str(out / "ism"),
        sequence=args.sequence,
        region=args.region,
        genome=args.fasta,
        flank=args.flank,
        strands=args.strands,
        batch_size=args.batch_size,
        progress=options.progress(args),
    )
    print(f"wrote {out / 'ism.tsv'} and {out / 'ism.png'} ({len(table):,} positions)")
    return 0

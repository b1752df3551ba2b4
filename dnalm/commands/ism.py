"""In-silico saturation mutagenesis: the LLR of every single-base change of a sequence or genome region.

Writes PREFIX.tsv (position, ref, A, C, G, T LLRs, importance) and PREFIX.png (heatmap + sequence logo).
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model directory (save_pretrained / dnalm pretrain output)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--region", help="CHROM:START-END, 1-based inclusive (needs --fasta)")
    src.add_argument("--sequence", help="a DNA sequence")
    p.add_argument("--fasta", help="reference genome FASTA for --region")
    p.add_argument(
        "--flank", type=int, default=0, help="genome context added on each side of --region (not mutated)"
    )
    p.add_argument(
        "--strands", choices=["+", "-", "both"], default="+", help="strand(s) to score (default +)"
    )
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.tsv and PREFIX.png")
    p.add_argument(
        "--batch-size", type=int, default=64, help="mutant sequences per forward pass (default 64)"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from dnalm.errors import InputError
    from dnalm.models import load_model
    from dnalm.variants import ism_to_files

    if args.region and not args.fasta:
        raise InputError("--region needs --fasta")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, device=device)
    table = ism_to_files(
        model,
        args.out,
        sequence=args.sequence,
        region=args.region,
        genome=args.fasta,
        flank=args.flank,
        strands=args.strands,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"wrote {args.out}.tsv and {args.out}.png ({len(table):,} positions)")
    return 0

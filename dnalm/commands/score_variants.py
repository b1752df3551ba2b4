"""Score the variants of a VCF (or TSV) against a reference genome with a DNA language model.

Writes the input VCF back with the scores in INFO (DNALM_LLR, DNALM_EMB_COS, Number=A) and DNALM_STATUS per ALT
allele (ok, or why it was not scored: ref_mismatch, symbolic_allele, unknown_chrom, ...); every input record is
kept. `.vcf.gz` output is bgzipped and tabix-indexed; `.tsv` output is the score table.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model directory (save_pretrained / dnalm pretrain output)")
    p.add_argument("--fasta", required=True, help="reference genome FASTA (plain or bgzip, indexed)")
    p.add_argument(
        "--vcf", required=True, help="variants: VCF, VCF.gz, BCF, or a TSV/CSV with chrom, pos, ref, alt"
    )
    p.add_argument("--out", required=True, help="output: OUT.vcf, OUT.vcf.gz (bgzip + .tbi) or OUT.tsv")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="bases per REF/ALT window, centred on the variant (default 1024, capped by the model)",
    )
    p.add_argument(
        "--strands",
        choices=["both", "+", "-"],
        default="both",
        help="score the + strand, the - strand, or average both (default)",
    )
    p.add_argument(
        "--scores",
        default="llr,embedding_cosine",
        help="comma-separated: llr, llr_sum, embedding_cosine (default llr,embedding_cosine)",
    )
    p.add_argument(
        "--head",
        metavar="DIR",
        help="also score with a fine-tuned model directory (dnalm finetune output): INFO DNALM_HEAD = "
        "prediction(ALT) - prediction(REF)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="variant windows per forward pass (default 32)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument(
        "--no-reuse-prefix",
        action="store_true",
        help="score full REF and ALT windows from scratch (slower reference path; same scores)",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop with an error at the first variant that cannot be scored"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import logging

    import torch

    from dnalm.io.genome import Genome
    from dnalm.models import load_model
    from dnalm.variants import score_variants_to_file

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, device=device)
    head = None
    if args.head:
        from finetune.heads import SequenceModel

        head = SequenceModel.load(args.head, device=device)
    df = score_variants_to_file(
        model,
        Genome(args.fasta),
        args.vcf,
        args.out,
        window=args.window,
        strands=args.strands,
        scores=args.scores,
        batch_size=args.batch_size,
        reuse_prefix=not args.no_reuse_prefix,
        progress=not args.no_progress,
        strict=args.strict,
        model_name=str(args.model),
        head=head,
    )
    counts = df["status"].value_counts()
    summary = ", ".join(f"{n:,} {s}" for s, n in counts.items())
    print(
        f"wrote {args.out}: {len(df):,} variant allele(s) from {df['record'].nunique():,} record(s) ({summary})"
    )
    return 0

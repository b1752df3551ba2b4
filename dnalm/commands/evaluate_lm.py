"""Bits per base and next-base accuracy of a model on held-out sequence, beside order-k Markov baselines.

The Markov chains (k = 0..--max-k, add-alpha smoothing) are fitted on the training chromosomes, with k chosen on
a held-out tail of them; every k is printed, so you see what the model adds over k-mer statistics.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (save_pretrained / pretrain's model/)")
    p.add_argument("--fasta", required=True, metavar="F", help="indexed genome FASTA (dnalm prepare-genome)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--chroms", nargs="+", metavar="CHROM",
                       help="chromosomes to evaluate (default: the test/validation chromosomes the pretraining run recorded)")
    where.add_argument("--bed", metavar="REGIONS", help="BED file of regions to evaluate")
    p.add_argument("--length", type=int, help="window length in tokens (default: the run's validation length, else 1024)")
    p.add_argument("--train-chroms", nargs="+", metavar="CHROM",
                   help="chromosomes the Markov baseline is fitted on (default: the run's training chromosomes, "
                        "else all chromosomes not evaluated)")
    p.add_argument("--max-k", type=int, default=8, help="highest Markov order (default 8)")
    p.add_argument("--alpha", type=float, default=1.0, help="add-alpha smoothing of the Markov chains (default 1)")
    p.add_argument("--markov-val-frac", type=float, default=0.1,
                   help="tail fraction of each training chromosome held out to choose k (default 0.1)")
    p.add_argument("--max-bases", type=int, help="score at most this many bases (evenly spaced blocks)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--out", metavar="FILE", help="write results: .tsv for a table, anything else JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from dnalm.evaluate_lm import evaluate_lm, write_result

    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_lm(
        args.model, args.fasta, chroms=args.chroms, bed=args.bed, length=args.length, train_chroms=args.train_chroms,
        max_k=args.max_k, alpha=args.alpha, markov_val_frac=args.markov_val_frac, batch_size=args.batch_size,
        max_bases=args.max_bases, device=args.device, progress=not args.no_progress,
    )
    print(result.table())
    if args.out:
        print(f"wrote {write_result(result, args.out)}")
    return 0

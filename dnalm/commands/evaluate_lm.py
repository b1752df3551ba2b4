"""Bits per base and next-base accuracy of a model on held-out sequence, beside order-k Markov baselines.

The Markov chains (k = 0..--max-k, add-alpha smoothing) are fitted on the training chromosomes, with k chosen on
a held-out tail of them; every k is printed, so you see what the model adds over k-mer statistics.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, batch_size=8, batch_help="windows per forward pass")
    p.add_argument("--fasta", required=True, metavar="F", help="indexed genome FASTA (dnalm prepare-genome)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--chroms", nargs="+", metavar="CHROM",
                       help="chromosomes to evaluate (default: the test/validation chromosomes the pretraining run recorded)")
    where.add_argument("--bed", metavar="REGIONS", help="BED file of regions to evaluate")
    p.add_argument("--length", type=options.positive_int, help="window length in tokens (default: the run's validation length, else 1024)")
    p.add_argument("--train-chroms", nargs="+", metavar="CHROM",
                   help="chromosomes the Markov baseline is fitted on (default: the run's training chromosomes, "
                        "else all chromosomes not evaluated)")
    p.add_argument("--max-k", type=options.int_in(0, 16), default=8, help="highest Markov order (default 8)")
    p.add_argument("--alpha", type=options.positive_float, default=1.0, help="add-alpha smoothing of the Markov chains (default 1)")
    p.add_argument("--markov-val-frac", type=options.float_in(0.0, 1.0, lo_open=True, hi_open=True), default=0.1,
                   help="tail fraction of each training chromosome held out to choose k (default 0.1)")
    p.add_argument("--max-bases", type=options.positive_int, help="score at most this many bases (evenly spaced blocks)")
    options.add_output_options(p, "file", "write results: .tsv for a table, anything else JSON", required=False)


def run(args) -> int:
    from dnalm.evaluate_lm import evaluate_lm, write_result

    device, dtype = options.setup_compute(args)
    result = evaluate_lm(
        args.model, args.fasta, chroms=args.chroms, bed=args.bed, length=args.length, train_chroms=args.train_chroms,
        max_k=args.max_k, alpha=args.alpha, markov_val_frac=args.markov_val_frac, batch_size=args.batch_size,
        max_bases=args.max_bases, device=device, progress=options.progress(args), dtype=dtype,
    )
    print(result.table())
    if args.out:
        print(f"wrote {write_result(result, args.out)}")
    return 0

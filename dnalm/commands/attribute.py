"""Attribution maps of a fine-tuned head's output (or a language model's log-likelihood) for sequences: an .npz of
(N, 4, L) contributions, a per-sequence TSV summary and sequence logos of the top sequences (genome coordinates on
the axis for BED input). Methods: ig (integrated gradients), saliency (gradient x input), deeplift (DeepLIFT-SHAP)
and ism (in-silico mutagenesis); see ``dnalm.explain.attribution`` for the convention."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, help="fine-tuned model folder (with head.json), or a language model folder / preset "
                              "(target: its log-likelihood)", batch_size=32, batch_help="sequences per forward pass")
    p.add_argument("--head", help="folder of a fine-tuned model whose head to attribute (default: --model itself)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="FASTA (gzip ok), or CSV/TSV with a sequence column")
    src.add_argument("--bed", help="BED regions (needs --fasta)")
    p.add_argument("--fasta", help="genome FASTA for --bed")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    p.add_argument("--length", type=options.positive_int, help="BED: resize regions to this many bp around their centre")
    p.add_argument("--method", choices=["ig", "saliency", "deeplift", "ism"], default="ig", help="method (default ig)")
    p.add_argument("--output", type=options.int_in(0), default=0,
                   help="output column: class of a multiclass head, target of a regression head (default 0)")
    p.add_argument("--position", type=options.int_in(0), help="base position of a per-base head's output")
    p.add_argument("--region-start", type=options.int_in(0), default=0,
                   help="language-model target: first scored base (0-based, default 0)")
    p.add_argument("--region-end", type=options.int_in(1), help="language-model target: end of the scored bases (default: all)")
    p.add_argument("--baseline", choices=["dinucleotide", "uniform", "zeros"], default="dinucleotide",
                   help="ig/deeplift reference (default dinucleotide shuffles)")
    p.add_argument("--shuffles", type=options.int_in(1, 1000), default=8, help="dinucleotide shuffles per sequence (default 8)")
    p.add_argument("--steps", type=options.int_in(2, 10000), default=32, help="integration steps of ig (default 32)")
    p.add_argument("--max-sequences", type=options.int_in(1), help="attribute only the first N sequences")
    p.add_argument("--label", help="attribute only rows of a table whose label column equals this value")
    p.add_argument("--top", type=options.int_in(0), default=10, help="logos for this many sequences, highest output first (default 10)")
    p.add_argument("--seed", type=options.non_negative_int, default=0, help="seed of the shuffles (default 0)")
    options.add_selection_options(p, "sequences", " (--bed input: a region is in it when it overlaps it)")
    options.add_output_options(p, "folder", "output folder: attributions.npz, summary.tsv, run.json, logos/")


def run(args) -> int:
    from dnalm.explain.run import attribute_sequences, check_out_dir, make_target, read_sequence_records

    check_out_dir(args.out, args.overwrite)
    device, dtype = options.setup_compute(args)
    records = read_sequence_records(args.input or args.bed, fasta=args.fasta, sequence_column=args.sequence_column,
                                    length=args.length, label=args.label, max_sequences=args.max_sequences,
                                    regions=args.region, shard=args.shard)
    seqs = records.sequences
    if args.head:
        args.model = args.head  # a fine-tuned folder holds its backbone beside the head
    model = options.load_model(args, device, dtype, heads=True)
    target, what = make_target(model, output=args.output, position=args.position,
                               region=(args.region_start, args.region_end))
    info = attribute_sequences(target, seqs, records.names, args.out, coords=records.coords, method=args.method,
                               baseline=args.baseline, record=records.record,
                               n_shuffles=args.shuffles, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                               top=args.top, device=device, progress=options.progress(args),
                               meta={"model": str(args.head or args.model), "target": what,
                                     "shard": list(args.shard) if args.shard else None, "regions": args.region})
    print(f"wrote {info['npz']} ({len(seqs):,} sequences, {args.method}), {info['summary']} and {len(info['logos'])} logo(s)")
    return 0

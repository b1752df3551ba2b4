"""Score the variants of a VCF (or TSV) against a reference genome with a DNA language model.

Writes the input VCF back with the scores in INFO (DNALM_LLR, DNALM_EMB_COS, Number=A) and DNALM_STATUS per ALT
allele (ok, or why it was not scored: ref_mismatch, symbolic_allele, unknown_chrom, ...); every input record is
kept. `.vcf.gz` output is bgzipped and tabix-indexed, `.bcf` output is BCF with a .csi index; `.tsv` output is
the score table (from a table input, followed by its other columns).

Records are scored and written a chunk at a time (memory does not grow with the file); a killed run keeps its
progress in OUT.dnalm-resume/ and the same command continues it without scoring finished records again.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, batch_size=32, batch_help="variant windows per forward pass")
    p.add_argument("--fasta", required=True, help="reference genome FASTA (plain or bgzip, indexed)")
    options.add_input_option(p, "variants: VCF, VCF.gz, BCF, or a TSV/CSV with chrom, pos, ref, alt")
    options.add_output_options(p, "file", "output file: OUT.vcf, OUT.vcf.gz (bgzip + .tbi), OUT.bcf (+ .csi) or OUT.tsv")
    p.add_argument(
        "--window",
        type=options.positive_int,
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
        default=None,
        help="comma-separated: llr, llr_sum, embedding_cosine (causal models), masked_marginal, embedding_cosine "
        "(bidirectional models); default by model kind: llr,embedding_cosine or masked_marginal,embedding_cosine",
    )
    p.add_argument(
        "--head",
        metavar="DIR",
        help="also score with a fine-tuned model directory (dnalm finetune output): INFO DNALM_HEAD = "
        "prediction(ALT) - prediction(REF)",
    )
    p.add_argument(
        "--no-reuse-prefix",
        action="store_true",
        help="score full REF and ALT windows from scratch (slower reference path; same scores)",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop with an error at the first variant that cannot be scored"
    )
    options.add_selection_options(p, "records", " (a variant is in it when its position is)")
    p.add_argument(
        "--devices", type=options.int_in(1, 256), default=1, metavar="N",
        help="score N shards in N worker processes (one per GPU with --device cuda, else CPU processes sharing "
        "--threads) and merge them; finished shards are kept in OUT.dnalm-shards/ until the merge",
    )
    p.add_argument(
        "--restart", action="store_true",
        help="ignore an unfinished run's progress in OUT.dnalm-resume/ (by default the same command continues it)",
    )


def run(args) -> int:
    import logging

    from dnalm.io.genome import Genome
    from dnalm.variants import score_variants_to_file

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.devices > 1:
        return _run_parallel(args)
    device, dtype = options.setup_compute(args)
    model = options.load_model(args, device, dtype)
    head = None
    if args.head:
        from finetune.heads import SequenceModel

        head = SequenceModel.load(args.head, device=device)
    selection = None
    if args.region or args.shard:
        from dnalm.variants.shard import make_selection

        selection = make_selection(args.input, Genome(args.fasta), args.region, args.shard)
    run = score_variants_to_file(
        model,
        Genome(args.fasta),
        args.input,
        args.out,
        window=args.window,
        strands=args.strands,
        scores=args.scores,
        batch_size=args.batch_size,
        reuse_prefix=not args.no_reuse_prefix,
        progress=options.progress(args),
        strict=args.strict,
        model_name=str(args.model),
        head=head,
        resume=not args.restart,
        selection=selection,
    )
    print(run.summary())
    return 0


def _run_parallel(args) -> int:
    """``--devices N``: N worker processes, one shard each, merged into ``--out``."""
    from dnalm.errors import InputError
    from dnalm.variants.shard import score_variants_parallel

    if args.shard:
        raise InputError("--devices and --shard do not combine: --devices splits the input into its own shards")
    if args.head:
        raise InputError("--head is not supported with --devices yet; score with --shard I/N and merge-scores")
    device = options.resolve_device(args.device)
    out = score_variants_parallel(
        str(args.model), args.fasta, args.input, args.out, args.devices, regions=args.region,
        threads=args.threads, device=device, dtype=options.torch_dtype(args.dtype),
        window=args.window, strands=args.strands, scores=args.scores, batch_size=args.batch_size,
        reuse_prefix=not args.no_reuse_prefix, strict=args.strict, model_name=str(args.model),
        resume=not args.restart,
    )
    print(f"wrote {out} from {args.devices} shard(s)")
    return 0

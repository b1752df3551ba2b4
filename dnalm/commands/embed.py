"""Write embeddings of sequences (FASTA, CSV/TSV table, or BED intervals + a genome), pooled or per base, to
.npz/.safetensors; --region and --shard I/N select a part (shards gathered by `dnalm merge-scores`)."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_model_options(p, help="model folder (pretrained or fine-tuned), importable checkpoint or preset",
                              batch_size=64, batch_help="sequences per forward pass")
    options.add_input_option(p, "FASTA (.fa/.fasta/.fna, gzip ok), CSV/TSV with a sequence column, or a BED file "
                             "(needs --fasta)")
    p.add_argument("--fasta", help="genome FASTA for BED input")
    options.add_output_options(p, "file", "output file: .npz or .safetensors")
    p.add_argument("--pooling", default="mean", choices=["mean", "last", "echo", "rc_echo"], help="pooling (default mean)")
    p.add_argument("--per-token", action="store_true", help="one embedding per base instead of one per sequence")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    options.add_label_columns_option(p, "label columns to store beside the embeddings (default: 'label' if "
                                     "present, for BED also the single extra column)")
    p.add_argument("--no-labels", action="store_true", help="store no labels")
    p.add_argument("--length", type=options.positive_int, help="BED: resize intervals to this many bp around their centre")
    options.add_selection_options(p, "intervals", " (BED input: an interval is in it when it overlaps it)")


def run(args) -> int:
    from finetune.embed import embed_file

    device, dtype = options.setup_compute(args)
    model = options.load_model(args, device, dtype, heads=True)
    labels = None if args.no_labels else (args.label_columns or "auto")
    info = embed_file(model, args.input, args.out, fasta=args.fasta, pooling=args.pooling,
                      per_token=args.per_token, sequence_column=args.sequence_column, label_columns=labels,
                      length=args.length, batch_size=args.batch_size, progress=options.progress(args),
                      model_name=str(args.model), regions=args.region, shard=args.shard)
    print(f"wrote {info['file']}: {info['rows']:,} rows, embeddings {tuple(info['shape'])}")
    return 0

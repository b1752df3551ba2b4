"""Write embeddings of a sequence table or of BED intervals + a genome (pooled or per base) to .npz/.safetensors."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model directory (pretrained or fine-tuned)")
    p.add_argument("--input", required=True, help="CSV/TSV with a sequence column, or a BED file (needs --fasta)")
    p.add_argument("--fasta", help="genome FASTA for BED input")
    p.add_argument("--out", required=True, help="output file: .npz or .safetensors")
    p.add_argument("--pooling", default="mean", choices=["mean", "last", "echo", "rc_echo"], help="pooling (default mean)")
    p.add_argument("--per-token", action="store_true", help="one embedding per base instead of one per sequence")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    p.add_argument("--label-column", action="append", help="label column(s) to store beside the embeddings "
                   "(default: 'label' if present, for BED also the single extra column)")
    p.add_argument("--no-labels", action="store_true", help="store no labels")
    p.add_argument("--length", type=int, help="BED: resize intervals to this many bp around their centre")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass")


def run(args) -> int:
    from finetune.embed import embed_file

    labels = None if args.no_labels else (args.label_column or "auto")
    info = embed_file(args.model, args.input, args.out, fasta=args.fasta, pooling=args.pooling,
                      per_token=args.per_token, sequence_column=args.sequence_column, label_columns=labels,
                      length=args.length, batch_size=args.batch_size)
    print(f"wrote {info['file']}: {info['rows']:,} rows, embeddings {tuple(info['shape'])}")
    return 0

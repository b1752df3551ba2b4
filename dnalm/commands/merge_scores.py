"""Merge the shard outputs of `dnalm score-variants --shard I/N` (or `dnalm embed --shard I/N`) into the file one
process would have written.

The shards are given in order (1/N .. N/N); the header is written once and the records in input order. The output
follows score-variants' suffix rule: `.vcf.gz` is bgzipped and tabix-indexed (.tbi), `.bcf` is BCF with a .csi index.
Embedding shards (`.npz`, `.safetensors`) are concatenated in shard order (`finetune.embed.merge_embeddings`).
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    p.add_argument("--input", nargs="+", required=True, metavar="SHARD",
                   help="shard outputs of score-variants --shard (VCF, VCF.gz, BCF or tables) or of embed --shard (.npz, "
                   ".safetensors), in shard order (1/N first)")
    options.add_output_options(p, "file", "merged output: OUT.vcf, OUT.vcf.gz (bgzip + .tbi), OUT.bcf (+ .csi), OUT.tsv; "
                               "for embeddings OUT.npz or OUT.safetensors")


def run(args) -> int:
    if str(args.out).lower().endswith((".npz", ".safetensors")):
        from finetune.embed import merge_embeddings

        out = merge_embeddings(args.input, args.out)
    else:
        from dnalm.variants.shard import merge_scores

        out = merge_scores(args.input, args.out)
    print(f"wrote {out} from {len(args.input)} shard(s)")
    return 0

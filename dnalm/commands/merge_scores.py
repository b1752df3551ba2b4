"""Merge the shard outputs of `dnalm score-variants --shard I/N` into the file one process would have written.

The shards are given in order (1/N .. N/N); the header is written once and the records in input order. A
`.vcf.gz` output is bgzipped and tabix-indexed.
"""

from __future__ import annotations

from dnalm.commands import options

OUTPUT_SUFFIXES = (".tbi",)  # the tabix index of OUT.vcf.gz


def add_arguments(p) -> None:
    p.add_argument("--input", nargs="+", required=True, metavar="SHARD",
                   help="shard outputs of score-variants --shard, in shard order (1/N first)")
    options.add_output_options(p, "file", "merged output: OUT.vcf, OUT.vcf.gz (bgzip + .tbi) or OUT.tsv")


def run(args) -> int:
    from dnalm.variants.shard import merge_scores

    out = merge_scores(args.input, args.out)
    print(f"wrote {out} from {len(args.input)} shard(s)")
    return 0

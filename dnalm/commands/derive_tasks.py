"""Derive real tasks from a genome and its annotation: promoter vs GC-matched non-promoter windows (GUE layout), a
promoter CRE table (codon adaptation index of the downstream ORF, ribosomal-protein class, GC, chromosome split)
and a VCF of stop-gained and synonymous coding SNVs matched by substitution."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    p.add_argument("--fasta", required=True, help="prepared genome (NAME.fa.gz from dnalm prepare-genome)")
    p.add_argument("--cds", required=True, help="NAME.cds.bed written by dnalm prepare-genome for GenBank input")
    options.add_output_options(p, "folder", "output folder")
    p.add_argument("--promoter-length", type=options.positive_int, default=300, help="bp per promoter window (default 300)")
    p.add_argument("--cre-length", type=options.positive_int, default=150, help="bp per CRE (default 150)")
    p.add_argument("--max-promoters", type=options.positive_int, default=None,
                   help="subsample promoters (and as many negatives)")
    p.add_argument("--codons", type=options.non_negative_int, default=400,
                   help="random codons whose stop-gained and synonymous SNVs are drawn (matched by substitution; default 400)")
    p.add_argument("--seed", type=options.non_negative_int, default=0, help="random seed (default 0)")


def run(args) -> int:
    import json

    from data_prep.demo_tasks import derive_tasks

    summary = derive_tasks(
        args.fasta, args.cds, args.out, promoter_length=args.promoter_length, cre_length=args.cre_length,
        n_codons=args.codons, max_promoters=args.max_promoters, seed=args.seed,
    )
    print(json.dumps(summary, indent=2))
    return 0

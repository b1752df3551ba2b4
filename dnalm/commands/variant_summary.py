"""Summarise a scored VCF (from `dnalm score-variants`): counts per status, score distribution, and, when the
records carry a class in INFO (VEP CSQ and SnpEff ANN are parsed by field: the consequence of each ALT allele;
other keys, e.g. CSQ=stop_gained, as they stand), the mean score per class and the AUROC of each score for
separating each class from the others (damaging classes are expected to have lower LLR). Writes the TSV and,
beside it, OUT.png: the score distributions per class and the ROC curves. With --fasta, the same AUROCs for the
LLRs of order-0..K Markov chains fitted on the reference (rows "baseline"): the k-mer statistics a model must beat.
With --regions (GFF3/GTF or BED) the classes are the annotated regions the alleles fall in (CDS, UTR, intron, ...),
for VCFs that carry no consequences."""

from __future__ import annotations

from dnalm.commands import options
from dnalm.errors import ConfigError


def add_arguments(p) -> None:
    options.add_input_option(p, "VCF written by dnalm score-variants")
    p.add_argument("--label-info", default="CSQ", help="INFO key holding the class: VEP CSQ or SnpEff ANN (parsed by field), or any key (default CSQ; "
                   "absent is fine)")
    p.add_argument("--fasta", default=None, help="reference genome: add order-k Markov-chain LLR baselines (rows 'baseline')")
    p.add_argument("--markov-k", type=options.non_negative_int, default=8, help="highest Markov order (default 8)")
    p.add_argument("--markov-exclude", type=options.comma_list, default=[],
                   help="chromosomes the Markov chains are not fitted on, comma-separated (e.g. the LM's held-out ones)")
    p.add_argument("--regions", default=None,
                   help="GFF3/GTF or BED annotation: label each allele by the region it falls in (GFF: the first of "
                   "--region-types covering it, else intergenic; BED: the name column), in place of --label-info")
    p.add_argument("--region-types", type=options.comma_list, default=None,
                   help="GFF feature types in order of precedence (default CDS,five_prime_UTR,three_prime_UTR,exon,"
                   "intron,gene)")
    options.add_output_options(p, "file", "summary TSV (the figure goes beside it as .png)")


def run(args) -> int:
    from dnalm.variant_summary import summarise_scored_vcf

    if args.markov_k > 12:
        raise ConfigError(f"--markov-k must be <= 12, got {args.markov_k}")
    from dnalm.variant_summary import REGION_TYPES

    if args.region_types and not args.regions:
        raise ConfigError("--region-types needs --regions")
    table = summarise_scored_vcf(args.input, label_info=args.label_info, out=args.out, fasta=args.fasta,
                                 markov_k=args.markov_k, markov_exclude=args.markov_exclude, regions=args.regions,
                                 region_types=tuple(args.region_types or REGION_TYPES))
    print(table.to_string(index=False))
    return 0

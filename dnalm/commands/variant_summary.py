"""Summarise a scored VCF (from `dnalm score-variants`): counts per status, score distribution, and, when the
records carry a class in INFO (VEP CSQ and SnpEff ANN are parsed by field: the consequence of each ALT allele;
other keys, e.g. CSQ=stop_gained, as they stand), the mean score per class and the AUROC of each score for
separating each class from the others (damaging classes are expected to have lower LLR). Writes the TSV and,
beside it, OUT.png: the score distributions per class and the ROC curves."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_input_option(p, "VCF written by dnalm score-variants")
    p.add_argument("--label-info", default="CSQ", help="INFO key holding the class: VEP CSQ or SnpEff ANN (parsed by field), or any key (default CSQ; "
                   "absent is fine)")
    options.add_output_options(p, "file", "summary TSV (the figure goes beside it as .png)")


def run(args) -> int:
    from dnalm.variant_summary import summarise_scored_vcf

    table = summarise_scored_vcf(args.input, label_info=args.label_info, out=args.out)
    print(table.to_string(index=False))
    return 0

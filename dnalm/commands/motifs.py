"""Motifs: ``scan`` JASPAR/TRANSFAC/MEME matrices over sequences (FIMO-style hits with exact p-values, optionally
weighted by attributions), ``discover`` TF-MoDISco patterns in an attribution .npz and match them to a motif
database (TOMTOM p- and q-values), with a Markdown report of logos."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="motifs_command", metavar="{scan,discover}", required=True)
    s = sub.add_parser("scan", help="FIMO-style motif hits with p-values over sequences or an attribution .npz",
                       description="Motif hits (both strands) with p-values; with --attributions each hit carries the "
                       "attribution inside it (hits ranked by what the model uses).")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="FASTA (gzip ok), or CSV/TSV with a sequence column")
    src.add_argument("--bed", help="BED regions (needs --fasta)")
    src.add_argument("--attributions", help="attributions.npz of dnalm attribute (its sequences are scanned)")
    s.add_argument("--fasta", help="genome FASTA for --bed")
    s.add_argument("--sequence-column", default="sequence", help="sequence column of a table (default: sequence)")
    s.add_argument("--motifs", required=True, help="JASPAR/TRANSFAC/MEME motif file (gzip ok)")
    s.add_argument("--tax-group", help="keep only JASPAR matrices of this tax group (e.g. vertebrates)")
    s.add_argument("--pvalue", type=options.float_in(0, 1, lo_open=True), default=1e-4, help="report hits with p <= this (default 1e-4)")
    options.add_output_options(s, "file", "output TSV of hits")
    d = sub.add_parser("discover", help="TF-MoDISco patterns of an attribution .npz, matched to a motif database",
                       description="TF-MoDISco on the hypothetical contributions of dnalm attribute; each pattern is "
                       "matched to the database with TOMTOM (q-values: Benjamini-Hochberg over the database).")
    d.add_argument("--attributions", required=True, help="attributions.npz (or its folder) of dnalm attribute")
    d.add_argument("--motifs", help="JASPAR/TRANSFAC/MEME motif file to match patterns against (default: no matching)")
    d.add_argument("--tax-group", help="keep only JASPAR matrices of this tax group")
    d.add_argument("--window", type=options.int_in(5, 200), default=15, help="seqlet core width (default 15)")
    d.add_argument("--flank", type=options.int_in(0, 100), default=5, help="seqlet flank (default 5)")
    d.add_argument("--max-seqlets", type=options.int_in(10), default=2000, help="seqlets kept per sign (default 2000)")
    d.add_argument("--min-cluster", type=options.int_in(2), default=20, help="smallest pattern, in seqlets (default 20)")
    d.add_argument("--leiden-runs", type=options.int_in(1, 100), default=4, help="Leiden clusterings per round (default 4)")
    d.add_argument("--q", type=options.float_in(0, 1, lo_open=True), default=0.05, help="q-value shown in bold (default 0.05)")
    d.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    options.add_output_options(d, "folder", "output folder: report.md, patterns.tsv, patterns.png, patterns.meme, logos/")


def run(args) -> int:
    from dnalm.explain.run import discover_to_files, scan_to_file

    if args.motifs_command == "scan":
        n = scan_to_file(args.out, args.motifs, input=args.input or args.bed, fasta=args.fasta,
                         attributions=args.attributions, sequence_column=args.sequence_column,
                         tax_group=args.tax_group, pvalue=args.pvalue, overwrite=args.overwrite)
        print(f"wrote {args.out}: {n:,} hits")
        return 0
    info = discover_to_files(args.attributions, args.motifs, args.out, tax_group=args.tax_group, window=args.window,
                             flank=args.flank, max_seqlets=args.max_seqlets, min_cluster=args.min_cluster,
                             n_leiden_runs=args.leiden_runs, q_threshold=args.q, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {info['report']}: {info['n_patterns']} pattern(s), {info['n_significant']} matched with q < {args.q}")
    return 0

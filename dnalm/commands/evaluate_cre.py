"""Evaluate generated CREs with an oracle and the real sequences.

Per requested condition (from the FASTA headers): the oracle's mean and top-k mean prediction and the fraction
landing in the requested class; diversity (mean pairwise edit distance); novelty (edit distance to the nearest
real sequence); k-mer spectrum divergence from the real sequences; motif occurrence (JASPAR/TRANSFAC PWM scan);
a Mann-Whitney U test between the highest and lowest requested classes; the best designs against the best real
sequences (top n of the highest class by the oracle vs the top n held-out rows by measured value); a PNG of
predicted activity by requested class beside real sequences.
"""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    from dnalm.commands.table_options import add_table_arguments

    p.add_argument("--generated", required=True, help="FASTA from dnalm generate")
    p.add_argument("--oracle", required=True, help="oracle directory from dnalm train-oracle")
    p.add_argument("--reference", required=True, help="table of real (training) sequences with measured values")
    add_table_arguments(p)
    options.add_label_columns_option(p, "measured columns of the reference table (default: the generator's "
                                     "property names)")
    p.add_argument("--generator", default=None, help="generator directory (bin edges) if OUT.json is missing")
    p.add_argument("--target-map", action="append", default=[], metavar="PROPERTY=TARGET",
                   help="oracle target of a property whose name differs (repeatable)")
    p.add_argument("--motifs", default=None, help="JASPAR/TRANSFAC motif file (gzip ok) for motif occurrence")
    options.add_output_options(p, "folder", "output folder")
    options.add_compute_options(p, flags=("--threads", "--no-progress"))  # the oracle runs where it was trained
    options.add_settings_options(p, what="the evaluation (EvalConfig fields: top_k, top_n, max_reference, "
                                 "motif_threshold, motif_tax_group, max_motif_reference, max_pairs, seed)",
                                 example="top_k=20")


def run(args) -> int:
    import dataclasses

    from dnalm.commands.table_options import table_from_args
    from dnalm.errors import DnalmError
    from generate.conditioning import load_generator
    from generate.evaluate import EvalConfig, condition_properties, evaluate_cre

    options.setup_compute(args)
    cfg = dataclasses.replace(options.load_settings(EvalConfig, args), progress=options.progress(args))
    spec = None
    if args.generator:
        spec = load_generator(args.generator).conditioning
    names = list(args.label_columns or []) or condition_properties(args.generated, spec)
    reference = table_from_args(args, args.reference, names)
    print(reference.skip_summary())
    target_map = {}
    for item in args.target_map:
        k, sep, v = item.partition("=")
        if not sep:
            raise DnalmError(f"--target-map {item!r}: expected PROPERTY=TARGET")
        target_map[k.strip()] = v.strip()
    summary = evaluate_cre(args.generated, args.oracle, reference, args.out, spec=spec, motifs_path=args.motifs,
                           target_map=target_map, config=cfg)
    print_summary(summary)
    print(f"wrote {args.out}/summary.json, conditions.tsv, sequences.tsv, activity.png"
          + (", motifs.tsv" if args.motifs else ""))
    return 0


def print_summary(summary: dict) -> None:
    """Print the per-condition table and the high-vs-low test."""
    props = list(summary["property_to_oracle_target"])
    head = ["condition", "n"] + [f"{p}:mean" for p in props] + [f"{p}:in_class" for p in props] + [
        "diversity", "novelty_mean", "copies", "kmer4_js", "kmer6_js"]
    print("\t".join(head))
    for r in summary["conditions"]:
        vals = [r["condition"], r["n"]] + [r.get(f"{p}:oracle_mean", float("nan")) for p in props] + [
            r.get(f"{p}:fraction_in_class", float("nan")) for p in props] + [
            r["diversity_mean_pairwise_distance"], r["novelty_mean_distance"], r["exact_copies_of_reference"],
            r.get("kmer4_js", float("nan")), r.get("kmer6_js", float("nan"))]
        print("\t".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals))
    b = summary["real_baseline"]
    print(f"real baseline (n={b['n']}): diversity {b['diversity']['mean_pairwise_distance']:.4g}, kmer4_js "
          f"{b.get('kmer4_js', float('nan')):.4g}, kmer6_js {b.get('kmer6_js', float('nan')):.4g}, nearest-real "
          f"distance {b['nearest_real_distance_mean']:.4g}")
    for p, t in summary["high_vs_low"].items():
        print(f"{p}: class {t['high_class']} vs {t['low_class']}: oracle mean {t['oracle_mean_high']:.4g} vs "
              f"{t['oracle_mean_low']:.4g} (difference {t['difference']:.4g}), Mann-Whitney U={t['mannwhitney_u']:.4g} "
              f"p={t['p_two_sided']:.3g} (two-sided), AUC={t['auc_high_vs_low']:.3f}")
        top = t.get("top_n")
        if top:
            print(f"{p}: top {top['n']} designs (by oracle) {top['generated_top_oracle_mean']:.4g} vs real top "
                  f"{top['n']} by measured value {top['real_top_by_measured_oracle_mean']:.4g} (oracle means; AUC "
                  f"{top['auc_generated_top_vs_real_top_measured']:.3f}); real top {top['n']} by oracle "
                  f"{top['real_top_by_oracle_oracle_mean']:.4g}")

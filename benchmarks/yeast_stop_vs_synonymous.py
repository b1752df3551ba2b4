"""Biology check: do stop-gained SNVs in yeast ORFs score as more damaging than synonymous SNVs?

Builds the variant set from the demo genome (S. cerevisiae S288C R64 from ``dnalm prepare-genome --demo yeast``)
and its CDS annotation (``NAME.cds.bed``): random codons of single-exon ORFs (not the start or the last codon);
at each codon every SNV that creates a stop codon (stop_gained) and every synonymous SNV. Scores them with
:func:`dnalm.variants.score_variants` and prints the mean score per class and the AUROC of ``-llr``
(and of ``embedding_cosine``) for telling stop-gained from synonymous (0.5 = chance), overall and within each
substitution type (the classes differ in base composition; see the comment in ``main``).

    python benchmarks/yeast_stop_vs_synonymous.py --model runs/demo_pretrain/model --codons 300
    python benchmarks/yeast_stop_vs_synonymous.py --random-init hybridna-tiny   # the same with an untrained model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

import dnalm
from data_prep.demo_tasks import coding_snvs as demo_coding_snvs
from data_prep.demo_tasks import read_genes
from data_prep.genome import prepare_demo_yeast
from dnalm.models import read_model_config
from dnalm.tokenizer import reverse_complement
from dnalm.variants import score_variants


def coding_snvs(genome: dnalm.Genome, cds_bed: Path, n_codons: int, seed: int) -> pd.DataFrame:
    """stop_gained and synonymous SNVs at ``n_codons`` random codons (chrom, pos 1-based, ref, alt on +)."""
    records = demo_coding_snvs(genome, read_genes(cds_bed), n_codons, np.random.default_rng(seed))
    return pd.DataFrame(records, columns=["chrom", "pos", "id", "ref", "alt", "class", "gene"])


def _training_length(args) -> int | None:
    """Window length of the model's last pretraining stage (recorded by dnalm pretrain), if known."""
    if args.random_init:
        return None
    _, extra = read_model_config(args.model)
    stages = (extra or {}).get("pretrain", {}).get("config", {}).get("stages") or []
    return int(stages[-1]["length"]) if stages and stages[-1].get("length") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="runs/demo_pretrain/model", help="model directory")
    ap.add_argument(
        "--random-init", metavar="PRESET", help="score with an untrained model of this preset instead"
    )
    ap.add_argument(
        "--genome-dir", default="runs/demo_yeast", help="prepared demo genome (built when missing)"
    )
    ap.add_argument("--codons", type=int, default=300)
    ap.add_argument(
        "--window", type=int, default=None, help="default: the model's last training length, else 1024"
    )
    ap.add_argument("--strands", default="both")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the scored set as TSV")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    prepared = prepare_demo_yeast(args.genome_dir)  # reuses a complete copy
    genome = dnalm.Genome(prepared.fasta)
    variants = coding_snvs(genome, prepared.cds_bed, args.codons, args.seed)
    if args.random_init:
        torch.manual_seed(args.seed)
        model, source = (
            dnalm.build_model(args.random_init).to(args.device).eval(),
            f"untrained {args.random_init}",
        )
    else:
        model, source = dnalm.load_model(args.model, device=args.device), args.model
    window = args.window or _training_length(args) or min(1024, model.config.max_length - 1)
    scored = score_variants(
        model,
        genome,
        variants[["chrom", "pos", "id", "ref", "alt"]],
        window=window,
        strands=args.strands,
        batch_size=args.batch_size,
    )
    if (scored["status"] != "ok").any():
        raise SystemExit(f"unexpected unscorable variants:\n{scored[scored.status != 'ok'].head()}")
    df = pd.concat([variants, scored[["llr", "embedding_cosine"]]], axis=1)
    y = (df["class"] == "stop_gained").to_numpy()
    print(
        f"model {source}; window {window}, strands {args.strands}; "
        f"{df['gene'].nunique()} ORFs, {y.sum()} stop_gained and {(~y).sum()} synonymous SNVs"
    )
    print(df.groupby("class")[["llr", "embedding_cosine"]].agg(["mean", "std", "count"]).to_string())
    print(f"AUROC(-llr)             {roc_auc_score(y, -df['llr']):.3f}")
    print(f"AUROC(embedding_cosine) {roc_auc_score(y, df['embedding_cosine']):.3f}")
    # The classes differ in base composition: stop codons are A/T-rich, so most stop-gained SNVs turn a base into
    # A/T, while half the synonymous ones (third positions) turn A/T into G/C. A model that mostly knows the
    # genome's composition (62% A/T) scores that difference. Control: compare within each substitution type
    # (strand-collapsed, e.g. C>T == G>A) and average the AUROCs weighted by size.
    df["substitution"] = [
        f"{r}>{a}" if r in "CT" else f"{reverse_complement(r)}>{reverse_complement(a)}"
        for r, a in zip(df["ref"], df["alt"])
    ]
    print("per substitution type (strand-collapsed):")
    aurocs, sizes = [], []
    for sub, g in df.groupby("substitution"):
        yy = (g["class"] == "stop_gained").to_numpy()
        line = (
            f"  {sub}: {yy.sum():>4} stop (mean llr {g['llr'][yy].mean():+.2e}), "
            f"{(~yy).sum():>4} syn (mean llr {g['llr'][~yy].mean():+.2e})"
        )
        if 0 < yy.sum() < len(yy):
            aurocs.append(roc_auc_score(yy, -g["llr"]))
            sizes.append(len(g))
            line += f", AUROC(-llr) {aurocs[-1]:.3f}"
        print(line)
    print(f"AUROC(-llr) within substitution types (size-weighted mean) {np.average(aurocs, weights=sizes):.3f}")
    if args.out:
        df.to_csv(args.out, sep="\t", index=False)


if __name__ == "__main__":
    main()

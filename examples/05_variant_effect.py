"""Variant-effect scores and in-silico mutagenesis on the demo yeast genome.

1. builds (or reuses) the demo S. cerevisiae S288C genome (`dnalm prepare-genome --demo yeast --out DIR`);
2. writes a small VCF around the ACT1 gene: a few SNVs (one multi-allelic), a deletion, an insertion, a record
   with a wrong REF and one with a `chr`-less chromosome name, and scores it with ``score_variants``
   (zero-shot LLR and embedding distance, both strands, prefix reuse);
3. writes the scored VCF (bgzip + tabix) as `dnalm score-variants` would, and reads it back with pysam;
4. runs saturation mutagenesis (ISM) over 40 bases of the ACT1 start and writes ism.tsv / ism.png;
5. scores the VCF again as two shards (``--shard 1/2``, ``2/2``) and merges them (``dnalm merge-scores``): the
   merged file is the single-process file, byte for byte.

The model is ``--model DIR`` (e.g. the demo-pretrained ``runs/demo_pretrain/model``) or, by default, an untrained
``transformer-tiny`` (the numbers then only show the plumbing).

Run: ``python examples/05_variant_effect.py [OUT_DIR] [--model DIR] [--window N] [--genome-dir DIR]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import pysam
import torch

import dnalm
from data_prep.genome import prepare_demo_yeast
from dnalm.variants import ism_to_files, score_variants, score_variants_to_file, write_variant_scores
from dnalm.variants.shard import make_selection, merge_scores


def main(out_dir: Path, model_dir: str | None, window: int, genome_dir: str | None = None) -> None:
    prepared = prepare_demo_yeast(
        genome_dir or out_dir / "genome"
    )  # about 5 s the first time; reused afterwards
    genome = dnalm.Genome(prepared.fasta)
    if model_dir:
        model = dnalm.load_model(model_dir)
    else:
        torch.manual_seed(0)
        model = dnalm.build_model("transformer-tiny", n_layer=2).eval()
        print("(untrained transformer-tiny: pass --model DIR for meaningful scores)")

    genes = pd.read_csv(prepared.genes_bed, sep="\t")
    act1 = genes[genes["gene"] == "ACT1"].iloc[0]  # actin, minus strand of chrVI
    chrom, end = act1["#chrom"], int(act1["end"])
    atg = end - 3  # 0-based start of the start codon on the + strand (CAT, reverse complement of ATG)
    seq = genome.fetch(chrom, atg - 10, atg + 10)
    p = atg - 10 + 1  # 1-based position of seq[0]
    lines = [
        f"{chrom}\t{p + 10}\tatg_1\t{seq[10]}\t{','.join(b for b in 'ACGT' if b != seq[10])}",  # multi-allelic
        f"{chrom}\t{p + 2}\tsnv\t{seq[2]}\t{'A' if seq[2] != 'A' else 'G'}",
        f"{chrom}\t{p + 4}\tdel2\t{seq[4:7]}\t{seq[4]}",
        f"{chrom}\t{p + 15}\tins3\t{seq[15]}\t{seq[15]}TTT",
        f"{chrom}\t{p + 17}\twrong_ref\t{'A' if seq[17] != 'A' else 'C'}\tG",
        f"VI\t{p + 18}\tno_chr_prefix\t{seq[18].lower()}\t{'t' if seq[18] != 'T' else 'a'}",
    ]
    vcf = out_dir / "act1.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n"
        + "".join(f"##contig=<ID={c},length={n}>\n" for c, n in genome.chrom_sizes.items())
        + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(line + "\t.\tPASS\t.\n" for line in lines)
    )

    scores = score_variants(
        model, genome, vcf, window=window, strands="both", scores=("llr", "embedding_cosine"), progress=False
    )
    with pd.option_context("display.width", 160):
        print(
            scores[["chrom", "pos", "id", "ref", "alt", "llr", "embedding_cosine", "status"]].to_string(
                index=False
            )
        )

    out_vcf = write_variant_scores(
        scores, out_dir / "act1.scored.vcf.gz", source=vcf, genome=genome, meta={"window": window}
    )
    with pysam.VariantFile(str(out_vcf)) as vf:
        print(f"\n{out_vcf.name}: {sum(1 for _ in vf)} records (input: {len(lines)}); first INFO:")
    with pysam.VariantFile(str(out_vcf)) as vf:
        first = next(iter(vf))
        print(f"  {first.id}: DNALM_LLR={first.info['DNALM_LLR']} DNALM_STATUS={first.info['DNALM_STATUS']}")

    region = f"{chrom}:{atg - 30 + 1}-{atg + 10}"
    table = ism_to_files(model, out_dir / "ism", region=region, genome=genome, flank=50, progress=False)
    print(
        f"\nISM over {region} ({len(table)} positions, 50 bp of context on each side): most sensitive positions"
    )
    print(table.nlargest(5, "importance")[["chrom", "position", "ref", "importance"]].to_string(index=False))
    print(f"wrote {out_dir / 'ism.tsv'} and {out_dir / 'ism.png'}")

    # whole-genome scale: N processes (or cluster jobs) each score one shard; the merge is the single-process file
    kw = dict(window=window, progress=False)
    single = score_variants_to_file(model, genome, vcf, out_dir / "single.vcf.gz", **kw).out
    parts = []
    for i in (1, 2):
        sel = make_selection(vcf, genome, shard=(i, 2))
        parts.append(score_variants_to_file(model, genome, vcf, out_dir / f"shard{i}.vcf", selection=sel, **kw).out)
        print(f"shard {i}/2: records {sel.records[0]}..{sel.records[1] - 1}")
    merged = merge_scores(parts, out_dir / "merged.vcf.gz")
    with pysam.VariantFile(str(single)) as a, pysam.VariantFile(str(merged)) as b:
        pairs = list(zip(a, b, strict=True))
    same = all((x.chrom, x.pos, x.id, x.alts, x.info["DNALM_STATUS"]) == (y.chrom, y.pos, y.id, y.alts,
               y.info["DNALM_STATUS"]) for x, y in pairs)
    diff = max(abs(u - v) for x, y in pairs for u, v in zip(x.info.get("DNALM_LLR", ()), y.info.get("DNALM_LLR", ()))
               if u is not None and v is not None)
    # scores can differ in the 7th digit: a record's batch neighbours change the float rounding of a forward pass
    print(f"merged shards == single process: records {same}, bytes {merged.read_bytes() == single.read_bytes()}, "
          f"max |LLR difference| {diff:.1e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", help="output folder (default: a temporary folder)")
    ap.add_argument("--model", help="model directory (default: an untrained transformer-tiny)")
    ap.add_argument("--window", type=int, default=256, help="bases per REF/ALT window")
    ap.add_argument("--genome-dir", help="demo genome folder to build or reuse (default: OUT_DIR/genome)")
    args = ap.parse_args()
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        main(Path(args.out_dir), args.model, args.window, args.genome_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp), args.model, args.window, args.genome_dir)

"""Genome access and variant reading in a few lines.

1. builds (or reuses) the demo S. cerevisiae S288C genome with `prepare_demo_yeast` (same as
   `dnalm prepare-genome --demo yeast --out DIR`),
2. fetches a gene's region on both strands with 0-based half-open coordinates, and past a chromosome end,
3. reads the C. elegans variants of the shared data (``$DNALM_DATA/model_organisms_1pct``) against their genome
   and prints how many records are usable and why the others are not.

Run: ``python examples/01_genome_and_variants.py [OUT_DIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

from data_prep.genome import prepare_demo_yeast, print_summary
from dnalm import Genome, read_variants
from dnalm.utils import data_dir


def main(out_dir: Path) -> None:
    prepared = prepare_demo_yeast(out_dir)  # about 5 s the first time; reused afterwards
    print_summary(prepared)

    genome = Genome(prepared.fasta)
    genes = pd.read_csv(prepared.genes_bed, sep="\t")
    gene = genes[genes["gene"] == "ACT1"].iloc[0]  # actin, on the minus strand of chrVI
    chrom, start, end, strand = gene["#chrom"], int(gene["start"]), int(gene["end"]), gene["strand"]
    plus = genome.fetch(chrom, start, end)
    transcribed = genome.fetch(chrom, start, end, strand=strand)
    print(f"\n{gene['name']} ({gene['gene']}) {chrom}:{start}-{end} strand {strand}, {end - start:,} bp")
    print(f"  + strand starts   {plus[:30]}...")
    print(f"  {strand} strand starts   {transcribed[:30]}...  (the gene begins with ATG)")
    print(f"  chrI aliases: I, chr1, 1 -> {genome.resolve('1')}; last 5 bp + 5 of padding:")
    size = genome.chrom_sizes["chrI"]
    print(f"  {genome.fetch('chrI', size - 5, size + 5, pad=True)}")

    worm_dir = data_dir() / "model_organisms_1pct"
    if not worm_dir.exists():
        print(f"\n{worm_dir} not found (set DNALM_DATA); skipping the VCF part")
        return
    variants = read_variants(worm_dir / "C.elegans.variants.vcf.gz", Genome(worm_dir / "C.elegans.fa.gz"))
    print(f"\n{len(variants):,} C. elegans variant alleles; status counts:")
    print(variants["status"].value_counts().to_string())
    print("\nrecords not ok (first 5):")
    print(variants.loc[variants.status != "ok", ["chrom", "pos", "id", "ref", "alt", "message"]].head().to_string())


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))

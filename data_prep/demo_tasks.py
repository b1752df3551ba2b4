"""Real tasks derived from a genome and its gene annotation, for the demo pipeline and quick checks.

From a prepared genome (``dnalm prepare-genome``, which writes ``NAME.genes.bed`` / ``NAME.cds.bed`` for
GenBank input) this module derives:

* a promoter task (GUE layout ``train.csv``, ``dev.csv``, ``test.csv`` with ``sequence,label``): the ``length``
  bases upstream of each protein-coding CDS start (strand-aware) are promoters (1); windows of the same length
  drawn uniformly from the rest of the genome (no overlap with any promoter window) are non-promoters (0);
  chromosome-level split (the last chromosomes are test, the one before them dev);
* a CRE table of promoter sequences (``cre_length`` upstream bases) with properties: ``ribosomal_protein``
  (1 for RPL*/RPS* genes, the most highly expressed promoter class in yeast, else 0) and ``gc``;
* a VCF of coding SNVs: for random codons of single-exon ORFs, every SNV that creates a stop codon
  (``stop_gained``) and every synonymous SNV, with the consequence in INFO/CSQ (1-based positions, + strand).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnalm.errors import InputError

STOPS = {"TAA", "TAG", "TGA"}
_CODE = {
    a + b + c: aa
    for (a, b, c), aa in zip(
        [(x, y, z) for x in "TCAG" for y in "TCAG" for z in "TCAG"],
        "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG",
    )
}


@dataclass
class Gene:
    """One protein-coding gene: its CDS span (0-based half-open) and strand."""

    chrom: str
    start: int
    end: int
    name: str
    strand: str
    gene: str
    exons: int


def read_genes(cds_bed: str | Path) -> list[Gene]:
    """Protein-coding genes from a ``NAME.cds.bed`` (one row per CDS exon)."""
    by_name: dict[str, Gene] = {}
    path = Path(cds_bed)
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) < 7:
                raise InputError(f"{path}, line {lineno}: expected at least 7 columns, found {len(f)}")
            chrom, start, end, name, _, strand, gene = f[:7]
            g = by_name.get(name)
            if g is None:
                by_name[name] = Gene(chrom, int(start), int(end), name, strand, gene, 1)
            else:
                g.start, g.end, g.exons = min(g.start, int(start)), max(g.end, int(end)), g.exons + 1
    return list(by_name.values())



def coding_snvs(genome, genes: list[Gene], n_codons: int, rng: np.random.Generator) -> list[tuple]:
    """stop_gained and synonymous SNVs at ``n_codons`` random codons of single-exon ORFs (one codon per ORF,
    never the start or the stop codon): every SNV of the codon that creates a stop codon or keeps the amino acid.

    Returns records ``(chrom, pos (1-based), id, ref, alt, consequence, gene)`` with alleles on the + strand.
    """
    single = [g for g in genes if g.exons == 1 and (g.end - g.start) % 3 == 0 and g.end - g.start >= 300]
    comp = str.maketrans("ACGT", "TGCA")
    records = []
    picks = rng.choice(len(single), size=min(n_codons, len(single)), replace=False)
    for gi in picks:
        g = single[int(gi)]
        orf = genome.fetch(g.chrom, g.start, g.end, g.strand)  # transcript orientation
        k = int(rng.integers(1, len(orf) // 3 - 1))  # not the start or the stop codon
        codon = orf[3 * k : 3 * k + 3]
        if codon not in _CODE or _CODE[codon] == "*":
            continue
        for j in range(3):
            for b in "ACGT":
                if b == codon[j]:
                    continue
                mut = codon[:j] + b + codon[j + 1 :]
                csq = "stop_gained" if mut in STOPS else ("synonymous" if _CODE[mut] == _CODE[codon] else None)
                if csq is None:
                    continue
                p = 3 * k + j  # offset in the ORF (transcript orientation)
                if g.strand == "+":
                    gpos, ref, alt = g.start + p, codon[j], b
                else:
                    gpos, ref, alt = g.end - 1 - p, codon[j].translate(comp), b.translate(comp)
                records.append((g.chrom, gpos + 1, f"{g.name}:c{p + 1}{codon[j]}>{b}", ref, alt, csq, g.name))
    return records

def _split_of(chrom: str, chroms: list[str], n_test: int = 2, n_dev: int = 1) -> str:
    i = chroms.index(chrom)
    if i >= len(chroms) - n_test:
        return "test"
    if i >= len(chroms) - n_test - n_dev:
        return "dev"
    return "train"


def promoter_windows(genes: list[Gene], sizes: dict[str, int], length: int) -> list[tuple[str, int, int, str, Gene]]:
    """(chrom, start, end, strand, gene) of the ``length`` bases upstream of each CDS start, inside the chromosome."""
    out = []
    for g in genes:
        if g.strand == "+":
            s, e = g.start - length, g.start
        else:
            s, e = g.end, g.end + length
        if s >= 0 and e <= sizes[g.chrom]:
            out.append((g.chrom, s, e, g.strand, g))
    return out


def derive_tasks(
    fasta: str | Path,
    cds_bed: str | Path,
    out_dir: str | Path,
    promoter_length: int = 300,
    cre_length: int = 150,
    n_codons: int = 400,
    max_promoters: int | None = None,
    seed: int = 0,
) -> dict:
    """Write the promoter task, the CRE table and the coding-SNV VCF into ``out_dir``; return a summary."""
    import pysam

    from dnalm.io.genome import Genome
    from dnalm.utils import atomic_path, atomic_write

    rng = np.random.default_rng(seed)
    genome = Genome(fasta)
    sizes = genome.chrom_sizes
    chroms = list(sizes)
    genes = [g for g in read_genes(cds_bed) if g.chrom in sizes]
    if not genes:
        raise InputError(f"{cds_bed}: no CDS on the chromosomes of {fasta}")
    out = Path(out_dir)
    summary: dict = {"genome": str(fasta), "genes": len(genes)}

    # ---------------- promoter vs non-promoter windows
    prom = promoter_windows(genes, sizes, promoter_length)
    if max_promoters and len(prom) > max_promoters:
        prom = [prom[i] for i in sorted(rng.choice(len(prom), max_promoters, replace=False))]
    occupied = {c: np.zeros(sizes[c], dtype=bool) for c in chroms}
    for c, s, e, _, _ in promoter_windows(genes, sizes, promoter_length):
        occupied[c][s:e] = True
    total = sum(sizes.values())
    rows = {"train": [], "dev": [], "test": []}
    for c, s, e, strand, _ in prom:
        rows[_split_of(c, chroms)].append((genome.fetch(c, s, e, strand), 1))
    negatives, tries = 0, 0
    while negatives < len(prom) and tries < 50 * len(prom):
        tries += 1
        c = chroms[int(rng.choice(len(chroms), p=[sizes[x] / total for x in chroms]))]
        s = int(rng.integers(0, sizes[c] - promoter_length))
        if occupied[c][s : s + promoter_length].any():
            continue
        seq = genome.fetch(c, s, s + promoter_length, "+" if rng.random() < 0.5 else "-")
        if seq.count("N") > 0:
            continue
        rows[_split_of(c, chroms)].append((seq, 0))
        negatives += 1
    task_dir = out / "promoters"
    for split, items in rows.items():
        order = rng.permutation(len(items))
        with atomic_write(task_dir / f"{split}.csv", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sequence", "label"])
            for i in order:
                w.writerow(items[i])
    summary["promoters"] = {k: {"n": len(v), "positives": sum(l for _, l in v)} for k, v in rows.items()}

    # ---------------- CRE table: promoter sequences with properties
    cre = promoter_windows(genes, sizes, cre_length)
    with atomic_write(out / "cre" / "promoters.tsv", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["sequence", "gene", "name", "chrom", "start", "end", "strand", "ribosomal_protein", "gc"])
        n_rp = 0
        for c, s, e, strand, g in cre:
            seq = genome.fetch(c, s, e, strand)
            rp = int(g.gene.upper().startswith(("RPL", "RPS")))
            n_rp += rp
            gc = (seq.count("G") + seq.count("C")) / max(1, len(seq) - seq.count("N"))
            w.writerow([seq, g.gene, g.name, c, s, e, strand, rp, f"{gc:.4f}"])
    summary["cre"] = {"n": len(cre), "ribosomal_protein": n_rp}

    # ---------------- coding SNVs: stop-gained vs synonymous
    records = coding_snvs(genome, genes, n_codons, rng)
    records.sort(key=lambda r: (chroms.index(r[0]), r[1], r[4]))
    vcf_text = ["##fileformat=VCFv4.2", "##source=dnalm derive-tasks"]
    vcf_text += [f"##contig=<ID={c},length={sizes[c]}>" for c in chroms]
    vcf_text += [
        '##INFO=<ID=CSQ,Number=1,Type=String,Description="stop_gained or synonymous">',
        '##INFO=<ID=GENE,Number=1,Type=String,Description="systematic ORF name">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    vcf_text += [f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\tCSQ={q};GENE={gn}" for c, p, i, r, a, q, gn in records]
    vcf_path = out / "variants" / "coding_snvs.vcf.gz"
    with atomic_path(out / "variants" / "coding_snvs.vcf") as tmp:
        tmp.write_text("\n".join(vcf_text) + "\n")
        plain = tmp
        with atomic_path(vcf_path) as gz:
            pysam.tabix_compress(str(plain), str(gz), force=True)
    pysam.tabix_index(str(vcf_path), preset="vcf", force=True)
    (out / "variants" / "coding_snvs.vcf").unlink(missing_ok=True)
    summary["variants"] = {
        "n": len(records),
        "stop_gained": sum(r[5] == "stop_gained" for r in records),
        "synonymous": sum(r[5] == "synonymous" for r in records),
    }
    with atomic_write(out / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
    return summary

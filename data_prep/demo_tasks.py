"""Real tasks derived from a genome and its gene annotation, for the demo pipeline and quick checks.

From a prepared genome (``dnalm prepare-genome``, which writes ``NAME.genes.bed`` / ``NAME.cds.bed`` for
GenBank input) this module derives:

* a promoter task (GUE layout ``train.csv``, ``dev.csv``, ``test.csv`` with ``sequence,label``): the ``length``
  bases upstream of each protein-coding CDS start (strand-aware) are promoters (1); non-promoters (0) are windows of
  the same length from the rest of the genome (no overlap with any promoter window, random strand) *matched to the
  promoters' GC content* split by split, so that base composition alone cannot separate the classes;
  chromosome-level split (the last two chromosomes are test; dev is several of the smallest other chromosomes,
  about 12% of the bases);
* a CRE table of promoter sequences (``cre_length`` upstream bases) with properties: ``cai``, the codon adaptation
  index of the gene's ORF (Sharp & Li 1987, with the ribosomal-protein genes as the reference set: an expression
  proxy that every gene has, computed from the genome alone), ``ribosomal_protein`` (1 for RPL*/RPS* genes), ``gc``
  and ``split`` (the chromosome's train/dev/test split, for an oracle evaluated on held-out chromosomes);
* a VCF of coding SNVs: for random codons of single-exon ORFs, the SNVs that create a stop codon (``stop_gained``)
  or keep the amino acid (``synonymous``), with the consequence in INFO/CSQ (1-based positions, + strand),
  *matched by substitution*: for each coding-strand substitution (C>T, G>T, ...) as many synonymous as stop-gained
  SNVs are kept (:func:`match_substitutions`). Unmatched, the classes differ in which base changes (every stop
  codon is T-initial and A/G-rich; synonymous changes are mostly C<->T at third positions), so base composition
  alone "separates" them: on the yeast genome an order-0 Markov chain's -LLR has AUROC 0.36 on the unmatched set
  and 0.52 on the matched one. Matched, only what the substitution does to the codon is left to find.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
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
    blocks: list = field(default_factory=list)  # (start, end) of each CDS exon, 0-based half-open, + strand order


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
                by_name[name] = Gene(chrom, int(start), int(end), name, strand, gene, 1, [(int(start), int(end))])
            else:
                g.start, g.end, g.exons = min(g.start, int(start)), max(g.end, int(end)), g.exons + 1
                g.blocks.append((int(start), int(end)))
    for g in by_name.values():
        g.blocks.sort()
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

def match_substitutions(records: list[tuple], rng: np.random.Generator) -> list[tuple]:
    """Keep, for every coding-strand substitution ``X>Y`` (from the record id ``GENE:cN X>Y``), the same number of
    stop_gained and synonymous records (all of the rarer class, a random draw of the other)."""
    groups: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(records):
        sub = r[2].rsplit(":c", 1)[1].lstrip("0123456789")  # "C>T"
        groups.setdefault(sub, {"stop_gained": [], "synonymous": []})[r[5]].append(i)
    keep: list[int] = []
    for sub in sorted(groups):
        g = groups[sub]
        n = min(len(g["stop_gained"]), len(g["synonymous"]))
        for cls in ("stop_gained", "synonymous"):
            keep += sorted(int(i) for i in rng.choice(g[cls], size=n, replace=False)) if n else []
    return [records[i] for i in sorted(keep)]


def _is_ribosomal_protein(gene: Gene) -> bool:
    return gene.gene.upper().startswith(("RPL", "RPS"))


def cds_sequence(genome, gene: Gene) -> str:
    """The spliced coding sequence of a gene in transcript orientation (exons joined, reverse complemented on -)."""
    from dnalm.tokenizer import reverse_complement

    seq = "".join(genome.fetch(gene.chrom, s, e, "+") for s, e in gene.blocks)
    return seq if gene.strand == "+" else reverse_complement(seq)


def _codons(cds: str) -> list[str]:
    """Sense codons of a CDS (no stop codons, no codons with N), in order."""
    out = [cds[i : i + 3] for i in range(0, len(cds) - len(cds) % 3, 3)]
    return [c for c in out if c in _CODE and _CODE[c] != "*"]


def relative_adaptiveness(reference_cds: list[str], pseudocount: float = 0.5) -> dict[str, float]:
    """Sharp & Li (1987) weights ``w`` of each sense codon: its count in the reference genes divided by the count of
    the most used synonymous codon (``pseudocount`` added to every count so that an unseen codon is not 0)."""
    counts = {c: pseudocount for c, aa in _CODE.items() if aa != "*"}
    for cds in reference_cds:
        for c in _codons(cds):
            counts[c] += 1
    best: dict[str, float] = {}
    for c, n in counts.items():
        best[_CODE[c]] = max(best.get(_CODE[c], 0.0), n)
    return {c: n / best[_CODE[c]] for c, n in counts.items()}


def codon_adaptation_index(cds: str, weights: dict[str, float]) -> float:
    """Geometric mean of the weights of a CDS's codons, Met (ATG) and Trp (TGG) excluded (Sharp & Li 1987);
    NaN without any informative codon."""
    ln = [np.log(weights[c]) for c in _codons(cds) if _CODE[c] not in ("M", "W")]
    return float(np.exp(np.mean(ln))) if ln else float("nan")


def chromosome_splits(sizes: dict[str, int], n_test: int = 2, dev_fraction: float = 0.12, min_dev: int = 2) -> dict[str, str]:
    """Chromosome -> split: the last ``n_test`` chromosomes are test; dev is the smallest other chromosomes, added until
    they hold ``dev_fraction`` of the non-test bases (at least ``min_dev`` of them: several chromosomes, so that
    checkpoint selection does not hinge on one chromosome's idiosyncrasies); the others are train."""
    chroms = list(sizes)
    if len(chroms) < n_test + min_dev + 1:
        raise InputError(f"{len(chroms)} chromosomes: need at least {n_test + min_dev + 1} for the train/dev/test split")
    rest = chroms[: len(chroms) - n_test]
    total = sum(sizes[c] for c in rest)
    dev: list[str] = []
    for c in sorted(rest, key=lambda c: sizes[c]):
        if len(dev) >= min_dev and sum(sizes[d] for d in dev) >= dev_fraction * total:
            break
        dev.append(c)
    return {c: "test" if c not in rest else ("dev" if c in dev else "train") for c in chroms}


def gc_fraction(seq: str) -> float:
    """G+C over called bases (NaN for none)."""
    called = len(seq) - seq.count("N")
    return (seq.count("G") + seq.count("C")) / called if called else float("nan")


def match_gc(positive_gc: np.ndarray, candidate_gc: np.ndarray, rng: np.random.Generator, width: float = 0.01) -> np.ndarray:
    """One distinct candidate per positive with the nearest GC content (bins of ``width``; ties and the order of
    positives random), so that negatives and positives share a GC distribution.

    Returns:
        Indices into ``candidate_gc`` (as many as positives, or fewer when the candidates run out).
    """
    bins = np.floor(candidate_gc / width).astype(int)
    pools: dict[int, list[int]] = {}
    for i in rng.permutation(len(candidate_gc)):
        pools.setdefault(int(bins[i]), []).append(int(i))
    chosen = []
    for p in rng.permutation(len(positive_gc)):
        b = int(np.floor(positive_gc[p] / width))
        for d in range(0, int(1 / width) + 1):  # the nearest non-empty bin
            hit = next((pools[k] for k in (b - d, b + d) if pools.get(k)), None)
            if hit is not None:
                chosen.append(hit.pop())
                break
    return np.asarray(chosen, dtype=np.int64)


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
    split_of = chromosome_splits(sizes)
    total = sum(sizes.values())
    rows: dict[str, list] = {"train": [], "dev": [], "test": []}
    for c, s, e, strand, _ in prom:
        rows[split_of[c]].append((genome.fetch(c, s, e, strand), 1))
    # negatives: random windows off every promoter, random strand, then matched to the positives' GC per split
    pool: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    need, tries = 20 * len(prom), 0
    while sum(map(len, pool.values())) < need and tries < 5 * need:
        tries += 1
        c = chroms[int(rng.choice(len(chroms), p=[sizes[x] / total for x in chroms]))]
        s = int(rng.integers(0, sizes[c] - promoter_length))
        if occupied[c][s : s + promoter_length].any():
            continue
        seq = genome.fetch(c, s, s + promoter_length, "+" if rng.random() < 0.5 else "-")
        if "N" not in seq:
            pool[split_of[c]].append(seq)
    for split, items in rows.items():
        pos_gc = np.array([gc_fraction(q) for q, _ in items])
        cand = pool[split]
        picked = match_gc(pos_gc, np.array([gc_fraction(q) for q in cand]), rng)
        items += [(cand[i], 0) for i in picked]
    task_dir = out / "promoters"
    for split, items in rows.items():
        order = rng.permutation(len(items))
        with atomic_write(task_dir / f"{split}.csv", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sequence", "label"])
            for i in order:
                w.writerow(items[i])
    summary["promoters"] = {
        k: {"n": len(v), "positives": sum(lab for _, lab in v),
            "chromosomes": [c for c in chroms if split_of[c] == k],
            "gc_positives": round(float(np.mean([gc_fraction(q) for q, lab in v if lab == 1] or [np.nan])), 4),
            "gc_negatives": round(float(np.mean([gc_fraction(q) for q, lab in v if lab == 0] or [np.nan])), 4)}
        for k, v in rows.items()
    }

    # ---------------- CRE table: promoter sequences with properties
    cds = {g.name: cds_sequence(genome, g) for g in genes}
    reference = [cds[g.name] for g in genes if _is_ribosomal_protein(g)]
    weights = relative_adaptiveness(reference)
    cre = promoter_windows(genes, sizes, cre_length)
    n_rp, n_rows = 0, 0
    with atomic_write(out / "cre" / "promoters.tsv", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["sequence", "gene", "name", "chrom", "start", "end", "strand", "split", "ribosomal_protein",
                    "cai", "gc"])
        for c, s, e, strand, g in cre:
            cai = codon_adaptation_index(cds[g.name], weights)
            seq = genome.fetch(c, s, e, strand)
            if np.isnan(cai) or "N" in seq:
                continue
            rp = int(_is_ribosomal_protein(g))
            n_rp += rp
            n_rows += 1
            w.writerow([seq, g.gene, g.name, c, s, e, strand, split_of[c], rp, f"{cai:.4f}", f"{gc_fraction(seq):.4f}"])
    summary["cre"] = {"n": n_rows, "ribosomal_protein": n_rp, "cai_reference_genes": len(reference),
                      "cai_reference": "ribosomal-protein genes (RPL*/RPS*), Sharp & Li 1987"}

    # ---------------- coding SNVs: stop-gained vs synonymous
    candidates = coding_snvs(genome, genes, n_codons, rng)
    records = match_substitutions(candidates, rng)
    records.sort(key=lambda r: (chroms.index(r[0]), r[1], r[4]))
    vcf_text = ["##fileformat=VCFv4.2", "##source=dnalm derive-tasks"]
    vcf_text += [f"##contig=<ID={c},length={sizes[c]}>" for c in chroms]
    vcf_text += [
        '##INFO=<ID=CSQ,Number=1,Type=String,Description="stop_gained or synonymous">',
        "##dnalm_matching=as many synonymous as stop_gained SNVs per coding-strand substitution (X>Y)",
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
        "matched_by": "coding-strand substitution",
        "candidates": {"stop_gained": sum(r[5] == "stop_gained" for r in candidates),
                       "synonymous": sum(r[5] == "synonymous" for r in candidates)},
    }
    with atomic_write(out / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
    return summary

"""Tools behind the pipeline: tasks derived from a genome annotation, scored-VCF summaries, the report."""


import numpy as np
import pandas as pd
import pysam
import pytest
from sklearn.metrics import roc_auc_score

from data_prep.demo_tasks import _CODE, derive_tasks, read_genes
from dnalm.cli import main
from dnalm.tokenizer import reverse_complement
from dnalm.variant_summary import summarise_scored_vcf


@pytest.fixture(scope="module")
def derived(demo_yeast_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("derived")
    fasta = demo_yeast_dir / "sacCer_R64.fa.gz"
    summary = derive_tasks(fasta, demo_yeast_dir / "sacCer_R64.cds.bed", out, max_promoters=300, n_codons=120)
    return out, fasta, summary


def test_promoter_task_is_balanced_split_by_chromosome_and_upstream(derived, demo_yeast_dir):
    out, fasta, summary = derived
    splits = {s: pd.read_csv(out / "promoters" / f"{s}.csv") for s in ("train", "dev", "test")}
    for s, df in splits.items():
        assert list(df.columns) == ["sequence", "label"]
        assert df["sequence"].str.len().eq(300).all()
        assert set(df["label"]) <= {0, 1}
        assert summary["promoters"][s]["n"] == len(df)
    total_pos = sum(int(df["label"].sum()) for df in splits.values())
    total_neg = sum(int((df["label"] == 0).sum()) for df in splits.values())
    assert total_pos == 300 and total_neg == 300
    # every positive is the 300 bp upstream of a CDS start (strand-aware), checked with pysam directly
    fa = pysam.FastaFile(str(fasta))
    upstream = set()
    for g in read_genes(demo_yeast_dir / "sacCer_R64.cds.bed"):
        if g.strand == "+" and g.start >= 300:
            upstream.add(fa.fetch(g.chrom, g.start - 300, g.start).upper())
        elif g.strand == "-" and g.end + 300 <= fa.get_reference_length(g.chrom):
            upstream.add(reverse_complement(fa.fetch(g.chrom, g.end, g.end + 300).upper()))
    pos = pd.concat(splits.values()).query("label == 1")["sequence"]
    assert pos.isin(upstream).all()


def test_promoter_negatives_match_the_positives_gc_and_dev_spans_several_chromosomes(derived):
    out, _, summary = derived
    for split in ("train", "dev", "test"):
        df = pd.read_csv(out / "promoters" / f"{split}.csv")
        gc = df["sequence"].map(lambda s: (s.count("G") + s.count("C")) / len(s))
        pos, neg = gc[df["label"] == 1], gc[df["label"] == 0]
        assert len(pos) == len(neg)
        assert abs(pos.mean() - neg.mean()) < 0.01 and abs(pos.std() - neg.std()) < 0.02
        # GC alone does not separate the classes
        assert abs(roc_auc_score(df["label"], gc) - 0.5) < 0.1
    assert len(summary["promoters"]["dev"]["chromosomes"]) >= 2
    chroms = {c for s in summary["promoters"].values() for c in s["chromosomes"]}
    assert sum(len(s["chromosomes"]) for s in summary["promoters"].values()) == len(chroms)  # disjoint


def test_codon_adaptation_index_against_a_hand_computed_value():
    from data_prep.demo_tasks import codon_adaptation_index, relative_adaptiveness

    # reference: Lys AAA x3, AAG x1; Gly GGT x2 (GGC, GGA, GGG unseen); pseudocount 0.5 on every codon
    w = relative_adaptiveness(["ATGAAAAAAAAAAAGGGTGGTTAA"])
    assert w["AAA"] == 1.0 and w["AAG"] == pytest.approx(1.5 / 3.5) and w["GGC"] == pytest.approx(0.5 / 2.5)
    # ATG (Met) and the stop are not counted: geometric mean of w(AAG), w(GGC)
    assert codon_adaptation_index("ATGAAGGGCTAA", w) == pytest.approx(np.sqrt(1.5 / 3.5 * 0.5 / 2.5))


def test_cre_table_marks_ribosomal_protein_genes(derived):
    out, _, summary = derived
    df = pd.read_csv(out / "cre" / "promoters.tsv", sep="\t")
    rp = df[df["ribosomal_protein"] == 1]["gene"]
    assert len(rp) == summary["cre"]["ribosomal_protein"] > 100
    assert rp.str.upper().str.match(r"^RP[LS]").all()
    assert df["sequence"].str.len().eq(150).all()
    gc = df["sequence"].map(lambda s: (s.count("G") + s.count("C")) / len(s))
    np.testing.assert_allclose(gc, df["gc"], atol=1e-4)
    # codon adaptation index with the ribosomal-protein genes as reference: they score highest
    assert df["cai"].between(0, 1).all()
    assert df.loc[df["ribosomal_protein"] == 1, "cai"].median() > df["cai"].quantile(0.9)
    assert set(df["split"]) == {"train", "dev", "test"}


def test_coding_snvs_have_the_stated_consequence(derived, demo_yeast_dir):
    out, fasta, summary = derived
    fa = pysam.FastaFile(str(fasta))
    genes = {g.name: g for g in read_genes(demo_yeast_dir / "sacCer_R64.cds.bed")}
    n = 0
    per_substitution: dict = {}
    for rec in pysam.VariantFile(str(out / "variants" / "coding_snvs.vcf.gz")):
        n += 1
        sub = (rec.ref, rec.alts[0]) if genes[rec.info["GENE"]].strand == "+" else \
            (reverse_complement(rec.ref), reverse_complement(rec.alts[0]))
        per_substitution.setdefault(sub, []).append(rec.info["CSQ"])
        assert fa.fetch(rec.chrom, rec.pos - 1, rec.pos).upper() == rec.ref
        g = genes[rec.info["GENE"]]
        ref = fa.fetch(g.chrom, g.start, g.end).upper()
        alt = ref[: rec.pos - 1 - g.start] + rec.alts[0] + ref[rec.pos - g.start :]
        if g.strand == "-":
            ref, alt = reverse_complement(ref), reverse_complement(alt)
        p_ref = "".join(_CODE[ref[i : i + 3]] for i in range(0, len(ref), 3))
        p_alt = "".join(_CODE[alt[i : i + 3]] for i in range(0, len(alt), 3))
        if rec.info["CSQ"] == "synonymous":
            assert p_ref == p_alt
        else:
            assert rec.info["CSQ"] == "stop_gained"
            assert p_alt.index("*") < len(p_alt) - 1 and p_ref.index("*") == len(p_ref) - 1
    assert n == summary["variants"]["n"] > 50
    assert summary["variants"]["stop_gained"] > 0 and summary["variants"]["synonymous"] > 0
    # matched by coding-strand substitution: base composition alone cannot tell the classes apart
    for sub, classes in per_substitution.items():
        assert classes.count("stop_gained") == classes.count("synonymous"), sub
    cand = summary["variants"]["candidates"]
    assert cand["synonymous"] > cand["stop_gained"] >= summary["variants"]["stop_gained"]


def test_variant_summary_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        "##fileformat=VCFv4.2", "##contig=<ID=chrI,length=1000>",
        '##INFO=<ID=CSQ,Number=1,Type=String,Description="x">',
        '##INFO=<ID=DNALM_LLR,Number=A,Type=Float,Description="x">',
        '##INFO=<ID=DNALM_EMB_COS,Number=A,Type=Float,Description="x">',
        '##INFO=<ID=DNALM_STATUS,Number=.,Type=String,Description="x">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    labels, llr, emb = [], [], []
    for i in range(40):
        lab = "stop_gained" if i % 3 == 0 else "synonymous"
        a, b = rng.normal(-1 if lab == "stop_gained" else 0), rng.random()
        labels.append(lab), llr.append(round(a, 4)), emb.append(round(b, 4))
        lines.append(f"chrI\t{i + 10}\t.\tA\tC\t.\tPASS\tCSQ={lab};DNALM_LLR={a:.4f};DNALM_EMB_COS={b:.4f};DNALM_STATUS=ok")
    lines.append("chrI\t100\t.\tA\t<DEL>\t.\tPASS\tDNALM_STATUS=symbolic_allele")
    path = tmp_path / "s.vcf"
    path.write_text("\n".join(lines) + "\n")
    t = summarise_scored_vcf(path, out=tmp_path / "s.tsv")
    assert t.query("what == 'records'")["n"].item() == 41
    assert t.query("what == 'status' and group == 'symbolic_allele'")["n"].item() == 1
    is_stop = np.array([lab == "stop_gained" for lab in labels])
    row = t.query("what == 'class' and group == 'stop_gained' and score == 'DNALM_LLR'")
    assert row["auroc"].item() == pytest.approx(roc_auc_score(is_stop, -np.array(llr)))
    row = t.query("what == 'class' and group == 'stop_gained' and score == 'DNALM_EMB_COS'")
    assert row["auroc"].item() == pytest.approx(roc_auc_score(is_stop, np.array(emb)))
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t").shape[0] == len(t)
    # not a scored VCF -> clean CLI error
    plain = tmp_path / "p.vcf"
    plain.write_text("\n".join(lines[:2] + ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]) + "\n")
    assert main(["variant-summary", "--input", str(plain), "--out", str(tmp_path / "x.tsv")]) == 2


def test_report_collects_tables_plots_and_missing_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "a.csv").write_text("x,y\n1,2.5\n3,4\n")
    (tmp_path / "b.json").write_text('{"bits_per_base": 1.9, "nested": {"k": 1}}')
    (tmp_path / "c.md").write_text("| a |\n|---|\n| 1 |\n")
    plt.plot([1, 2]), plt.savefig(tmp_path / "d.png"), plt.close()
    files = ",".join(str(tmp_path / f) for f in ("a.csv", "b.json", "c.md", "d.png", "missing.tsv"))
    assert main(["report", "--out", str(tmp_path / "r" / "report.md"), "--section", f"One={files}"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## One" in md and "| 1 | 2.5000 |" in md and "| nested.k | 1 |" in md and "![d.png](report_files/d.png)" in md
    assert "_missing:" in md
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table" in html
    assert main(["report", "--out", str(tmp_path / "r2.md"), "--section", "no-equals-sign"]) == 2


def test_atomic_write_leaves_nothing_on_failure_and_normal_permissions(tmp_path):
    import os
    import stat

    from dnalm.utils import atomic_path, atomic_write

    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "b.txt") as fh:
        fh.write("half")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "c.vcf.gz") as p:
        p.write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("key, description, entry", [
    ("CSQ", "Consequence annotations from Ensembl VEP. Format: Allele|Consequence|IMPACT|SYMBOL|Gene",
     "{alt}|{cls}&splice_region_variant|HIGH|GENE1|G1,T|intron_variant|MODIFIER|GENE1|G1"),
    ("ANN", "Functional annotations: 'Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID '",
     "T|intron_variant|MODIFIER|GENE1|G1,{alt}|{cls}|HIGH|GENE1|G1"),
])
def test_variant_summary_parses_vep_and_snpeff_by_field(tmp_path, key, description, entry):
    """The class is the consequence of the annotation for that ALT allele (first term), not the whole string."""
    from dnalm.variant_summary import allele_class, annotation_fields, read_scored_vcf

    lines = [
        "##fileformat=VCFv4.2", "##contig=<ID=chrI,length=1000>",
        f'##INFO=<ID={key},Number=.,Type=String,Description="{description}">',
        '##INFO=<ID=DNALM_LLR,Number=A,Type=Float,Description="x">',
        '##INFO=<ID=DNALM_STATUS,Number=.,Type=String,Description="x">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    rng = np.random.default_rng(1)
    truth = []
    for i in range(30):
        cls = "stop_gained" if i % 2 else "synonymous_variant"
        truth.append(cls)
        value = entry.format(alt="C", cls=cls)
        lines.append(f"chrI\t{i + 10}\t.\tA\tC\t.\tPASS\t{key}={value};DNALM_LLR={rng.normal(-(i % 2)):.4f};"
                     "DNALM_STATUS=ok")
    path = tmp_path / "v.vcf"
    path.write_text("\n".join(lines) + "\n")
    df = read_scored_vcf(path, label_info=key)
    assert df["label"].tolist() == truth
    t = summarise_scored_vcf(path, label_info=key, out=tmp_path / "s.tsv")
    assert set(t.query("what == 'class'")["group"]) == {"stop_gained", "synonymous_variant"}
    with open(tmp_path / "s.png", "rb") as fh:  # score distributions per class + ROC
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert annotation_fields("x") == [] and allele_class(("stop_gained",), "C", []) == "stop_gained"


def test_markov_variant_baseline_matches_whole_chromosome_likelihoods(tmp_path):
    """The Markov LLR of a SNV (only k + 1 targets re-scored) equals the difference of the whole chromosome's
    log-likelihoods with and without the variant, under chains counted independently here."""
    import itertools
    import math

    from dnalm.variant_summary import markov_llrs

    rng = np.random.default_rng(1)
    seq_a = "".join(rng.choice(list("ACGT"), p=[0.35, 0.15, 0.15, 0.35], size=3000))
    seq_b = "".join(rng.choice(list("ACGT"), size=400))
    fa = tmp_path / "g.fa"
    fa.write_text(f">chrA\n{seq_a}\n>chrB\n{seq_b}\n")
    pysam.faidx(str(fa))
    pos = [1, 2] + sorted(rng.choice(np.arange(3, 401), size=12, replace=False))  # the first bases: less context
    alts = [next(b for b in "TGCA" if b != seq_b[p - 1]) for p in pos]
    df = pd.DataFrame({"chrom": "chrB", "pos": pos, "ref": [seq_b[p - 1] for p in pos], "alt": alts})
    got = markov_llrs(df, fa, max_k=3, exclude=["chrB"])
    for k in range(4):
        counts = {}  # (order, context) -> next-base counts, from chrA only
        for j in range(len(seq_a)):
            for o in range(min(j, k) + 1):
                counts.setdefault((o, seq_a[j - o:j]), dict.fromkeys("ACGT", 0))[seq_a[j]] += 1

        def loglik(s):
            total = 0.0
            for j in range(1, len(s)):  # the first base has no context: not scored
                c = counts.get((min(j, k), s[j - min(j, k):j]), dict.fromkeys("ACGT", 0))
                total += math.log2((c[s[j]] + 1) / (sum(c.values()) + 4))
            return total

        for i, (p, alt) in enumerate(zip(pos, alts)):
            mutated = seq_b[: p - 1] + alt + seq_b[p:]
            want = loglik(mutated) - loglik(seq_b)
            assert got[f"MARKOV_K{k}"].iloc[i] == pytest.approx(want, abs=1e-9), (k, p)
    assert list(itertools.islice(got.columns, 4)) == [f"MARKOV_K{k}" for k in range(4)]


def _scored_vcf(path, positions, llrs, chrom="I", length=1000):
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={chrom},length={length}>",
             '##INFO=<ID=DNALM_LLR,Number=A,Type=Float,Description="x">',
             '##INFO=<ID=DNALM_STATUS,Number=.,Type=String,Description="x">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{chrom}\t{p}\t.\tA\tG\t.\tPASS\tDNALM_LLR={v:.4f};DNALM_STATUS=ok" for p, v in zip(positions, llrs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_region_labels_match_a_base_by_base_lookup_gff_and_bed(tmp_path):
    """variant-summary --regions: each allele gets the first GFF type (in precedence order) that covers its base,
    else intergenic; the same from a BED by name. Checked against a per-base array painted feature by feature."""
    rng = np.random.default_rng(3)
    types = ["CDS", "five_prime_UTR", "exon", "intron", "gene"]
    feats = []  # overlapping features of every type, 1-based inclusive, on chromosome I (and one on II)
    for _ in range(40):
        a = int(rng.integers(1, 950))
        feats.append((str(rng.choice(types + ["mRNA", "transcript_region"])), a, a + int(rng.integers(0, 50))))
    gff = tmp_path / "a.gff3.gz"
    import gzip

    with gzip.open(gff, "wt") as fh:
        fh.write("##gff-version 3\n")
        for t, a, b in feats:
            fh.write(f"I\tsrc\t{t}\t{a}\t{b}\t.\t+\t.\tID=x\n")
        fh.write("II\tsrc\tCDS\t1\t10\t.\t+\t.\tID=y\n")
    painted = np.full(1001, "intergenic", dtype=object)  # 1-based
    for t in reversed(types):  # paint the lowest precedence first, so the highest ends on top
        for ft, a, b in feats:
            if ft == t:
                painted[a:b + 1] = t
    positions = np.sort(rng.choice(np.arange(1, 1001), 300, replace=False))
    llrs = rng.normal(size=300)
    vcf = _scored_vcf(tmp_path / "v.vcf", positions, llrs)
    from dnalm.variant_summary import read_scored_vcf, region_labels

    df = read_scored_vcf(vcf)
    got = region_labels(df, gff, types)
    assert list(got) == list(painted[positions])
    # a BED labels by name, first listed wins where names overlap; 0-based half-open coordinates
    bed = tmp_path / "r.bed"
    bed.write_text("I\t99\t200\tpromoter\nI\t150\t400\tenhancer\n")
    want = np.where((positions >= 100) & (positions <= 200), "promoter",
                    np.where((positions >= 151) & (positions <= 400), "enhancer", "outside"))
    assert list(region_labels(df, bed)) == list(want)
    # the summary's per-region AUROC is sklearn's one-vs-rest AUROC of -LLR
    t = summarise_scored_vcf(vcf, regions=gff, region_types=types)
    for cls in set(painted[positions]):
        row = t.query("what == 'class' and group == @cls and score == 'DNALM_LLR'")
        y = painted[positions] == cls
        assert row["auroc"].item() == pytest.approx(roc_auc_score(y, -llrs), abs=1e-4)
    # bad input: a short GFF line (file and line named), chromosome names that never match, a BED without names
    bad = tmp_path / "bad.gff"
    bad.write_text("##gff-version 3\nI\tsrc\tCDS\t5\n")
    out = tmp_path / "x.tsv"
    assert main(["variant-summary", "--input", str(vcf), "--regions", str(bad), "--out", str(out)]) == 2
    other = tmp_path / "other.gff"
    other.write_text("chrI\tsrc\tCDS\t5\t9\t.\t+\t.\tID=x\n")
    with pytest.raises(Exception, match="none of the VCF's chromosomes"):
        region_labels(df, other)
    nameless = tmp_path / "n.bed"
    nameless.write_text("I\t1\t5\n")
    with pytest.raises(Exception, match="needs a name column"):
        region_labels(df, nameless)
    assert not out.exists()  # the refused run wrote nothing
    assert main(["variant-summary", "--input", str(vcf), "--regions", str(gff), "--out", str(out)]) == 0
    assert set(pd.read_csv(out, sep="\t").query("what == 'class'")["group"]) == set(painted[positions])

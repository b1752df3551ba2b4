"""`dnalm prepare-genome`: the demo yeast genome, FASTA/GenBank inputs, and bad FASTA input."""

from __future__ import annotations

import gzip
import json
import zipfile

import pandas as pd
import pysam
import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
from Bio.SeqRecord import SeqRecord

from data_prep.genome import load_prepared, prepare_demo_yeast, prepare_genome
from dnalm.cli import main
from dnalm.errors import InputError
from dnalm.io.genome import Genome
from dnalm.utils import data_dir

YEAST_LENGTHS = {
    "chrI": 230_218,
    "chrII": 813_184,
    "chrIII": 316_620,
    "chrIV": 1_531_933,
    "chrV": 576_874,
    "chrVI": 270_161,
    "chrVII": 1_090_940,
    "chrVIII": 562_643,
    "chrIX": 439_888,
    "chrX": 745_751,
    "chrXI": 666_816,
    "chrXII": 1_078_177,
    "chrXIII": 924_431,
    "chrXIV": 784_333,
    "chrXV": 1_091_291,
    "chrXVI": 948_066,
}


def _read_bed(path):
    return pd.read_csv(path, sep="\t").rename(columns={"#chrom": "chrom"})


# -------------------------------------------------------------------------------------------- demo yeast
def test_demo_yeast_has_16_chromosomes_and_12071326_bp(demo_yeast_dir):
    fasta = pysam.FastaFile(str(demo_yeast_dir / "sacCer_R64.fa.gz"))
    assert dict(zip(fasta.references, fasta.lengths)) == YEAST_LENGTHS
    assert sum(fasta.lengths) == 12_071_326 and fasta.nreferences == 16
    sizes = pd.read_csv(demo_yeast_dir / "sacCer_R64.chrom.sizes", sep="\t", header=None)
    assert dict(zip(sizes[0], sizes[1])) == YEAST_LENGTHS
    assert (demo_yeast_dir / "sacCer_R64.fa.gz.gzi").exists()


def test_demo_yeast_equals_shared_reference(demo_yeast_dir, yeast_fasta):
    ours, shared = Genome(demo_yeast_dir / "sacCer_R64.fa.gz"), pysam.FastaFile(str(yeast_fasta))
    for chrom, size in YEAST_LENGTHS.items():
        assert ours.fetch(chrom, 0, size) == shared.fetch(chrom).upper()


def test_demo_yeast_genes_match_shared_gene_table(demo_yeast_dir):
    genes = _read_bed(demo_yeast_dir / "sacCer_R64.genes.bed")
    assert list(genes.columns) == ["chrom", "start", "end", "name", "score", "strand", "gene", "biotype"]
    assert len(genes) == 6399 and genes.name.is_unique
    assert (genes.groupby("biotype").size()[["protein_coding", "tRNA", "ncRNA", "rRNA"]] > 0).all()
    shared = data_dir() / "yeast_s288c" / "genes.bed.gz"  # compared where the shared data is present
    if shared.exists():
        ref = pd.read_csv(shared, sep="\t").rename(columns={"#chrom": "chrom"})
        key = ["chrom", "start", "end", "strand"]
        assert set(genes[key + ["name", "gene"]].itertuples(index=False, name=None)) == set(
            ref[key + ["systematic_name", "gene_name"]].itertuples(index=False, name=None)
        )


def test_demo_yeast_cds_translate_to_orfs(demo_yeast_dir):
    genome = Genome(demo_yeast_dir / "sacCer_R64.fa.gz")
    cds = _read_bed(demo_yeast_dir / "sacCer_R64.cds.bed")
    assert cds.name.nunique() == 5983  # protein-coding genes (pseudogene CDSs left out)
    spliced = cds.groupby("name").filter(lambda g: len(g) > 1).name.unique()
    assert len(spliced) > 200
    names = sorted(cds.name.unique())[::10] + list(spliced[:100])  # a sample, incl. intron-containing genes
    for name, grp in cds[cds.name.isin(names)].groupby("name"):
        grp = grp.sort_values("exon")
        seq = "".join(genome.fetch(r.chrom, r.start, r.end, r.strand) for r in grp.itertuples())
        protein = str(Seq(seq).translate())
        assert len(seq) % 3 == 0 and protein[0] == "M" and protein[-1] == "*" and "*" not in protein[:-1], (
            name
        )
        assert (grp.start < grp.end).all() and grp.phase.isin([0, 1, 2]).all()


def test_demo_yeast_is_reused_when_complete(demo_yeast_dir, capsys):
    again = prepare_demo_yeast(demo_yeast_dir)
    assert again.reused and again.total_bp == 12_071_326 and again.n_genes == 6399
    assert main(["prepare-genome", "--demo", "yeast", "--out", str(demo_yeast_dir)]) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "12,071,326" in out and "GC_%" in out and "6,399" in out
    manifest = json.loads((demo_yeast_dir / "sacCer_R64.manifest.json").read_text())
    assert manifest["sequences"] == 16 and manifest["total_bp"] == 12_071_326


# ------------------------------------------------------------------------------------------- FASTA input
def _prepare(tmp_path, text: str | bytes, name="in.fa", **kw):
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return prepare_genome(path, tmp_path / "out", **kw)


def test_fasta_round_trip_keeps_case_and_rewraps(tmp_path):
    seq = "ACGTNacgtn" * 13 + "RYK"
    result = _prepare(tmp_path, f">s1 first sequence\n{seq[:50]}\n{seq[50:]}\n\n>s2\nGGCC\n")
    assert result.fasta == tmp_path / "out" / "in.fa.gz" and not result.reused
    fasta = pysam.FastaFile(str(result.fasta))
    assert fasta.fetch("s1") == seq and fasta.fetch("s2") == "GGCC"  # soft-masking kept
    assert Genome(result.fasta).fetch("s1", 0, 10) == "ACGTNACGTN"
    with gzip.open(result.fasta, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == ">s1 first sequence" and {len(x) for x in lines[1:3]} == {60}
    assert [s.name for s in result.sequences] == ["s1", "s2"] and result.sequences[0].n == 26
    assert result.genes_bed is None and "GC_%" in result.summary_table()


def test_output_is_deterministic(tmp_path):
    text = ">a\n" + "ACGT" * 5000 + "\n>b\nNNNNAC\n"
    first = tmp_path / "one"
    second = tmp_path / "two"
    first.mkdir(), second.mkdir()
    a = _prepare(first, text)
    b = _prepare(second, text)
    for suffix in (".fa.gz", ".fa.gz.fai", ".fa.gz.gzi", ".chrom.sizes", ".manifest.json"):
        assert (a.fasta.parent / f"in{suffix}").read_bytes() == (b.fasta.parent / f"in{suffix}").read_bytes()


def test_crlf_is_accepted_with_a_note(tmp_path):
    result = _prepare(tmp_path, b">a desc\r\nACGT\r\nAC\r\n>b\r\nGG\r\n")
    assert pysam.FastaFile(str(result.fasta)).fetch("a") == "ACGTAC"
    assert any("CRLF" in n for n in result.notes)
    with gzip.open(result.fasta, "rb") as fh:
        assert b"\r" not in fh.read()


def test_gzip_fasta_input(tmp_path):
    path = tmp_path / "g.fa.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(">chr1\nACGTACGTAC\n")
    result = prepare_genome(path, tmp_path / "out")
    assert result.fasta.name == "g.fa.gz" and Genome(result.fasta).fetch("1", 2, 6) == "GTAC"


@pytest.mark.parametrize(
    "text, match",
    [
        (">a\nACGT\n>b\nAC-GT\n", r"line 4, record 'b': invalid character '-' at position 3"),
        (">a\nACGT\nAC GT\n", r"line 3, record 'a': invalid character space at position 7"),
        (">a\nACGT\n>b\n>c\nAA\n", r"record 'b' \(line 3\) is empty"),
        (">a\nACGT\n>c\nA\n>a\nAA\n", r"line 5: duplicate sequence name 'a' \(first on line 1\)"),
        ("", "no sequence records"),
        ("\n\n", "no sequence records"),
        ("ACGT\n>a\nAC\n", "line 1: expected a FASTA header"),
        (">\nACGT\n", "line 1: header '>' has no sequence name"),
        (">a\nAC\n>b\n", r"record 'b' \(line 3\) is empty"),
    ],
)
def test_bad_fasta_is_an_error_and_writes_nothing(tmp_path, text, match):
    with pytest.raises(InputError, match=match) as err:
        _prepare(tmp_path, text)
    assert "in.fa" in str(err.value)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # no half-written result, no temp folder


def test_failed_run_keeps_the_previous_result(tmp_path):
    good = _prepare(tmp_path, ">a\nACGT\n")
    with pytest.raises(InputError):
        _prepare(tmp_path, ">a\nAC*GT\n", overwrite=True)
    assert load_prepared(tmp_path / "out", "in") is not None
    assert pysam.FastaFile(str(good.fasta)).fetch("a") == "ACGT"


def test_tampered_output_is_not_reused(tmp_path):
    result = _prepare(tmp_path, ">a\nACGT\n")
    assert load_prepared(result.fasta.parent, "in").reused
    result.chrom_sizes.write_text("a\t5\n")
    assert load_prepared(result.fasta.parent, "in") is None


# ----------------------------------------------------------------------------------------- GenBank input
def _genbank_record(name="TEST1", chromosome="1"):
    seq = Seq("ATGAAATTTGGGCCCTAA" + "GT" + "ACGT" * 5 + "AG" + "TTTTTT" + "TTAGGGCCCAAATTTCAT")
    rec = SeqRecord(
        seq,
        id=f"{name}.1",
        name=name,
        description=f"test record {name}",
        annotations={"molecule_type": "DNA"},
    )
    rec.features = [
        SeqFeature(
            FeatureLocation(0, len(seq), strand=1), type="source", qualifiers={"chromosome": [chromosome]}
        ),
        SeqFeature(
            FeatureLocation(0, 18, strand=1), type="gene", qualifiers={"locus_tag": ["G1"], "gene": ["ABC1"]}
        ),
        SeqFeature(
            FeatureLocation(0, 18, strand=1), type="CDS", qualifiers={"locus_tag": ["G1"], "gene": ["ABC1"]}
        ),
        # a two-exon minus-strand CDS: complement(join(51..56, 57..74)) with the first exon (in transcription
        # order) the right-hand part
        SeqFeature(FeatureLocation(50, 74, strand=-1), type="gene", qualifiers={"locus_tag": ["G2"]}),
        SeqFeature(
            CompoundLocation([FeatureLocation(60, 74, strand=-1), FeatureLocation(46, 50, strand=-1)]),
            type="CDS",
            qualifiers={"locus_tag": ["G2"]},
        ),
        SeqFeature(FeatureLocation(18, 40, strand=1), type="gene", qualifiers={"locus_tag": ["T1"]}),
        SeqFeature(FeatureLocation(18, 40, strand=1), type="tRNA", qualifiers={"locus_tag": ["T1"]}),
    ]
    return rec


def test_genbank_input_writes_genes_and_cds(tmp_path):
    path = tmp_path / "rec.gbk"
    SeqIO.write([_genbank_record()], path, "genbank")
    result = prepare_genome(path, tmp_path / "out")
    assert [s.name for s in result.sequences] == ["TEST1.1"]
    genes = _read_bed(result.genes_bed)
    assert list(genes.itertuples(index=False, name=None)) == [
        ("TEST1.1", 0, 18, "G1", 0, "+", "ABC1", "protein_coding"),
        ("TEST1.1", 18, 40, "T1", 0, "+", "T1", "tRNA"),
        ("TEST1.1", 50, 74, "G2", 0, "-", "G2", "protein_coding"),
    ]
    cds = _read_bed(result.cds_bed)
    g2 = cds[cds.name == "G2"]
    # exons in genomic order; exon 1 (14 bp) is the right-hand one on the minus strand, so exon 2 has phase 1
    assert list(g2[["start", "end", "exon", "phase"]].itertuples(index=False, name=None)) == [
        (46, 50, 2, 1),
        (60, 74, 1, 0),
    ]
    assert result.n_genes == 3 and "genes" in result.summary_table()


def test_genbank_zip_with_chromosome_names(tmp_path):
    for i, name in enumerate(["A1", "A2"], 1):
        SeqIO.write([_genbank_record(name, chromosome=str(i))], tmp_path / f"{name}.gb", "genbank")
    zpath = tmp_path / "recs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(tmp_path / "A2.gb", "A2.gb")
        zf.write(tmp_path / "A1.gb", "A1.gb")
        zf.writestr("README.txt", "not GenBank")
    result = prepare_genome(zpath, tmp_path / "out", genbank_names="chromosome")
    assert [s.name for s in result.sequences] == ["chr1", "chr2"]  # members in name order
    assert result.fasta.name == "recs.fa.gz"


def test_genbank_without_sequence_is_an_error(tmp_path):
    path = tmp_path / "noseq.gb"
    SeqIO.write([_genbank_record()], path, "genbank")
    text = path.read_text()
    path.write_text(text[: text.index("ORIGIN")] + "ORIGIN\n//\n")  # a header with no bases
    with pytest.raises(InputError, match=r"noseq.gb: GenBank record 1 \(TEST1.1\)"):
        prepare_genome(path, tmp_path / "out")


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.fa"
    path.write_text(">a\nACGU!\n")
    assert main(["prepare-genome", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.fa: line 2, record 'a': invalid character '!' at position 5" in err and "Traceback" not in err
    assert main(["prepare-genome", "--out", str(tmp_path / "out")]) == 2
    assert "either INPUT or --demo" in capsys.readouterr().err

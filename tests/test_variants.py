"""dnalm.io.variants.read_variants: real C. elegans VCF against pysam, and small handmade bad inputs."""

from __future__ import annotations

import logging

import pandas as pd
import pysam
import pytest

from dnalm.errors import InputError
from dnalm.io.genome import Genome
from dnalm.io.variants import VARIANT_COLUMNS, VARIANT_STATUSES, read_variants

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=I,length=40>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
SEQ_I = "ACGTACGTAACCGGTTAACCGATCGATCGATTTTGGGGCA"  # 40 bp, chromosome "I"


@pytest.fixture
def tiny_genome(tmp_path):
    path = tmp_path / "tiny.fa"
    path.write_text(f">I\n{SEQ_I}\n>MtDNA\nACGTACGT\n")
    return Genome(path)


def _vcf(tmp_path, body: str, name="v.vcf", header=HEADER):
    path = tmp_path / name
    path.write_text(header + body)
    return path


def _row(*fields):
    return "\t".join(map(str, fields)) + "\n"


def _rec(chrom, pos, ref, alt, vid="."):
    return _row(chrom, pos, vid, ref, alt, ".", ".", ".")


# --------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def worm(celegans_dir):
    return Genome(celegans_dir / "C.elegans.fa.gz")


@pytest.fixture(scope="module")
def worm_variants(celegans_dir, worm):
    return read_variants(celegans_dir / "C.elegans.variants.vcf.gz", worm)


def test_celegans_records_equal_pysam(celegans_dir, worm_variants):
    with pysam.VariantFile(str(celegans_dir / "C.elegans.variants.vcf.gz")) as vcf:
        expected = [
            (r.chrom, r.pos, r.id, r.ref.upper(), alt.upper(), i, k)
            for i, r in enumerate(vcf)
            for k, alt in enumerate(r.alts, 1)
        ]
    df = worm_variants
    assert list(df.columns) == VARIANT_COLUMNS
    got = list(
        df[["chrom", "pos", "id", "ref", "alt", "record", "allele"]].itertuples(index=False, name=None)
    )
    assert got == expected
    assert len(df) == 8713


def test_celegans_ref_mismatches_are_reported(celegans_dir, worm_variants):
    df = worm_variants
    assert df.attrs["status_counts"] == {"ok": 8703, "ref_mismatch": 10}
    fasta = pysam.FastaFile(str(celegans_dir / "C.elegans.fa.gz"))
    for r in df.itertuples():  # an independent check of every record against pysam
        actual = fasta.fetch(r.chrom, r.pos - 1, r.pos - 1 + len(r.ref)).upper()
        assert (r.status == "ok") == (actual == r.ref)
    bad = df[df.status == "ref_mismatch"]
    assert all(f"REF {r.ref} but the genome has" in r.message for r in bad.itertuples())


def test_celegans_strict_names_file_record_and_position(celegans_dir, worm):
    path = celegans_dir / "C.elegans.variants.vcf.gz"
    with pytest.raises(InputError) as err:
        read_variants(path, worm, strict=True)
    msg = str(err.value)
    # the first mismatch is record 1397 (I:147301); the file has 11 header lines
    assert (
        str(path) in msg and "record 1397 (line 1408)" in msg and "I:147301" in msg and "ref_mismatch" in msg
    )


def test_summary_is_logged(celegans_dir, worm, caplog):
    with caplog.at_level(logging.WARNING, logger="dnalm.io.variants"):
        read_variants(celegans_dir / "C.elegans.variants.vcf.gz", worm)
    assert "10 ref_mismatch" in caplog.text and "record 1397" in caplog.text


def test_without_genome_only_alleles_are_checked(celegans_dir):
    df = read_variants(celegans_dir / "C.elegans.variants.vcf.gz")
    assert (df.status == "ok").all() and df.genome_chrom.isna().all()


# ------------------------------------------------------------------------------------ handmade VCFs
def test_multiallelic_records_are_split(tmp_path, tiny_genome):
    path = _vcf(tmp_path, _rec("I", 2, "C", "A,G,T", "rs1") + _rec("I", 5, "A", "G"))
    df = read_variants(path, tiny_genome)
    assert list(df.alt) == ["A", "G", "T", "G"]
    assert list(df.record) == [0, 0, 0, 1] and list(df.allele) == [1, 2, 3, 1]
    assert list(df.id[:3]) == ["rs1"] * 3 and pd.isna(df.id[3])
    assert (df.status == "ok").all()


@pytest.mark.parametrize(
    "alt", ["<DEL>", "<*>", "<NON_REF>", "G]I:30]", "]I:30]G", "G[I:30[", "*", ".G", "G."]
)
def test_symbolic_alleles_are_kept_and_flagged(tmp_path, tiny_genome, alt):
    path = _vcf(tmp_path, _rec("I", 3, "G", f"T,{alt}") + _rec("I", 4, "T", "C"))
    df = read_variants(path, tiny_genome)
    assert list(df.status) == ["ok", "symbolic_allele", "ok"]
    assert df.alt[1] == alt.upper() and df.record[1] == 0 and "skipped" in df.message[1]
    with pytest.raises(InputError, match="record 1 .*I:3: symbolic_allele"):
        read_variants(path, tiny_genome, strict=True)


def test_missing_alt_is_reported(tmp_path, tiny_genome):
    df = read_variants(_vcf(tmp_path, _rec("I", 3, "G", ".")), tiny_genome)
    assert list(df.status) == ["missing_alt"] and list(df.alt) == ["."]


def test_lower_case_ref_is_accepted(tmp_path, tiny_genome):
    df = read_variants(_vcf(tmp_path, _rec("I", 1, "acg", "a") + _rec("I", 11, "c", "t")), tiny_genome)
    assert list(df.status) == ["ok", "ok"] and list(df.ref) == ["ACG", "C"] and list(df.alt) == ["A", "T"]


def test_chr_prefix_mismatch_resolves_through_aliases(tmp_path, tiny_genome):
    body = _rec("chrI", 2, "C", "T") + _rec("chrM", 1, "A", "C") + _rec("chrII", 1, "A", "C")
    header = HEADER.replace("##contig=<ID=I,length=40>\n", "")
    df = read_variants(_vcf(tmp_path, body, header=header), tiny_genome)
    assert list(df.status) == ["ok", "ok", "unknown_chrom"]
    assert list(df.genome_chrom[:2]) == ["I", "MtDNA"] and pd.isna(df.genome_chrom[2])
    assert list(df.chrom) == ["chrI", "chrM", "chrII"]  # the input's names are kept for writing back
    assert "did you mean" in df.message[2]


def test_ref_mismatch_and_chromosome_ends(tmp_path, tiny_genome):
    body = (
        _rec("I", 1, "A", "T")  # first base
        + _rec("I", 40, "A", "T")  # last base
        + _rec("I", 39, "CA", "C")  # deletion ending on the last base
        + _rec("I", 40, "AG", "A")  # REF runs past the end
        + _rec("I", 41, "N", "A")  # one past the end
        + _rec("I", 2, "G", "T")  # genome has C
    )
    df = read_variants(_vcf(tmp_path, body), tiny_genome)
    assert list(df.status) == ["ok", "ok", "ok", "out_of_range", "out_of_range", "ref_mismatch"]
    assert "genome has C" in df.message[5]


def test_invalid_allele_characters(tmp_path, tiny_genome):
    df = read_variants(_vcf(tmp_path, _rec("I", 2, "C", "X") + _rec("I", 2, "C", "T")), tiny_genome)
    assert list(df.status) == ["invalid_allele", "ok"]


def test_every_status_is_documented(tmp_path, tiny_genome):
    body = _rec("I", 2, "C", "T") + _rec("II", 1, "A", "C") + _rec("I", 99, "A", "C") + _rec("I", 2, "C", "Z")
    body += _rec("I", 2, "G", "T") + _rec("I", 2, "C", "<DEL>") + _rec("I", 2, "C", ".") + _rec("I", 2, "C", "C")
    df = read_variants(_vcf(tmp_path, body), tiny_genome)
    assert set(df.status) == set(VARIANT_STATUSES)
    assert df.status.iloc[-1] == "ref_equals_alt"


@pytest.mark.parametrize(
    "body, match",
    [
        (_row("I", 5, ".", "A", "C"), r"line 4: 5 column\(s\), a VCF record needs at least 8"),
        (_rec("I", "x", "A", "C"), "line 4: POS 'x' is not a non-negative integer"),
        (_rec("I", 5, "A", "C") + "I 6 . A C . . .\n", "line 5: .*tabs, not spaces"),
    ],
)
def test_malformed_vcf_lines_name_file_and_line(tmp_path, body, match):
    path = _vcf(tmp_path, body)
    with pytest.raises(InputError, match=match) as err:
        read_variants(path)
    assert str(path) in str(err.value)


def test_vcf_without_column_header(tmp_path):
    path = tmp_path / "nohead.vcf"
    path.write_text("##fileformat=VCFv4.2\n" + _rec("I", 5, "A", "C"))
    with pytest.raises(InputError, match=str(path)):
        read_variants(path)


def test_bgzipped_vcf_and_genome_path(tmp_path, tiny_genome):
    plain = _vcf(tmp_path, _rec("I", 2, "C", "T") + _rec("I", 3, "G", "A,C"))
    gz = tmp_path / "v.vcf.gz"
    pysam.tabix_compress(str(plain), str(gz))
    df = read_variants(gz, str(tiny_genome.path))
    assert len(df) == 3 and (df.status == "ok").all()


def test_empty_vcf(tmp_path):
    df = read_variants(_vcf(tmp_path, ""))
    assert df.empty and list(df.columns) == VARIANT_COLUMNS


# ------------------------------------------------------------------------------ tables and DataFrames
def test_tsv_csv_and_dataframe_inputs(tmp_path, tiny_genome):
    table = pd.DataFrame(
        {
            "CHROM": ["I", "chrI", "I"],
            "POS": [2, 3, 1],
            "REF": ["C", "g", "T"],
            "ALT": ["T", "A,C", "G"],
            "ID": ["a", "b", "c"],
        }
    )
    tsv, csv = tmp_path / "v.tsv", tmp_path / "v.csv"
    table.to_csv(tsv, sep="\t", index=False)
    table.to_csv(csv, index=False)
    for source in (tsv, csv, table):
        df = read_variants(source, tiny_genome)
        assert list(df.alt) == ["T", "A", "C", "G"] and list(df.record) == [0, 1, 1, 2]
        assert list(df.status) == ["ok", "ok", "ok", "ref_mismatch"]
        assert list(df.id) == ["a", "b", "b", "c"]


def test_table_without_a_column_names_it(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("chrom,pos,ref\nI,2,C\n")
    with pytest.raises(InputError, match=f"{path}: missing column\\(s\\) alt"):
        read_variants(path)


def test_table_with_bad_position_names_the_line(tmp_path):
    path = tmp_path / "v.tsv"
    path.write_text("chrom\tpos\tref\talt\nI\t2\tC\tT\nI\ttwo\tC\tT\n")
    with pytest.raises(InputError, match="line 3: pos 'two' is not an integer"):
        read_variants(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_variants(tmp_path / "none.vcf")

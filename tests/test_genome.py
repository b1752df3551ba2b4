"""dnalm.io.genome.Genome: fetch against pysam on real genomes, padding, aliases, and bad input."""

from __future__ import annotations

import gzip
import multiprocessing
import pickle
import random
import shutil

import pysam
import pytest
from Bio.Seq import reverse_complement as bio_rc
from hypothesis import given, settings
from hypothesis import strategies as st

import dnalm.io.genome as genome_mod
from dnalm.errors import InputError
from dnalm.io.genome import Genome


@pytest.fixture(scope="module")
def yeast(yeast_fasta):
    return Genome(yeast_fasta)


def _write_fasta(path, records, width=60):
    with open(path, "w") as fh:
        for name, seq in records:
            fh.write(f">{name}\n")
            fh.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
    return path


@pytest.fixture
def tiny_fasta(tmp_path):
    """A plain FASTA with human-style names (chr1, chrM) and soft-masked bases, without an index."""
    rng = random.Random(0)
    recs = [("chr1", "".join(rng.choice("ACGTacgtN") for _ in range(257))), ("chrM", "ACGTTGCA" * 5)]
    return _write_fasta(tmp_path / "tiny.fa", recs), dict(recs)


# ------------------------------------------------------------------------------------- against pysam
def test_fetch_equals_pysam_on_random_regions_both_strands(yeast, yeast_fasta):
    ref = pysam.FastaFile(str(yeast_fasta))
    rng = random.Random(1234)
    names = list(yeast.chrom_sizes)
    for _ in range(300):
        chrom = rng.choice(names)
        size = yeast.chrom_sizes[chrom]
        start = rng.randrange(size)
        end = min(size, start + rng.randrange(0, 5000))
        expected = ref.fetch(chrom, start, end).upper()
        assert yeast.fetch(chrom, start, end) == expected
        assert yeast.fetch(chrom, start, end, strand="-") == bio_rc(expected)


def test_padding_past_both_ends_matches_pysam(yeast, yeast_fasta):
    ref = pysam.FastaFile(str(yeast_fasta))
    rng = random.Random(7)
    for chrom in yeast.chrom_sizes:
        size = yeast.chrom_sizes[chrom]
        left, right = rng.randrange(1, 300), rng.randrange(1, 300)
        inner = rng.randrange(1, 500)
        # run off the start
        got = yeast.fetch(chrom, -left, inner, pad=True)
        assert got == "N" * left + ref.fetch(chrom, 0, inner).upper()
        # run off the end, both strands
        got = yeast.fetch(chrom, size - inner, size + right, pad=True)
        expected = ref.fetch(chrom, size - inner, size).upper() + "N" * right
        assert got == expected
        assert yeast.fetch(chrom, size - inner, size + right, strand="-", pad=True) == bio_rc(expected)
    # wholly outside the chromosome
    assert yeast.fetch("chrI", -10, -3, pad=True) == "N" * 7
    size = yeast.chrom_sizes["chrI"]
    assert yeast.fetch("chrI", size + 5, size + 9, pad=True) == "NNNN"


def test_outside_without_pad_and_bad_coordinates_are_errors(yeast):
    size = yeast.chrom_sizes["chrI"]
    with pytest.raises(InputError, match="pad=True"):
        yeast.fetch("chrI", size - 5, size + 1)
    with pytest.raises(InputError, match="pad=True"):
        yeast.fetch("chrI", -1, 10)
    with pytest.raises(InputError, match="start > end"):
        yeast.fetch("chrI", 10, 5)
    with pytest.raises(InputError, match="strand"):
        yeast.fetch("chrI", 0, 5, strand="x")
    with pytest.raises(InputError, match="integers"):
        yeast.fetch("chrI", 0.5, 5)
    assert yeast.fetch("chrI", 5, 5) == ""
    assert yeast.fetch("chrI", size - 3, size) == yeast.fetch("chrI", size - 3, size + 2, pad=True)[:3]


def test_ecoli_whole_chromosome_matches_pysam(ecoli_fasta):
    g = Genome(ecoli_fasta)
    ref = pysam.FastaFile(str(ecoli_fasta))
    (name,) = g.names
    assert g.fetch(name, 0, g.chrom_sizes[name]) == ref.fetch(name).upper()


# ------------------------------------------------------------------------------------------- aliases
def test_yeast_aliases(yeast):
    for alias in ("chrI", "I", "chr1", "1", "chr01", "chromosome1"):
        assert yeast.resolve(alias) == "chrI"
    for alias in ("XVI", "16", "chr16", "chrXVI"):
        assert yeast.resolve(alias) == "chrXVI"
    assert yeast.fetch("I", 100, 130) == yeast.fetch("chrI", 100, 130)
    assert "chrM" not in yeast  # the shared R64 copy has no mitochondrion
    assert yeast.length("X") == 745_751


def test_worm_aliases_keep_x_as_x(celegans_dir):
    worm = Genome(celegans_dir / "C.elegans.fa.gz")
    assert worm.resolve("chrI") == "I"
    assert worm.resolve("chrX") == "X"
    for alias in ("chrM", "MT", "M", "mtDNA", "chrMT"):
        assert worm.resolve(alias) == "MtDNA"
    # C. elegans' chromosome X is not chromosome 10: roman numbers only where they run I..n without gaps
    assert "10" not in worm
    assert "VI" not in worm


def test_human_style_aliases_on_plain_fasta(tiny_fasta):
    path, recs = tiny_fasta
    g = Genome(path)
    assert (path.parent / "tiny.fa.fai").exists()  # built on first open
    assert g.resolve("1") == "chr1"
    assert g.resolve("MT") == g.resolve("M") == g.resolve("chrM") == "chrM"
    assert g.fetch("1", 0, 257) == recs["chr1"].upper()  # soft-masked bases come back upper case
    assert g.fetch("MT", 0, 8) == "ACGTTGCA"


def test_unknown_chromosome_lists_close_names(yeast):
    with pytest.raises(InputError) as err:
        yeast.fetch("chrXVII", 0, 10)
    msg = str(err.value)
    assert "unknown chromosome 'chrXVII'" in msg and "did you mean" in msg and "chrXVI" in msg
    assert str(yeast.path) in msg


# ----------------------------------------------------------------------------------------- bad input
def test_plain_gzip_is_an_error_that_says_how_to_fix_it(tmp_path, tiny_fasta):
    path, _ = tiny_fasta
    gz = tmp_path / "plain.fa.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    with pytest.raises(InputError) as err:
        Genome(gz)
    msg = str(err.value)
    assert str(gz) in msg and "ordinary gzip" in msg and "bgzip" in msg and "dnalm prepare-genome" in msg


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Genome(tmp_path / "nope.fa")
    with pytest.raises(InputError, match="folder"):
        Genome(tmp_path)


def test_read_only_folder_without_index(tmp_path, tiny_fasta, monkeypatch):
    path, _ = tiny_fasta
    folder = tmp_path / "ro"
    folder.mkdir()
    fasta = shutil.copy(path, folder / "genome.fa")
    folder.chmod(0o555)
    try:
        if genome_mod._folder_writable(folder):  # root ignores permissions: simulate a read-only mount
            monkeypatch.setattr(genome_mod, "_folder_writable", lambda f: False)
        with pytest.raises(InputError) as err:
            Genome(fasta)
        msg = str(err.value)
        assert "read-only" in msg and "dnalm prepare-genome" in msg and ".fai" in msg
        assert not (folder / "genome.fa.fai").exists()
    finally:
        folder.chmod(0o755)


def test_bgzip_without_gzi_gets_indexed(tmp_path, tiny_fasta):
    path, recs = tiny_fasta
    bgz = tmp_path / "tiny_bgzf.fa.gz"
    pysam.tabix_compress(str(path), str(bgz))
    g = Genome(bgz)
    assert g.compressed
    assert (tmp_path / "tiny_bgzf.fa.gz.gzi").exists() and (tmp_path / "tiny_bgzf.fa.gz.fai").exists()
    assert g.fetch("chr1", 3, 100, "-") == bio_rc(recs["chr1"][3:100].upper())


def test_unindexable_fasta_points_to_prepare_genome(tmp_path):
    path = tmp_path / "ragged.fa"
    path.write_text(">a\nACGTACGT\nACG\nACGTACGT\n")  # ragged line lengths inside a record
    with pytest.raises(InputError, match="prepare-genome"):
        Genome(path)


# ---------------------------------------------------------------------------------- processes, pickle
def _fetch_in_child(g, queue):
    queue.put(g.fetch("chrI", 1000, 1100, "-"))


def test_handle_reopens_after_fork_and_pickles(yeast):
    expected = yeast.fetch("chrI", 1000, 1100, "-")  # parent handle open before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fetch_in_child, args=(yeast, queue))
    proc.start()
    got = queue.get(timeout=60)
    proc.join(60)
    assert proc.exitcode == 0 and got == expected
    assert yeast.fetch("chrI", 1000, 1100, "-") == expected  # parent unaffected
    clone = pickle.loads(pickle.dumps(yeast))
    assert clone._handle is None and clone.fetch("chrXVI", 5, 50) == yeast.fetch("chrXVI", 5, 50)


# --------------------------------------------------------------------------------- coordinate properties
_RNG = random.Random(2024)
_SYNTH = {f"chr{i}": "".join(_RNG.choice("ACGTacgtN") for _ in range(n)) for i, n in [(1, 7001), (2, 1234)]}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A bgzip genome with known sequences (soft-masked, some N): the oracle is plain string slicing."""
    folder = tmp_path_factory.mktemp("synth")
    plain = _write_fasta(folder / "synth.fa", list(_SYNTH.items()), width=70)
    pysam.tabix_compress(str(plain), str(folder / "synth.fa.gz"))
    return Genome(folder / "synth.fa.gz")


def _oracle(chrom, start, end):
    seq = _SYNTH[chrom].upper()
    return "".join(seq[i] if 0 <= i < len(seq) else "N" for i in range(start, end))


@st.composite
def _interval_points(draw):
    chrom = draw(st.sampled_from(sorted(_SYNTH)))
    size = len(_SYNTH[chrom])
    a = draw(st.integers(-100, size + 100))
    b = draw(st.integers(a, a + 1500))
    c = draw(st.integers(b, b + 1500))
    return chrom, a, b, c


@settings(max_examples=200, deadline=None)
@given(_interval_points(), st.sampled_from(["+", "-"]))
def test_fetch_coordinates_are_half_open(synth, points, strand):
    chrom, a, b, c = points
    left, right = synth.fetch(chrom, a, b, pad=True), synth.fetch(chrom, b, c, pad=True)
    whole = synth.fetch(chrom, a, c, strand, pad=True)
    assert len(whole) == c - a and len(left) == b - a
    assert left + right == synth.fetch(chrom, a, c, pad=True) == _oracle(chrom, a, c)
    if strand == "-":  # the minus strand reads the same interval backwards
        assert synth.fetch(chrom, b, c, "-", pad=True) + synth.fetch(chrom, a, b, "-", pad=True) == whole
    assert bio_rc(bio_rc(whole)) == whole
    assert synth.fetch(chrom, a, c, "-" if strand == "+" else "+", pad=True) == bio_rc(whole)
    inside = 0 <= a and c <= len(_SYNTH[chrom])
    if not inside:
        with pytest.raises(InputError):
            synth.fetch(chrom, a, c, strand)

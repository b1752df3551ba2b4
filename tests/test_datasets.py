"""Datasets: GenomeWindows, IntervalDataset, SequenceTable, read_bed — against pysam and naive references."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pandas as pd
import pysam
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from dnalm.data import GenomeWindows, IntervalDataset, SequenceTable, read_bed, resize_interval
from dnalm.errors import ConfigError, InputError
from dnalm.io.genome import Genome
from dnalm.tokenizer import DNATokenizer
from dnalm.utils import data_dir

TOK = DNATokenizer()
_COMP = str.maketrans("ACGTN", "TGCAN")


def naive_rc(seq: str) -> str:
    """Reference reverse complement, independent of the tokenizer's."""
    return seq.translate(_COMP)[::-1]


def _shared(*parts: str):
    path = data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} not found (set DNALM_DATA to the shared data folder)")
    return path


def window_key(item: dict) -> tuple:
    return item["genome"], item["chrom"], item["start"], item["strand"], tuple(item["input_ids"].tolist())


def reference_window(fasta: pysam.FastaFile, chrom: str, start: int, end: int, strand: str) -> str:
    """pysam's sequence of a window, N-padded past the chromosome end, reverse complemented on '-'."""
    size = fasta.get_reference_length(chrom)
    seq = fasta.fetch(chrom, max(start, 0), min(end, size)).upper()
    seq = "N" * max(0, -start) + seq + "N" * max(0, end - size)
    return naive_rc(seq) if strand == "-" else seq


def write_fasta(path, records: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as fh:
        for name, seq in records.items():
            fh.write(f">{name}\n")
            fh.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))


# --------------------------------------------------------------------------------------------- GenomeWindows
def test_random_windows_same_seed_same_windows_other_seed_other(yeast_fasta, ecoli_fasta):
    genomes = {"yeast": yeast_fasta, "ecoli": ecoli_fasta}
    a = [window_key(x) for x in GenomeWindows(genomes, 500, num_samples=40, seed=7, rc_prob=0.5)]
    b = [window_key(x) for x in GenomeWindows(genomes, 500, num_samples=40, seed=7, rc_prob=0.5)]
    c = [window_key(x) for x in GenomeWindows(genomes, 500, num_samples=40, seed=8, rc_prob=0.5)]
    assert a == b
    assert len(set(a) & set(c)) == 0
    assert {k[0] for k in a} == {"yeast", "ecoli"}  # both genomes are sampled
    assert {k[3] for k in a} == {"+", "-"}

    ds = GenomeWindows(genomes, 500, num_samples=40, seed=7)
    first = [window_key(x) for x in ds]
    ds.set_epoch(1)
    second = [window_key(x) for x in ds]
    ds.set_epoch(0)
    assert [window_key(x) for x in ds] == first  # epochs are reproducible, and differ from each other
    assert len(set(first) & set(second)) == 0


def test_random_windows_equal_pysam_and_deterministic_across_workers(yeast_fasta, ecoli_fasta):
    genomes = {"yeast": yeast_fasta, "ecoli": ecoli_fasta}
    ds = GenomeWindows(genomes, 300, num_samples=60, seed=3, rc_prob=0.5)
    items = list(ds)
    assert [x["index"] for x in items] == list(range(60))
    refs = {"yeast": pysam.FastaFile(str(yeast_fasta)), "ecoli": pysam.FastaFile(str(ecoli_fasta))}
    for x in items:
        assert x["end"] - x["start"] == 300 and x["input_ids"].shape == (300,)
        expected = reference_window(refs[x["genome"]], x["chrom"], x["start"], x["end"], x["strand"])
        assert TOK.decode(x["input_ids"]) == expected
    # two DataLoader workers produce exactly the same windows (each worker its own share, no repeats)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    by_worker = sorted((window_key(x) + (x["index"],) for x in loader), key=lambda k: k[-1])
    assert by_worker == [window_key(x) + (x["index"],) for x in items]


def test_random_sampling_in_proportion_to_length(yeast_fasta):
    sizes = Genome(yeast_fasta).chrom_sizes
    n = 3000
    counts = dict.fromkeys(sizes, 0)
    for x in GenomeWindows(yeast_fasta, 100, num_samples=n, seed=0, max_n_frac=None):
        counts[x["chrom"]] += 1
        assert 0 <= x["start"] <= sizes[x["chrom"]] - 100
    observed = np.array([counts[c] for c in sizes]) / n
    expected = np.array(list(sizes.values())) / sum(sizes.values())
    assert np.abs(observed - expected).max() < 0.03  # ~5 standard errors at n=3000


def _coverage_ok(intervals: list[tuple[int, int]], size: int) -> bool:
    covered = 0
    for start, end in sorted(intervals):
        if start > covered:
            return False
        covered = max(covered, end)
    return covered >= size


def test_tiled_two_workers_no_duplicates_full_coverage(yeast_fasta, ecoli_fasta):
    genomes = {"yeast": yeast_fasta, "ecoli": ecoli_fasta}
    L = 32768
    ds = GenomeWindows(genomes, L, mode="tiled", max_n_frac=None)
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=ds.collate)
    seen = []
    for batch in loader:
        assert batch["input_ids"].shape[1] == L and bool(batch["attention_mask"].all())
        seen += list(zip(batch["genome"], batch["chrom"], batch["start"].tolist(), batch["end"].tolist()))
    assert len(seen) == len(set(seen)) == len(ds)
    assert sorted(seen) == sorted((x["genome"], x["chrom"], x["start"], x["end"]) for x in ds)
    for gname, path in genomes.items():
        for chrom, size in Genome(path).chrom_sizes.items():
            tiles = [(s, min(e, size)) for g, c, s, e in seen if g == gname and c == chrom]
            assert _coverage_ok(tiles, size), (gname, chrom)
            assert len(tiles) == -(-size // L)  # ceil: full tiles plus one padded partial tile
    desc = ds.describe()
    assert desc["tiles_partial"] == 17 and desc["windows"] == desc["tiles_full"] + 17

    drop = GenomeWindows(genomes, L, mode="tiled", max_n_frac=None, last_window="drop")
    assert len(drop) == desc["tiles_full"]
    assert all(x["end"] <= Genome(genomes[x["genome"]]).chrom_sizes[x["chrom"]] for x in drop)


def test_tiled_windows_equal_pysam_with_padding_and_stride(tmp_path):
    rng = random.Random(1)
    records = {
        "a": "".join(rng.choice("ACGT") for _ in range(1234)),
        "b": "".join(rng.choice("acgt") for _ in range(250)),
    }
    fa = tmp_path / "toy.fa"
    write_fasta(fa, records)
    ds = GenomeWindows(fa, 300, mode="tiled", stride=200, max_n_frac=None, rc_prob=0.5, seed=2)
    ref = pysam.FastaFile(str(fa))
    items = list(ds)
    # chrom a: starts 0..800 full (5 tiles, last ends 1100) + partial at 1000; chrom b (250 bp): one partial
    assert [(x["chrom"], x["start"]) for x in items] == [("a", s) for s in (0, 200, 400, 600, 800, 1000)] + [
        ("b", 0)
    ]
    for x in items:
        assert TOK.decode(x["input_ids"]) == reference_window(
            ref, x["chrom"], x["start"], x["end"], x["strand"]
        )
    assert {x["strand"] for x in items} == {"+", "-"}


def test_no_window_above_n_threshold(tmp_path):
    rng = random.Random(0)
    seqs = {}
    for name, n in (("chr1", 20000), ("chr2", 8000)):
        s = [rng.choice("ACGT") for _ in range(n)]
        for _ in range(12):  # planted N runs of 50..600 bp
            a, k = rng.randrange(0, n - 600), rng.randrange(50, 600)
            s[a : a + k] = ["N"] * k
        seqs[name] = "".join(s)
    seqs["chr2"] = seqs["chr2"][:3000] + "N" * 2000 + seqs["chr2"][5000:]
    fa = tmp_path / "planted.fa"
    write_fasta(fa, seqs)
    L, limit = 200, 0.1

    def n_frac(chrom, start):  # over real bases only (padding is not genome)
        real = seqs[chrom][start : start + L]
        return real.count("N") / len(real)

    ds = GenomeWindows(fa, L, num_samples=400, max_n_frac=limit, seed=5)
    items = list(ds)
    assert len(items) == 400
    assert all(n_frac(x["chrom"], x["start"]) <= limit for x in items)
    assert ds.stats["redrawn_n"] > 0  # the planted runs were actually hit and redrawn
    assert max(n_frac(x["chrom"], x["start"]) for x in items) > 0  # windows with a few N are kept

    tiled = GenomeWindows(fa, L, mode="tiled", max_n_frac=limit)
    kept = [(x["chrom"], x["start"]) for x in tiled]
    expected = [(c, s) for c, seq in seqs.items() for s in range(0, len(seq), L) if n_frac(c, s) <= limit]
    assert kept == expected
    assert tiled.stats["skipped_n"] == len(tiled) - len(expected) > 0

    all_n = tmp_path / "alln.fa"
    write_fasta(all_n, {"x": "N" * 1000})
    with pytest.raises(InputError, match="mostly N"):
        next(iter(GenomeWindows(all_n, 100, num_samples=1, max_tries=20)))


def test_splits_disjoint_by_chromosome(yeast_fasta, ecoli_fasta):
    genomes = {"yeast": yeast_fasta, "ecoli": ecoli_fasta}
    named = {"validation": ["XVI"], "test": ["chrXV", "yeast:chrI"]}  # aliases and genome-qualified names
    by_split = {
        s: GenomeWindows(genomes, 1000, split=s, splits=named, num_samples=50)
        for s in ("train", "validation", "test")
    }
    chroms = {s: {(c.genome, c.name) for c in ds.chroms} for s, ds in by_split.items()}
    assert chroms["validation"] == {(0, "chrXVI")}
    assert chroms["test"] == {(0, "chrXV"), (0, "chrI")}
    assert not (chroms["train"] & chroms["validation"]) and not (chroms["train"] & chroms["test"])
    assert len(chroms["train"]) == 16 + 1 - 3
    for s, ds in by_split.items():
        assert {(ds.genome_names.index(x["genome"]), x["chrom"]) for x in ds} <= chroms[s]
    desc = by_split["train"].describe()["splits"]
    assert desc["validation"] == {"chromosomes": ["yeast:chrXVI"], "n_chromosomes": 1, "bp": 948066}
    assert sum(v["bp"] for v in desc.values()) == 12071326 + 4641652

    frac = {"validation": 0.125, "test": 0.125, "seed": 3}
    parts = {
        s: {c.name for c in GenomeWindows(yeast_fasta, 1000, split=s, splits=frac).chroms}
        for s in ("train", "validation", "test")
    }
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [12, 2, 2]
    assert set.union(*parts.values()) == set(Genome(yeast_fasta).chrom_sizes)
    assert not (parts["train"] & parts["validation"]) and not (parts["validation"] & parts["test"])
    again = {c.name for c in GenomeWindows(yeast_fasta, 1000, split="validation", splits=frac).chroms}
    other = {
        c.name
        for c in GenomeWindows(yeast_fasta, 1000, split="validation", splits={**frac, "seed": 4}).chroms
    }
    assert again == parts["validation"] and other != parts["validation"]

    with pytest.raises(ConfigError, match="two splits"):
        GenomeWindows(yeast_fasta, 1000, splits={"validation": ["chrI"], "test": ["I"]})
    with pytest.raises(InputError, match="chrXVII"):
        GenomeWindows(yeast_fasta, 1000, splits={"validation": ["chrXVII"]})
    with pytest.raises(ConfigError, match="not defined"):
        GenomeWindows(yeast_fasta, 1000, split="validation")


def test_genome_weights_and_special_tokens(yeast_fasta, ecoli_fasta):
    ds = GenomeWindows(
        {"yeast": yeast_fasta, "ecoli": ecoli_fasta},
        100,
        weights={"yeast": 0.0, "ecoli": 1.0},
        num_samples=20,
        add_special_tokens=True,
    )
    items = list(ds)
    assert {x["genome"] for x in items} == {"ecoli"}
    assert all(
        x["input_ids"].shape == (102,)
        and x["input_ids"][0] == TOK.bos_token_id
        and x["input_ids"][-1] == TOK.eos_token_id
        for x in items
    )
    with pytest.raises(ConfigError, match="weights"):
        GenomeWindows([yeast_fasta, ecoli_fasta], 100, weights=[1.0])


# --------------------------------------------------------------------------------------------- resizing
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3000), st.integers(1, 5000))
def test_resize_interval_properties(start, width, length):
    end = start + width
    s, e = resize_interval(start, end, length, "+")
    assert e - s == length
    assert abs((s + e) - (start + end)) <= 1  # centres agree to half a base
    # minus-strand resizing mirrors plus-strand resizing of the mirrored interval
    ms, me = resize_interval(-end, -start, length, "-")
    assert (ms, me) == (-e, -s)


def test_resize_interval_examples():
    assert resize_interval(100, 200, 50) == (125, 175)
    assert resize_interval(100, 200, 300) == (0, 300)
    assert resize_interval(0, 3, 2, "+") == (0, 2)
    assert resize_interval(0, 3, 2, "-") == (1, 3)
    assert resize_interval(10, 10, 4) == (8, 12)


# ------------------------------------------------------------------------------------------ IntervalDataset
def test_interval_dataset_centre_strand_and_padding(yeast_fasta, tmp_path):
    bed = tmp_path / "regions.bed"
    bed.write_text(
        "chrI\t1000\t1100\tr1\t0\t+\tenhancer\n"
        "I\t1000\t1100\tr2\t0\t-\tpromoter\n"  # alias of chrI
        "chrI\t10\t30\tr3\t0\t+\tenhancer\n"  # window runs before position 0: N-padded
        "chrXVI\t948000\t948060\tr4\t0\t-\tsilencer\n"  # runs past the chromosome end
    )
    ds = IntervalDataset(bed, yeast_fasta, length=500, label_columns="col7")
    ref = pysam.FastaFile(str(yeast_fasta))
    assert ds.label_to_id == {"enhancer": 0, "promoter": 1, "silencer": 2}
    assert [int(ds[i]["labels"]) for i in range(4)] == [0, 1, 0, 2]
    expected_windows = [
        ("chrI", 800, 1300, "+"),
        ("chrI", 800, 1300, "-"),
        ("chrI", -230, 270, "+"),
        ("chrXVI", 947780, 948280, "-"),
    ]
    for i, (chrom, s, e, strand) in enumerate(expected_windows):
        item = ds[i]
        assert (item["chrom"], item["start"], item["end"], item["strand"]) == (chrom, s, e, strand)
        assert TOK.decode(item["input_ids"]) == reference_window(ref, chrom, s, e, strand)
    assert TOK.decode(ds[2]["input_ids"]).startswith("N" * 230)
    assert TOK.decode(ds[3]["input_ids"]).startswith("N" * (948280 - 948066))
    assert TOK.decode(ds[1]["input_ids"]) == naive_rc(TOK.decode(ds[0]["input_ids"]))

    plain = IntervalDataset(bed, yeast_fasta, length=500, label_columns="col7", strand_aware=False)
    assert TOK.decode(plain[1]["input_ids"]) == TOK.decode(ds[0]["input_ids"])

    aug = IntervalDataset(bed, yeast_fasta, length=500, label_columns=None, rc_augment=0.5, seed=1)
    aug2 = IntervalDataset(bed, yeast_fasta, length=500, label_columns=None, rc_augment=0.5, seed=1)
    assert [aug[i]["strand"] for i in range(4)] == [aug2[i]["strand"] for i in range(4)]  # deterministic
    for i in range(4):
        x = aug[i]
        assert TOK.decode(x["input_ids"]) == reference_window(
            ref, x["chrom"], x["start"], x["end"], x["strand"]
        )
    assert "labels" not in aug[0]

    # variable-length intervals + collate: [PAD] padding and attention mask
    raw = IntervalDataset(bed, yeast_fasta, length=None, label_columns="col7")
    batch = raw.collate([raw[0], raw[2]])
    assert batch["input_ids"].shape == (2, 100)
    assert batch["attention_mask"].sum(1).tolist() == [100, 20]
    assert (batch["input_ids"][1, 20:] == TOK.pad_token_id).all()
    assert batch["labels"].tolist() == [0, 0]


def test_interval_dataset_bend_multilabel(tmp_path):
    bend = _shared("bend", "basset_samples.bed")
    table = read_bed(bend)
    size = int(table["end"].max()) + 1000
    fa = tmp_path / "chr19.fa"
    unit = "ACGTTGCA" * 8
    write_fasta(fa, {"chr19": unit * (size // len(unit) + 1)})
    ds = IntervalDataset(bend, fa, length=1000)  # label column found automatically (BEND's 7th column)
    raw_lines = [line.split("\t") for line in bend.read_text().splitlines()]
    max_label = max(int(v) for f in raw_lines for v in f[6].split(","))
    assert ds.num_classes == max_label + 1 and len(ds) == len(raw_lines)
    for i, fields in enumerate(raw_lines):
        expected = np.zeros(max_label + 1, dtype=np.float32)
        expected[[int(v) for v in fields[6].split(",")]] = 1
        item = ds[i] if i < 3 else None
        assert np.array_equal(ds.labels[i], expected)
        if item is not None:
            assert item["labels"].dtype == torch.float32 and torch.equal(
                item["labels"], torch.from_numpy(expected)
            )
            assert item["input_ids"].shape == (1000,)
            centre = (int(fields[1]) + int(fields[2])) // 2
            assert (item["start"], item["end"]) == (centre - 500, centre + 500)
    wide = IntervalDataset(bend, fa, length=1000, num_classes=164)
    assert wide.labels.shape == (len(raw_lines), 164) and wide.labels[:, 18:].sum() == 0
    with pytest.raises(InputError, match=r"line 1: label 10 in column 'col7' is outside the 10 classes"):
        IntervalDataset(bend, fa, length=1000, num_classes=10)
    assert read_bed(bend, label_columns="col7")["col7"][1] == [17]


# --------------------------------------------------------------------------------------------- read_bed
def test_read_bed_header_gzip_and_numeric_columns(tmp_path):
    text = (
        "# made by hand\nchromosome\tstart\tend\tsplit\tlabel\n"
        "chr1\t0\t10\ttrain\t0.5\n\nchr2\t5\t7\ttest\t1.5\n"
    )
    path = tmp_path / "t.bed.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    df = read_bed(path)
    assert list(df.columns) == ["chrom", "start", "end", "split", "label", "line"]
    assert df["line"].tolist() == [3, 5] and df["label"].tolist() == [0.5, 1.5]
    genes = _shared("yeast_s288c", "genes.bed.gz")
    g = read_bed(genes)  # '#chrom start end ...' header line
    assert list(g.columns[:6]) == ["chrom", "start", "end", "systematic_name", "gene_name", "strand"]
    assert (g["start"] <= g["end"]).all() and set(g["strand"]) <= {"+", "-"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("chrI\t200\t100", r"line 2: start 200 > end 100"),
        ("chrI\t-5\t100", r"line 2: start -5 is negative"),
        ("chrI\t1.5\t100", r"line 2: start '1.5' is not an integer"),
        ("chrI\t10\tabc", r"line 2: end 'abc' is not an integer"),
        ("chrI\t10\t20\textra", r"line 2: expected 3 columns like the first record, found 4"),
        ("chrI\t10", r"line 2: expected 3 columns like the first record, found 2"),
        ("chrZZ\t10\t20", r"line 2: unknown chromosome 'chrZZ'"),
        ("chrI\t10\t999999", r"line 2: end 999999 is past the end of chrI"),
    ],
)
def test_read_bed_bad_input(tmp_path, yeast_fasta, line, message):
    path = tmp_path / "bad.bed"
    path.write_text("chrI\t0\t10\n" + line + "\n")
    genome = Genome(yeast_fasta)
    with pytest.raises(InputError, match=message) as err:
        read_bed(path, genome=genome)
    assert str(path) in str(err.value)


def test_read_bed_bad_strand_and_empty(tmp_path):
    path = tmp_path / "s.bed"
    path.write_text("chrI\t0\t10\tx\t0\t+\nchrI\t0\t10\tx\t0\tminus\n")
    with pytest.raises(InputError, match=r"s.bed: line 2: strand 'minus'"):
        read_bed(path)
    empty = tmp_path / "e.bed"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="no intervals"):
        read_bed(empty)
    with pytest.raises(InputError, match=r"row 2: start 9 > end 3"):
        read_bed(pd.DataFrame({"chrom": ["a", "b"], "start": [0, 9], "end": [5, 3]}))


# --------------------------------------------------------------------------------------------- SequenceTable
def test_sequence_table_dnabert2_sample():
    path = _shared("dnabert2_sample_data", "train.csv")
    ds = SequenceTable(path)
    raw = pd.read_csv(path)
    assert len(ds) == len(raw) == 15
    for i in range(len(ds)):
        assert TOK.decode(ds[i]["input_ids"]) == raw["sequence"][i].upper()
        assert int(ds[i]["labels"]) == raw["label"][i]
    assert ds.num_classes == 2
    loader = DataLoader(ds, batch_size=4, collate_fn=ds.collate)
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (4, 101) and batch["labels"].tolist() == raw["label"][:4].tolist()


def test_sequence_table_errors_and_class_names(tmp_path):
    path = _shared("dnabert2_sample_data", "dev.csv")
    with pytest.raises(InputError, match=r"dev.csv: no column 'seq'.*\['sequence', 'label'\]"):
        SequenceTable(path, sequence_column="seq")
    with pytest.raises(InputError, match=r"dev.csv: no label column\(s\) \['y'\].*\['sequence', 'label'\]"):
        SequenceTable(path, label_columns="y")
    tsv = tmp_path / "t.tsv"
    tsv.write_text("sequence\tlabel\nACGT\tpromoter\nACGN\tenhancer\nACXGT\tpromoter\n")
    with pytest.raises(InputError, match=r"t.tsv: line 4: invalid character 'X' at position 2"):
        SequenceTable(tsv)
    tsv.write_text("sequence\tlabel\nACGT\tpromoter\nacgnRY\tenhancer\nTTTT\tpromoter\n")
    ds = SequenceTable(tsv, rc_augment=1.0)
    assert ds.label_to_id == {"enhancer": 0, "promoter": 1}
    assert [int(ds[i]["labels"]) for i in range(3)] == [1, 0, 1]
    assert TOK.decode(ds[1]["input_ids"]) == naive_rc("ACGNNN")
    batch = ds.collate([ds[0], ds[1]])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]

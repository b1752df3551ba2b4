"""Task loaders (GUE, GenomicBenchmarks, BEND, CSV, per-base), task specs and the k-mer baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from dnalm.errors import ConfigError, InputError
from dnalm.tokenizer import reverse_complement
from dnalm.utils import data_dir
from finetune.tasks import load_task, parse_task_spec

DATA = data_dir()


def need(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} not found (set DNALM_DATA)")
    return path


# ------------------------------------------------------------------------------------------ GUE
def test_gue_loader_sample_data_matches_the_csv_files():
    folder = need("dnabert2_sample_data")
    task = load_task(str(folder))
    assert (task.kind, task.metric, task.num_outputs) == ("binary", "mcc", 1)
    for split in ("train", "dev", "test"):
        df = pd.read_csv(folder / f"{split}.csv")
        s = task.split(split)
        assert s.sequences == df["sequence"].tolist()
        assert s.labels.tolist() == df["label"].tolist()
        assert s.meta["line"].tolist() == list(range(2, len(df) + 2))


def test_gue_task_folder_sizes_and_missing_train():
    folder = need("gue", "prom", "prom_core_tata")
    task = load_task(f"gue:{folder}")
    assert task.sizes() == {"train": 4904, "dev": 613, "test": 613}
    assert set(np.unique(task.train.labels)) == {0, 1}
    with pytest.raises(InputError, match="no train.csv"):
        load_task(f"gue:{need('gue', 'EMP', 'H3K4me3')}")


# ------------------------------------------------------------------------------------------ GenomicBenchmarks
def _fetch(fasta: Path, chrom: str, start: int, end: int, strand: str) -> str:
    with pysam.FastaFile(str(fasta)) as fa:
        seq = fa.fetch(chrom, start, end).upper()
    return reverse_complement(seq) if strand == "-" else seq


def test_genomic_benchmarks_intervals_inside_slices_resolve_strand_aware_and_others_are_reported():
    gb = need("genomic_benchmarks", "demo_human_or_worm")
    worm = need("model_organisms_1pct", "C.elegans.fa.gz")
    human = need("human_hg38_chr22_segment", "hg38_chr22_32000000_32300000.fa")
    task = load_task(f"{gb}?genome.worm={worm}&genome.human={human}@chr22:32000000")
    assert task.kind == "binary" and task.metric == "accuracy" and task.classes == ["human", "worm"]
    # independent count of the intervals inside the slices (from the raw CSVs and the .fai lengths)
    sizes = {f[0]: int(f[1]) for f in (line.split() for line in Path(f"{worm}.fai").read_text().splitlines())}
    expected = {}
    for split in ("train", "test"):
        w = pd.read_csv(gb / split / "worm.csv.gz", dtype={"region": str})
        h = pd.read_csv(gb / split / "human.csv.gz", dtype={"region": str})
        n_w = sum(r in sizes and e <= sizes[r] for r, e in zip(w.region, w.end))
        n_h = sum(r == "chr22" and s >= 32_000_000 and e <= 32_300_000 for r, s, e in zip(h.region, h.start, h.end))
        expected[split] = (n_w, n_h, len(w) + len(h))
    assert len(task.train) + len(task.dev) == sum(expected["train"][:2])
    assert len(task.test) == sum(expected["test"][:2])
    total_rows = expected["train"][2] + expected["test"][2]
    assert len(task.skipped) == total_rows - sum(expected["train"][:2]) - sum(expected["test"][:2])
    assert set(task.skipped["reason"].str.split(":").str[0]) == {"unknown chromosome", "outside the genome"}
    assert "skipped" in task.report() and "outside the genome" in task.report()
    # every resolved sequence is the genome's, reverse complemented on the - strand (checked with pysam)
    n_minus = 0
    for split in ("train", "dev", "test"):
        s = task.split(split)
        for seq, (_, row) in zip(s.sequences, s.meta.iterrows()):
            if row["class"] == "worm":
                ref = _fetch(worm, row["chrom"], row["start"], row["end"], row["strand"])
            else:
                ref = _fetch(human, "chr22", row["start"] - 32_000_000, row["end"] - 32_000_000, row["strand"])
            assert seq == ref
            assert len(seq) == row["end"] - row["start"] == 200
            n_minus += row["strand"] == "-"
    assert n_minus > 0
    # dev is carved from train, stratified and seeded: same split every time
    again = load_task(f"{gb}?genome.worm={worm}&genome.human={human}@chr22:32000000")
    assert again.dev.sequences == task.dev.sequences


def test_genomic_benchmarks_without_a_genome_for_a_class_reports_it():
    gb = need("genomic_benchmarks", "drosophila_enhancers_stark")
    fly = need("model_organisms_1pct", "D.melanogaster.fa.gz")
    task = load_task(f"gb:{gb}?genome={fly}")  # chr3L -> 3L through the genome's aliases
    assert len(task.train) + len(task.dev) + len(task.test) + len(task.skipped) == 2 * (2592 + 865)
    with pytest.raises(InputError, match="none of the train intervals"):
        load_task(f"gb:{gb}")  # no genome at all: everything skipped -> a clear error


# ------------------------------------------------------------------------------------------ BEND
def _fake_slice(tmp_path: Path, chrom: str, start: int, end: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(list("ACGT"), end - start))
    fa = tmp_path / f"{chrom}_slice.fa"
    fa.write_text(f">{chrom}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    pysam.faidx(str(fa))
    return fa


def test_bend_multilabel_bed_loads_its_label_lists(tmp_path):
    bed = need("bend", "basset_samples.bed")
    lines = [line.split("\t") for line in bed.read_text().splitlines()]
    lo = min(int(f[1]) for f in lines)
    cut = sorted(int(f[2]) for f in lines)[60]  # the slice covers about two thirds of the intervals
    fa = _fake_slice(tmp_path, "chr19", lo, cut)
    task = load_task(f"bed:{bed}?genome={fa}@chr19:{lo}&seed=3")
    assert task.kind == "multilabel" and task.metric == "auroc"
    n_labels = max(int(x) for f in lines for x in f[6].split(",")) + 1
    assert task.num_outputs == n_labels
    inside = [f for f in lines if int(f[2]) <= cut]
    assert len(task.train) + len(task.dev) + len(task.test) == len(inside)
    assert len(task.skipped) == len(lines) - len(inside) > 0
    assert (task.skipped["reason"].str.startswith("outside the genome")).all()
    with pysam.FastaFile(str(fa)) as ref:
        for split in ("train", "dev", "test"):
            s = task.split(split)
            for seq, lab, (_, row) in zip(s.sequences, s.labels, s.meta.iterrows()):
                f = lines[row["line"] - 1]
                assert sorted(np.flatnonzero(lab).tolist()) == sorted(int(x) for x in f[6].split(","))
                assert seq == ref.fetch("chr19", int(f[1]) - lo, int(f[2]) - lo)


# ------------------------------------------------------------------------------------------ CSV / specs / per-base
def test_csv_regression_multioutput_and_spec_errors(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"seq": ["".join(rng.choice(list("ACGT"), 20)) for _ in range(n)],
                       "a": rng.normal(size=n), "b": rng.normal(size=n)})
    path = tmp_path / "expr.tsv"
    df.to_csv(path, sep="\t", index=False)
    task = load_task(f"csv:{path}?sequence=seq&label=a")
    assert (task.kind, task.metric, task.num_outputs) == ("regression", "spearman", 1)
    assert len(task.train) + len(task.dev) + len(task.test) == n
    assert len(task.test) == 6 and len(task.dev) == 5  # 10 % test, then 10 % of the rest for dev
    multi = load_task(f"{path}?sequence=seq&label=a,b&metric=pearson")
    assert multi.num_outputs == 2 and multi.train.labels.shape[1] == 2 and multi.metric == "pearson"
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        parse_task_spec(f"csv:{path}?colour=red")
    with pytest.raises(InputError, match="no column 'sequence'"):
        load_task(f"csv:{path}")
    spec = tmp_path / "task.yaml"
    spec.write_text("type: csv\npath: expr.tsv\nsequence: seq\nlabel: b\nname: expr_b\n")
    assert load_task(str(spec)).name == "expr_b"


def test_per_base_label_tasks(tmp_path):
    rows = [("ACGTACGTAA", "0011100000"), ("GGGCCCAT", "e,e,i,i,i,e,e,e")]
    df = pd.DataFrame({"sequence": [r[0] for r in rows] * 10, "labels": ["0011100000", "00111000"] * 10})
    path = tmp_path / "tok.csv"
    df.to_csv(path, index=False)
    task = load_task(f"tokens:{path}?label=labels")
    assert task.kind == "token_classification" and task.num_outputs == 2
    all_rows = [*task.train.labels, *task.dev.labels, *task.test.labels]
    assert all(r[:5].tolist() in ([0, 0, 1, 1, 1],) for r in all_rows)
    # windows + genome + a track of labelled features
    fa = _fake_slice(tmp_path, "chrT", 0, 400)
    (tmp_path / "win.bed").write_text("".join(f"chrT\t{s}\t{s + 50}\t.\t0\t{'+-'[i % 2]}\n"
                                              for i, s in enumerate(range(0, 350, 25))))
    (tmp_path / "feat.bed").write_text("chrT\t10\t30\texon\nchrT\t100\t160\tintron\n")
    task = load_task(f"tokens:{tmp_path / 'win.bed'}?genome={fa}&track={tmp_path / 'feat.bed'}")
    assert task.classes == ["background", "exon", "intron"]
    with pysam.FastaFile(str(fa)) as ref:
        for split in ("train", "dev", "test"):
            s = task.split(split)
            for seq, lab, (_, row) in zip(s.sequences, s.labels, s.meta.iterrows()):
                truth = np.zeros(400, int)
                truth[10:30], truth[100:160] = 1, 2
                want = truth[row["start"] : row["end"]]
                fwd = ref.fetch("chrT", row["start"], row["end"])
                if row["strand"] == "-":
                    want, fwd = want[::-1], reverse_complement(fwd)
                assert lab[: len(seq)].tolist() == want.tolist() and seq == fwd


# ------------------------------------------------------------------------------------------ k-mer baseline
def test_kmer_features_match_naive_counts():
    from finetune.baselines import kmer_features, kmer_names

    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGTN"), int(rng.integers(1, 30)), p=[0.24] * 4 + [0.04])) for _ in range(25)]
    ks = (1, 2, 3)
    X = kmer_features(seqs, ks, normalize=False).toarray()
    names = kmer_names(ks)
    col = {n: i for i, n in enumerate(names)}
    for i, s in enumerate(seqs):
        ref = np.zeros(len(names))
        for k in ks:
            for j in range(len(s) - k + 1):
                w = s[j : j + k]
                if "N" not in w:
                    ref[col[w]] += 1
        assert np.array_equal(X[i], ref)
    F = kmer_features(seqs, ks).toarray()  # each k's block holds frequencies: counts / k-mers counted
    edges = np.cumsum([0] + [4**k for k in ks])
    for b in range(len(ks)):
        counts = X[:, edges[b] : edges[b + 1]]
        total = counts.sum(1, keepdims=True)
        want = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
        assert np.allclose(F[:, edges[b] : edges[b + 1]], want, atol=1e-6)


def test_kmer_baseline_finds_a_planted_motif(tmp_path):
    from finetune.baselines import kmer_baseline

    rng = np.random.default_rng(0)
    seqs, labels = [], []
    for i in range(600):
        s = list(rng.choice(list("ACGT"), 60))
        if i % 2:
            p = int(rng.integers(0, 54))
            s[p : p + 6] = "TATAAT"
        seqs.append("".join(s))
        labels.append(i % 2)
    path = tmp_path / "motif.csv"
    pd.DataFrame({"sequence": seqs, "label": labels}).to_csv(path, index=False)
    task = load_task(f"csv:{path}")
    r = kmer_baseline(task, ks=(1, 2, 3, 4, 5, 6))
    assert r.test_metrics["accuracy"] > 0.9 and r.test_metrics["mcc"] > 0.8
    shuffled = load_task(f"csv:{path}")
    rng.shuffle(shuffled.train.labels)  # no signal left -> near chance on test
    assert kmer_baseline(shuffled, ks=(1, 2, 3, 4, 5, 6)).test_metrics["accuracy"] < 0.75


def test_bend_layout_with_a_split_column(tmp_path):
    fa = _fake_slice(tmp_path, "chr1", 0, 3000)
    splits = ["train"] * 12 + ["valid"] * 4 + ["test"] * 4
    rows = [f"chr1\t{100 * i}\t{100 * i + 50}\t{sp}\t{i % 2}\n" for i, sp in enumerate(splits)]
    rows.append("chr1\t2990\t3040\ttest\t1\n")  # runs past the FASTA: reported, not dropped silently
    (tmp_path / "enh.bed").write_text("".join(rows))
    task = load_task(f"bed:{tmp_path / 'enh.bed'}?genome={fa}&label=score")
    assert task.sizes() == {"train": 12, "dev": 4, "test": 4} and task.kind == "binary"
    assert task.skipped[["split", "line"]].values.tolist() == [["test", 21]]
    assert task.dev.meta["start"].tolist() == [1200, 1300, 1400, 1500]


def test_reading_task_specs_does_not_import_torch():
    """Task loading (benchmark listing, spec checks) stays light: no torch, no Lightning until a model is needed."""
    import subprocess
    import sys

    code = ("import sys, finetune.tasks, dnalm.data.fetch, dnalm.data.bed; "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

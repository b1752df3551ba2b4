"""Sharded variant scoring: --region, --shard I/N + merge-scores, --devices N, resumption (dnalm.variants.shard)."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pysam
import pytest
import torch

import dnalm
from dnalm.cli import main as cli_main
from dnalm.errors import InputError
from dnalm.io.regions import parse_regions, parse_shard, shard_bounds
from dnalm.variants import shard as shard_mod
from dnalm.variants.shard import make_selection


def _text(path) -> str:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.read()


# ------------------------------------------------------------------------------------------------ units
def test_shard_bounds_cover_every_record_once_and_balance_work():
    rng = np.random.default_rng(0)
    work = rng.integers(0, 4, 1000).astype(float) + 0.05
    for n in (1, 2, 3, 7, 1000, 1500):
        bounds = [shard_bounds(work, i, n) for i in range(1, n + 1)]
        assert bounds[0][0] == 0 and bounds[-1][1] == len(work)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, no gap, no overlap
    bounds = [shard_bounds(work, i, 4) for i in range(1, 5)]
    sums = [work[lo:hi].sum() for lo, hi in bounds]
    assert max(sums) - min(sums) <= 2 * work.max()  # balanced by work ...
    heavy = np.r_[np.full(100, 10.0), np.full(900, 0.05)]
    _lo, hi = shard_bounds(heavy, 1, 2)
    assert hi < 100  # ... not by count of records


def test_parse_shard_and_regions(tmp_path):
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(InputError):
            parse_shard(bad)
    bed = tmp_path / "r.bed"
    bed.write_text("I\t0\t100\nII\t5\t10\n")
    regions = parse_regions(["III", "IV:11-20", str(bed)])
    assert [(r.chrom, r.start, r.end) for r in regions][1:] == [("IV", 10, 20), ("I", 0, 100), ("II", 5, 10)]
    bed.write_text("I\tx\t3\n")
    with pytest.raises(InputError, match="line 1"):
        parse_regions([str(bed)])


# ------------------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def setup(celegans_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    torch.manual_seed(0)
    model = dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 4}).eval()
    model.save_pretrained(tmp / "model")
    fasta, vcf = celegans_dir / "C.elegans.fa.gz", celegans_dir / "C.elegans.variants.vcf.gz"
    common = ["--model", str(tmp / "model"), "--fasta", str(fasta), "--input", str(vcf), "--window", "16",
              "--batch-size", "128", "--no-progress", "--threads", "1"]
    single = tmp / "single.vcf.gz"
    assert cli_main(["score-variants", *common, "--out", str(single)]) == 0
    return tmp, common, single, fasta, vcf


@pytest.mark.slow
def test_three_shards_merge_to_the_single_process_output(setup):
    tmp, common, single, _fasta, _vcf = setup
    parts = [tmp / f"part{i}.vcf" for i in (1, 2, 3)]
    for i, part in enumerate(parts, 1):
        assert cli_main(["score-variants", *common, "--shard", f"{i}/3", "--out", str(part)]) == 0
    counts = [sum(1 for line in _text(p).splitlines() if not line.startswith("#")) for p in parts]
    assert all(c > 0 for c in counts) and sum(counts) == 8713
    merged = tmp / "merged.vcf.gz"
    assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(merged)]) == 0
    assert _text(merged) == _text(single)  # same header, records, order and scores, as text
    assert merged.read_bytes() == single.read_bytes()  # and as bgzip bytes
    with pysam.VariantFile(str(merged)) as vf:  # tabix-indexed
        assert len(list(vf.fetch("I"))) > 0
    # refuses to overwrite, and refuses mixed kinds
    assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(merged)]) == 2
    assert cli_main(["merge-scores", "--input", str(parts[0]), "--out", str(tmp / "x.tsv")]) == 2


@pytest.mark.slow
def test_region_selects_records(setup):
    tmp, common, _single, _fasta, vcf = setup
    out = tmp / "region.tsv"
    assert cli_main(["score-variants", *common, "--region", "II:1-2000000", "--region", "V",
                     "--out", str(out)]) == 0
    import pandas as pd

    df = pd.read_csv(out, sep="\t")
    with pysam.VariantFile(str(vcf)) as vf:
        want = [r.id for r in vf if (r.chrom == "II" and r.pos <= 2_000_000) or r.chrom == "V"]
    assert len(want) > 0 and df["id"].tolist() == want  # one ALT per record here


@pytest.mark.slow
def test_devices_two_equals_one_and_resumes(setup, monkeypatch):
    tmp, common, single, fasta, vcf = setup
    out = tmp / "devices.vcf.gz"
    assert cli_main(["score-variants", *common, "--devices", "2", "--out", str(out)]) == 0
    assert out.read_bytes() == single.read_bytes()
    # resumption (on chromosome I only, to stay quick): with the shards of a first run kept, a second run scores
    # nothing again and merges the same file
    out2 = tmp / "devices2.vcf"
    kw = {"regions": ["I"], "window": 16, "batch_size": 128, "threads": 1, "model_name": str(tmp / "model")}
    monkeypatch.setattr(shard_mod.shutil, "rmtree", lambda *a, **k: None)
    shard_mod.score_variants_parallel(str(tmp / "model"), str(fasta), str(vcf), out2, 2, **kw)
    assert shard_mod.shards_folder(out2).is_dir()
    first = out2.read_text()
    out2.unlink()

    class NoPool:
        def __init__(self, *a, **k):
            raise AssertionError("a finished shard was scored again")

    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoPool)
    shard_mod.score_variants_parallel(str(tmp / "model"), str(fasta), str(vcf), out2, 2, **kw)
    assert out2.read_text() == first
    lines = _text(single).splitlines(keepends=True)
    assert first == "".join(x for x in lines if x.startswith(("#", "I\t")))


def test_devices_with_a_preset_give_every_worker_the_same_weights(celegans_dir, tmp_path, monkeypatch):
    """A preset name is a fresh random model: the workers share one draw (saved once), not one draw each."""
    import pandas as pd

    from dnalm.variants import score_variants_to_file

    fasta, vcf = celegans_dir / "C.elegans.fa.gz", celegans_dir / "C.elegans.variants.vcf.gz"
    out = tmp_path / "p.tsv"
    monkeypatch.setattr(shard_mod.shutil, "rmtree", lambda *a, **k: None)  # keep the saved draw to compare with
    kw = dict(window=16, batch_size=64)
    shard_mod.score_variants_parallel("transformer-tiny", str(fasta), str(vcf), out, 2, regions=["I:1-400000"],
                                      threads=1, **kw)
    saved = dnalm.load_model(shard_mod.shards_folder(out) / "model")
    one = score_variants_to_file(saved, dnalm.Genome(fasta), vcf, tmp_path / "one.tsv", progress=False,
                                 selection=make_selection(vcf, None, ["I:1-400000"]), **kw)
    a, b = pd.read_csv(out, sep="\t"), pd.read_csv(one.out, sep="\t")
    assert len(a) > 10 and a["id"].tolist() == b["id"].tolist()
    np.testing.assert_allclose(a["llr"], b["llr"], rtol=1e-5, atol=1e-8)


def test_selection_of_a_shard_with_regions(celegans_dir):
    vcf = celegans_dir / "C.elegans.variants.vcf.gz"
    genome = dnalm.Genome(celegans_dir / "C.elegans.fa.gz")
    sels = [make_selection(vcf, genome, ["I"], (i, 2)) for i in (1, 2)]
    assert sels[0].records[1] == sels[1].records[0]
    assert sels[0].shard == (1, 2) and [str(r) for r in sels[0].regions] == ["I:1-4611686018427387904"]


@pytest.mark.slow
def test_merge_scores_writes_indexed_bcf_like_one_process(setup):
    """merge-scores honours score-variants' suffix rule: --out x.bcf is BCF + .csi, with the records one process
    writes to x.bcf; BCF shards merge too (on chromosome I up to 400 kb, to stay quick)."""
    tmp, common, _single, _fasta, _vcf = setup
    region = ["--region", "I:1-400000"]
    single = tmp / "single-I.bcf"
    assert cli_main(["score-variants", *common, *region, "--out", str(single)]) == 0
    for ext in ("vcf", "bcf"):
        parts = [tmp / f"bcfpart{i}.{ext}" for i in (1, 2)]
        for i, part in enumerate(parts, 1):
            assert cli_main(["score-variants", *common, *region, "--shard", f"{i}/2", "--out", str(part)]) == 0
        merged = tmp / f"merged-from-{ext}.bcf"
        assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(merged)]) == 0
        assert merged.read_bytes()[:3] == b"\x1f\x8b\x08"  # bgzf, i.e. binary BCF, not text
        with pysam.VariantFile(str(merged)) as got, pysam.VariantFile(str(single)) as want:
            assert str(got.header) == str(want.header)
            records = [str(r) for r in got]
            assert len(records) > 10 and records == [str(r) for r in want]
        assert (tmp / f"merged-from-{ext}.bcf.csi").is_file()
        with pysam.VariantFile(str(merged)) as vf:  # the index answers a region query
            assert len(list(vf.fetch("I", 0, 200_000))) == sum(
                1 for r in records if r.split("\t")[0] == "I" and int(r.split("\t")[1]) <= 200_000)
    # an existing index beside the output counts as an output (refused without --overwrite)
    (tmp / "lone.bcf.csi").write_text("x")
    assert cli_main(["merge-scores", "--input", *map(str, parts), "--out", str(tmp / "lone.bcf")]) == 2

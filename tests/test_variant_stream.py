"""Streaming, resumable `score-variants`: chunked output equals the whole-table writer; a killed run resumes."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import torch

import dnalm
from dnalm.io.output import Terminated
from dnalm.variants import score_variants, score_variants_to_file, write_variant_scores
from dnalm.variants import scoring as scoring_module
from dnalm.variants.stream import resume_folder


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, attention=dict(n_heads=4)).eval()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(3)
    seqs = {name: "".join(rng.choice(list("ACGT"), n)) for name, n in (("1", 400), ("2", 200))}
    path = tmp_path_factory.mktemp("g") / "g.fa"
    path.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    g = dnalm.Genome(path)
    g.seqs = seqs
    return g


def _vcf(path, genome, n=23, shuffle=False):
    """``n`` records: SNVs, a multi-allelic site, a REF mismatch, an unknown contig, REF = ALT; sorted or not."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        chrom = "1" if i % 3 else "2"
        pos = int(rng.integers(1, len(genome.seqs[chrom]) + 1))
        ref = genome.seqs[chrom][pos - 1]
        alts = [b for b in "ACGT" if b != ref]
        alt = ",".join(alts[:2]) if i % 7 == 0 else alts[i % 3]
        if i == 5:
            ref = alts[0]  # mismatch
        if i == 6:
            alt = ref  # REF = ALT
        lines.append((chrom if i != 9 else "chrUn", pos, f"v{i}", ref, alt))
    if not shuffle:
        lines.sort(key=lambda r: (r[0] != "1", r[0], r[1]))
    header = ["##fileformat=VCFv4.2", "##contig=<ID=1,length=400>", "##contig=<ID=2,length=200>",
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    path.write_text("\n".join(header + ["\t".join(map(str, r)) + "\t.\t.\t." for r in lines]) + "\n")
    return path


def _text(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.read()


_FLOAT = re.compile(r"([-+]?\d*\.\d+(?:[eE][-+]?\d+)?)")


def assert_same_output(a, b):
    """Same text, except that scores may differ in the last digits (batches are composed differently)."""
    ta, tb = _FLOAT.split(_text(a)), _FLOAT.split(_text(b))
    assert len(ta) == len(tb)
    assert ta[0::2] == tb[0::2]
    np.testing.assert_allclose([float(x) for x in ta[1::2]], [float(x) for x in tb[1::2]], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["out.vcf", "out.vcf.gz", "out.tsv", "out.csv"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_chunked_output_equals_whole_table_writer(model, genome, tmp_path, name, shuffle):
    vcf = _vcf(tmp_path / "in.vcf", genome, shuffle=shuffle)
    whole = score_variants(model, genome, vcf, window=16, progress=False)
    ref = write_variant_scores(whole, tmp_path / f"ref_{name}", source=vcf, genome=genome,
                               meta={"window": 16, "strands": "both", "zero_shot": "llr"})
    run = score_variants_to_file(model, genome, vcf, tmp_path / name, window=16, progress=False, chunk_records=4)
    assert_same_output(tmp_path / name, ref)
    assert run.records == 23 and run.alleles == len(whole)
    assert run.status_counts == whole["status"].value_counts().to_dict()
    assert run.status_counts["ref_equals_alt"] == 1
    assert not resume_folder(tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"in.vcf", name, f"ref_{name}"} | ({f"{name}.tbi", f"ref_{name}.tbi"} if name.endswith(".gz") else set())
    )


def test_table_input_to_vcf_streams(model, genome, tmp_path):
    vcf = _vcf(tmp_path / "in.vcf", genome)
    whole = score_variants(model, genome, vcf, window=16, progress=False)
    tsv = tmp_path / "in.tsv"
    whole[["chrom", "pos", "id", "ref", "alt"]].drop_duplicates(["chrom", "pos", "id"]).to_csv(tsv, sep="\t", index=False)
    scores = score_variants(model, genome, tsv, window=16, progress=False)
    ref = write_variant_scores(scores, tmp_path / "ref.vcf", source=tsv, genome=genome,
                               meta={"window": 16, "strands": "both", "zero_shot": "llr"})
    score_variants_to_file(model, genome, tsv, tmp_path / "out.vcf", window=16, progress=False, chunk_records=3)
    assert_same_output(tmp_path / "out.vcf", ref)


def test_killed_run_resumes_without_rescoring(model, genome, tmp_path, monkeypatch):
    vcf = _vcf(tmp_path / "in.vcf", genome, n=40)
    out = tmp_path / "out.vcf.gz"
    score_variants_to_file(model, genome, vcf, tmp_path / "full.vcf.gz", window=16, progress=False, chunk_records=5)
    real = scoring_module.score_variants
    scored_records = []

    def counting(model_, genome_, df, **kw):
        scored_records.extend(df["record"].unique().tolist())
        if kill_after is not None and len(scored_records) > kill_after:
            raise Terminated(15)  # what SIGTERM raises in the CLI
        return real(model_, genome_, df, **kw)

    monkeypatch.setattr(scoring_module, "score_variants", counting)
    kill_after = 12
    with pytest.raises(Terminated):
        score_variants_to_file(model, genome, vcf, out, window=16, progress=False, chunk_records=5)
    assert not out.exists() and resume_folder(out).exists()
    done = sorted(scored_records)[:10]  # two whole chunks were written before the kill in the third
    scored_records.clear()
    kill_after = None
    run = score_variants_to_file(model, genome, vcf, out, window=16, progress=False, chunk_records=5)
    assert run.resumed_records == 10
    assert not set(scored_records) & set(done) and sorted(scored_records) == list(range(10, 40))
    assert_same_output(out, tmp_path / "full.vcf.gz")
    assert not resume_folder(out).exists()
    # other settings do not reuse the progress of an unfinished run
    kill_after = 3
    with pytest.raises(Terminated):
        score_variants_to_file(model, genome, vcf, tmp_path / "b.vcf", window=16, progress=False, chunk_records=5)
    kill_after = None
    scored_records.clear()
    run = score_variants_to_file(model, genome, vcf, tmp_path / "b.vcf", window=12, progress=False, chunk_records=5)
    assert run.resumed_records == 0 and sorted(scored_records) == list(range(40))

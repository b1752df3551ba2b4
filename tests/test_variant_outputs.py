"""score-variants outputs: a table keeps the input's other columns; BCF holds the same records as VCF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import dnalm
from dnalm.cli import main as cli_main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("vout")
    rng = np.random.default_rng(0)
    seqs = {c: "".join(rng.choice(list("ACGT"), n)) for c, n in (("chrA", 300), ("chrB", 200))}
    (d / "g.fa").write_text("".join(f">{c}\n{s}\n" for c, s in seqs.items()))
    torch.manual_seed(0)
    dnalm.build_model("transformer-tiny", d_model=16, n_layer=1).save_pretrained(d / "model")
    rows = []
    for i, (c, p) in enumerate([("chrA", 50), ("chrA", 120), ("chrB", 40), ("chrB", 90), ("chrZ", 5)]):
        ref = seqs[c][p - 1] if c in seqs else "A"
        alt = {"A": "G", "C": "T", "G": "A", "T": "C"}[ref] + (",T" if i == 1 and ref != "T" else "")
        rows.append({"gene": f"g{i}", "chrom": c, "pos": p, "ref": ref, "alt": alt, "label": i % 2, "status": "x"})
    pd.DataFrame(rows).to_csv(d / "v.tsv", sep="\t", index=False)
    common = ["--model", str(d / "model"), "--fasta", str(d / "g.fa"), "--input", str(d / "v.tsv"),
              "--window", "16", "--no-progress"]
    return d, common


def test_table_keeps_the_input_columns(setup):
    d, common = setup
    assert cli_main(["score-variants", *common, "--out", str(d / "o.tsv")]) == 0
    out = pd.read_csv(d / "o.tsv", sep="\t", keep_default_na=False)
    inp = pd.read_csv(d / "v.tsv", sep="\t", keep_default_na=False)
    extra = [c for c in out.columns if c in ("gene", "label", "input_status")]
    assert extra == ["gene", "label", "input_status"]  # input order; a clash with ours is renamed
    assert out.columns[-3:].tolist() == extra
    assert len(out) == len(inp) + 1  # one row per ALT allele: record 1 has two
    # each row carries its own record's values (records are input rows)
    np.testing.assert_array_equal(out["gene"], inp["gene"].to_numpy()[out["record"]])
    np.testing.assert_array_equal(out["label"], inp["label"].to_numpy()[out["record"]])
    assert set(out["input_status"]) == {"x"} and "ok" in set(out["status"])
    # the scores are those of a table without the extra columns
    bare = d / "bare.tsv"
    inp[["chrom", "pos", "ref", "alt"]].to_csv(bare, sep="\t", index=False)
    args = [a if a != str(d / "v.tsv") else str(bare) for a in common]
    assert cli_main(["score-variants", *args, "--out", str(d / "bare_o.tsv")]) == 0
    ref = pd.read_csv(d / "bare_o.tsv", sep="\t")
    assert ref.columns.tolist() == out.columns[:-3].tolist()
    np.testing.assert_allclose(out["llr"].astype(float), ref["llr"], equal_nan=True)


def test_table_columns_survive_shards(setup):
    d, common = setup
    assert cli_main(["score-variants", *common, "--out", str(d / "one.tsv")]) == 0
    parts = []
    for i in (1, 2):
        part = d / f"s{i}.tsv"
        assert cli_main(["score-variants", *common, "--shard", f"{i}/2", "--out", str(part)]) == 0
        parts.append(str(part))
    assert cli_main(["merge-scores", "--input", *parts, "--out", str(d / "merged.tsv")]) == 0
    merged, one = (pd.read_csv(d / n, sep="\t") for n in ("merged.tsv", "one.tsv"))
    assert merged.columns.tolist() == one.columns.tolist() and "gene" in merged.columns
    pd.testing.assert_frame_equal(merged, one, rtol=1e-5)  # batches differ: last-digit float noise


def _records(path):
    import pysam

    with pysam.VariantFile(str(path)) as vf:
        header = {k: (v.number, v.type) for k, v in vf.header.info.items()}
        return header, [(r.chrom, r.pos, r.id, r.ref, r.alts, dict(r.info)) for r in vf]


def test_bcf_holds_the_vcf_records(setup):
    import pysam

    d, common = setup
    for name in ("o.vcf.gz", "o.bcf"):
        assert cli_main(["score-variants", *common, "--out", str(d / name)]) == 0
    assert (d / "o.bcf").read_bytes()[:3] == b"\x1f\x8b\x08"  # BGZF
    with pysam.VariantFile(str(d / "o.bcf")) as vf:
        assert vf.is_bcf
        assert len(list(vf.fetch("chrA"))) == 2  # the .csi index answers region queries
    assert (d / "o.bcf.csi").exists()
    vcf, bcf = _records(d / "o.vcf.gz"), _records(d / "o.bcf")
    assert vcf[0] == bcf[0] and "DNALM_LLR" in vcf[0]
    assert len(vcf[1]) == 5
    for a, b in zip(vcf[1], bcf[1], strict=True):
        assert a[:5] == b[:5] and a[5].keys() == b[5].keys()
        for k in a[5]:
            x, y = a[5][k], b[5][k]
            if k == "DNALM_STATUS":
                assert x == y
            else:
                np.testing.assert_allclose([np.nan if v is None else v for v in x],
                                           [np.nan if v is None else v for v in y], rtol=1e-6)

"""Brought models through the CLI: a mamba_ssm hybrid and a Caduceus RCPS model, given as their published folders
(converted on the fly), run embed, finetune, score-variants and ism; masked-marginal scores checked by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dnalm.cli import main
from dnalm.models import load_model
from dnalm.tokenizer import MASK_ID, DNATokenizer

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location("byom_import_tests", Path(__file__).parent / "test_import_model.py")
imp = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("byom_import_tests", imp)
_spec.loader.exec_module(imp)

FAST = ["--set", "max_steps=3", "--set", "val_every=2", "--set", "batch_size=8", "--set", "progress_bar=false",
        "--set", "warmup_steps=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The two brought models, a toy genome + VCF (SNVs and an indel) and a small classification task."""
    d = tmp_path_factory.mktemp("byom")
    imp.write_mamba_ssm(d / "hybrid", imp.HYBRID)
    imp.write_caduceus(d / "caduceus", rcps=True, fused=True)
    rng = np.random.default_rng(0)
    chrom = "".join(rng.choice(list("ACGT"), 400))
    (d / "g.fa").write_text(">1\n" + "\n".join(chrom[i : i + 60] for i in range(0, 400, 60)) + "\n")
    records = [(50, chrom[49], "A" if chrom[49] != "A" else "C"), (120, chrom[119], "G" if chrom[119] != "G" else "T"),
               (200, chrom[199:201], chrom[199])]  # two SNVs and a deletion
    vcf = ["##fileformat=VCFv4.2", "##contig=<ID=1,length=400>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    vcf += [f"1\t{p}\tv{i}\t{r}\t{a}\t.\t.\t." for i, (p, r, a) in enumerate(records)]
    (d / "v.vcf").write_text("\n".join(vcf) + "\n")
    task = d / "task"
    task.mkdir()
    for split, n in (("train", 24), ("dev", 8), ("test", 8)):
        seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(n)]
        pd.DataFrame({"sequence": seqs, "label": [i % 2 for i in range(n)]}).to_csv(task / f"{split}.csv", index=False)
    return d, chrom


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DNALM_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name,width", [("hybrid", 32), ("caduceus", 32)])
def test_brought_models_through_every_command(world, tmp_path, name, width):
    d, _ = world
    src = str(d / name)
    emb = tmp_path / "emb.npz"
    assert main(["embed", "--model", src, "--input", str(d / "task" / "test.csv"), "--out", str(emb),
                 "--no-progress"]) == 0
    with np.load(emb) as z:
        arrays = [z[k] for k in z.files if z[k].ndim == 2]
    assert any(a.shape == (8, width) for a in arrays)

    ft = tmp_path / "ft"
    assert main(["finetune", "--model", src, "--task", str(d / "task"), "--out", str(ft), *FAST]) == 0
    assert json.loads((ft / "metrics.json").read_text())["steps"] == 3

    out = tmp_path / "scores.tsv"
    assert main(["score-variants", "--model", src, "--fasta", str(d / "g.fa"), "--input", str(d / "v.vcf"),
                 "--window", "16", "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out, sep="\t")
    zero_shot = "masked_marginal" if name == "caduceus" else "llr"
    assert zero_shot in table.columns and table["status"].eq("ok").all()
    assert np.isfinite(table[zero_shot][:2]).all()
    if name == "caduceus":
        assert np.isnan(table["masked_marginal"][2]) and "substitutions" in table["message"][2]
        vcf_out = tmp_path / "scores.vcf"
        assert main(["score-variants", "--model", src, "--fasta", str(d / "g.fa"), "--input", str(d / "v.vcf"),
                     "--window", "16", "--out", str(vcf_out), "--no-progress"]) == 0
        text = vcf_out.read_text()
        assert "DNALM_MASKED_MARGINAL" in text and "zero_shot=masked_marginal" in text

    ism_dir = tmp_path / "ism"
    assert main(["ism", "--model", src, "--fasta", str(d / "g.fa"), "--region", "1:41-60", "--out", str(ism_dir),
                 "--no-progress"]) == 0
    ism = pd.read_csv(ism_dir / "ism.tsv", sep="\t")
    assert len(ism) == 20 and (ism.apply(lambda r: r[r["ref"]], axis=1) == 0).all()


def test_generate_refuses_a_bidirectional_model(world, tmp_path, capsys):
    d, _ = world
    rc = main(["generate", "--model", str(d / "caduceus"), "--num", "1", "--length", "10",
               "--out", str(tmp_path / "g.fa")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bidirectional" in err and "Traceback" not in err


def test_next_base_commands_refuse_a_bidirectional_model(world, tmp_path, capsys):
    d, _ = world
    rc = main(["evaluate-lm", "--model", str(d / "caduceus"), "--fasta", str(d / "g.fa"), "--chroms", "1",
               "--length", "64", "--out", str(tmp_path / "e")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bidirectional" in err and "Traceback" not in err


def test_masked_marginal_by_hand(world):
    """score-variants' masked marginal = log p(ALT) - log p(REF) at the masked site of the REF window."""
    from dnalm.variants import score_variants
    from dnalm.variants.windows import windows_in_span

    d, chrom = world
    model = load_model(d / "caduceus")
    table = score_variants(model, d / "g.fa", d / "v.vcf", window=16, strands="+", progress=False)
    assert table.attrs["zero_shot"] == "masked_marginal" and "llr" not in table.columns
    tok = DNATokenizer()
    p, ref, alt = 49, chrom[49], table["alt"][0]
    ref_w, alt_w = windows_in_span(chrom[p - 16 : p + 1 + 16], 16, ref, alt, 16, "+")
    site = [i for i in range(16) if ref_w[i] != alt_w[i]]
    assert len(site) == 1
    ids = torch.tensor(tok.encode_np(ref_w))[None]
    ids[0, site[0]] = MASK_ID
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, site[0]].double(), -1)
    expected = float(logp[tok.encode_np(alt)[0]] - logp[tok.encode_np(ref)[0]])
    assert table["masked_marginal"][0] == pytest.approx(expected, abs=1e-5)


def test_masked_ism_by_hand(world):
    from dnalm.variants import ism

    d, _ = world
    model = load_model(d / "caduceus")
    seq = "ACGTTGCAACGG"
    got = ism(model, seq, batch_size=5, progress=False)
    tok = DNATokenizer()
    ids = torch.tensor(tok.encode_np(seq))
    for i in (0, 5, 11):
        masked = ids.clone()
        masked[i] = MASK_ID
        with torch.no_grad():
            logp = torch.log_softmax(model(masked[None]).logits[0, i].double(), -1)
        want = (logp[list(DNATokenizer.base_ids)] - logp[ids[i]]).numpy()
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_causal_scores_refused_for_masked_model_and_back(world):
    from dnalm.errors import ConfigError
    from dnalm.variants import score_sequence_pairs

    d, _ = world
    cad, hyb = load_model(d / "caduceus"), load_model(d / "hybrid")
    with pytest.raises(ConfigError, match="causal"):
        score_sequence_pairs(cad, ["ACGTACGT"], ["ACGAACGT"], scores=["llr"])
    with pytest.raises(ConfigError, match="bidirectional"):
        score_sequence_pairs(hyb, ["ACGTACGT"], ["ACGAACGT"], scores=["masked_marginal"])
    got = score_sequence_pairs(cad, ["ACGTACGT"], ["ACGAACGT"])
    assert set(got) == {"masked_marginal", "embedding_cosine"}

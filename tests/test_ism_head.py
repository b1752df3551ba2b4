"""`dnalm ism --head`: ISM of a fine-tuned head's prediction against brute force through `dnalm predict`'s path
(mutate one base, predict, compare), and ISM inputs from FASTA / BED + genome in genome coordinates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dnalm.cli import main
from dnalm.models import build_model
from finetune.heads import HeadConfig, SequenceModel
from finetune.predict import predict_sequences

SEQ = "ACGTTGCAACGGATNCTTTACG"  # an N: four scored changes there


def _head_model(tmp_path, name: str, **head) -> tuple[SequenceModel, str]:
    torch.manual_seed(0)
    backbone = build_model("transformer-tiny", d_model=16, n_layer=1, d_intermediate=32, attention={"n_heads": 2})
    model = SequenceModel(backbone, HeadConfig(dropout=0.0, **head)).eval()
    for p in model.head.parameters():  # a head far from its initialisation: outputs that move with the bases
        torch.nn.init.normal_(p, std=0.5)
    model.save_pretrained(tmp_path / name)
    return SequenceModel.load(tmp_path / name).eval(), str(tmp_path / name)


def _mutants(seq: str):
    """(position, base column, mutant) of every single-base change (all four bases at an N)."""
    for i, ref in enumerate(seq):
        for c, base in enumerate("ACGT"):
            if base != ref:
                yield i, c, seq[:i] + base + seq[i + 1 :]


def _read(out) -> pd.DataFrame:
    return pd.read_csv(out / "ism.tsv", sep="\t")


def test_binary_head_ism_is_the_logit_change_of_predict(tmp_path):
    model, folder = _head_model(tmp_path, "bin", kind="binary", strand_average=True)
    assert main(["ism", "--head", folder, "--sequence", SEQ, "--out", str(tmp_path / "o"), "--batch-size", "7",
                 "--no-progress"]) == 0
    got = _read(tmp_path / "o")
    assert got["position"].tolist() == list(range(1, len(SEQ) + 1)) and "".join(got["ref"]) == SEQ
    logit = lambda p: np.log(p) - np.log1p(-p)
    ref = logit(float(predict_sequences(model, [SEQ], progress=False)[0]))
    want = np.zeros((len(SEQ), 4))
    muts = list(_mutants(SEQ))
    probs = predict_sequences(model, [m for _, _, m in muts], batch_size=1, progress=False)  # one at a time
    for (i, c, _), p in zip(muts, probs):
        want[i, c] = logit(float(p)) - ref
    assert np.abs(want).max() > 1e-3  # the head's output does move
    np.testing.assert_allclose(got[list("ACGT")].to_numpy(), want, rtol=1e-3, atol=2e-5)
    assert (tmp_path / "o" / "ism.png").stat().st_size > 0


def test_regression_head_ism_is_the_change_of_the_prediction_in_target_units(tmp_path):
    from dnalm.variants import ism_to_files

    model, _ = _head_model(tmp_path, "reg", kind="regression", num_outputs=2, target_mean=[1.0, -2.0],
                           target_std=[3.0, 0.5])
    table = ism_to_files(model, tmp_path / "r" / "ism", sequence=SEQ, output=1, progress=False)
    ref = predict_sequences(model, [SEQ], progress=False)[0][1]
    muts = list(_mutants(SEQ))
    preds = predict_sequences(model, [m for _, _, m in muts], batch_size=1, progress=False)
    want = np.zeros((len(SEQ), 4))
    for (i, c, _), p in zip(muts, preds):
        want[i, c] = p[1] - ref
    np.testing.assert_allclose(table[list("ACGT")].to_numpy(), want, rtol=1e-3, atol=1e-5)


def test_per_base_and_multiclass_heads_score_the_chosen_logit(tmp_path):
    from dnalm.variants import ism_to_files

    def logits(model, seq):
        enc = model.tokenizer.batch_encode([seq])
        with torch.no_grad():
            return model(enc["input_ids"], enc["attention_mask"])[0].double().numpy()

    mc, _ = _head_model(tmp_path, "mc", kind="multiclass", num_outputs=3, classes=["a", "b", "c"])
    tc, _ = _head_model(tmp_path, "tc", kind="token_classification", num_outputs=2)
    for model, kw, pick in [(mc, {"output": 2}, lambda z: z[2]), (tc, {"output": 1, "position": 5}, lambda z: z[5, 1])]:
        table = ism_to_files(model, tmp_path / "x" / "ism", sequence=SEQ, progress=False, **kw)
        ref = pick(logits(model, SEQ))
        want = np.zeros((len(SEQ), 4))
        for i, c, m in _mutants(SEQ):
            want[i, c] = pick(logits(model, m)) - ref
        np.testing.assert_allclose(table[list("ACGT")].to_numpy(), want, rtol=1e-3, atol=1e-5)
    with pytest.raises(Exception, match="--position"):
        ism_to_files(tc, tmp_path / "y" / "ism", sequence=SEQ, progress=False)


def test_ism_inputs_from_fasta_and_bed_in_genome_coordinates(tmp_path, celegans_dir):
    """--input: FASTA records and BED intervals (+ --fasta), through the one sequence reader; a BED interval gives the
    scores of --region on the same bases, in the same 1-based coordinates."""
    import dnalm

    fasta = celegans_dir / "C.elegans.fa.gz"
    torch.manual_seed(0)
    dnalm.build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 4}).save_pretrained(tmp_path / "lm")
    bed = tmp_path / "r.bed"
    bed.write_text("I\t1000\t1012\tg1\t0\t-\nII\t500\t509\tg2\t0\t+\n")
    common = ["--model", str(tmp_path / "lm"), "--no-progress", "--flank", "5"]
    assert main(["ism", *common, "--input", str(bed), "--fasta", str(fasta), "--out", str(tmp_path / "b")]) == 0
    got = _read(tmp_path / "b")
    assert got["name"].tolist() == ["g1"] * 12 + ["g2"] * 9
    assert got["position"].tolist() == list(range(1001, 1013)) + list(range(501, 510))
    genome = dnalm.Genome(fasta)
    assert "".join(got["ref"][:12]) == genome.fetch("I", 1000, 1012).upper()  # + strand, whatever the BED says
    assert main(["ism", *common, "--region", "I:1001-1012", "--fasta", str(fasta), "--out", str(tmp_path / "r")]) == 0
    one = _read(tmp_path / "r")
    np.testing.assert_allclose(got[list("ACGT")].to_numpy()[:12], one[list("ACGT")].to_numpy(), rtol=1e-6, atol=1e-9)
    assert sorted(p.name for p in (tmp_path / "b" / "plots").iterdir()) == ["001_g1.png", "002_g2.png"]
    fa = tmp_path / "s.fa"
    fa.write_text(f">s1\n{SEQ}\n>s2\nGGATC\n")
    assert main(["ism", "--model", str(tmp_path / "lm"), "--no-progress", "--input", str(fa),
                 "--out", str(tmp_path / "f")]) == 0
    f = _read(tmp_path / "f")
    assert f["name"].tolist() == ["s1"] * len(SEQ) + ["s2"] * 5 and f["position"].tolist()[-5:] == [1, 2, 3, 4, 5]


def test_ism_head_refusals_exit_2(tmp_path, capsys):
    _, folder = _head_model(tmp_path, "bin", kind="binary")
    torch.manual_seed(0)
    build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 2}).save_pretrained(tmp_path / "lm")
    for argv in (["--head", folder, "--model", str(tmp_path / "lm")], ["--head", str(tmp_path / "lm")],
                 ["--head", folder, "--strands", "both"], ["--head", folder, "--output", "3"], []):
        assert main(["ism", *argv, "--sequence", SEQ, "--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err
        assert "error" in err and "Traceback" not in err, err

"""`dnalm predict` (a fine-tuned head on FASTA / tables / BED + genome) and `dnalm embed` on FASTA: outputs equal the
model run on each sequence alone."""

import numpy as np
import pandas as pd
import pytest
import torch

from dnalm.cli import main
from dnalm.models import build_model
from dnalm.tokenizer import reverse_complement
from finetune.heads import HeadConfig, SequenceModel

SEQS = {"a": "ACGTTGCAAC", "b": "GGATC", "c": "TTTACGTACGGA"}


def _backbone():
    torch.manual_seed(0)
    return build_model("transformer-tiny", d_model=16, n_layer=1, d_intermediate=32, attention={"n_heads": 2})


def _write_fasta(path, seqs):
    path.write_text("".join(f">{k} some description\n{v}\n" for k, v in seqs.items()))
    return path


def _alone(model, seq):
    enc = model.tokenizer.batch_encode([seq])
    with torch.no_grad():
        return model.predict(enc["input_ids"], enc["attention_mask"])[0].numpy()


def test_predict_binary_head_on_fasta_matches_each_sequence_alone(tmp_path):
    model = SequenceModel(_backbone(), HeadConfig(kind="binary", pooling="mean", dropout=0.0)).eval()
    model.save_pretrained(tmp_path / "ft")
    fa = _write_fasta(tmp_path / "s.fa", SEQS)
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(fa), "--out", str(tmp_path / "p.tsv"),
                 "--batch-size", "2", "--no-progress"]) == 0
    df = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert df["name"].tolist() == list(SEQS)
    expected = [float(_alone(model, s)) for s in SEQS.values()]
    np.testing.assert_allclose(df["score"], expected, rtol=1e-4, atol=1e-5)
    assert (df["prediction"] == (df["score"] > 0.5).astype(int)).all()
    # a per-sequence head cannot give a track; a language model folder is not a fine-tuned one
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(fa), "--out", str(tmp_path / "p.bedGraph")]) == 2
    _backbone().save_pretrained(tmp_path / "lm")
    assert main(["predict", "--model", str(tmp_path / "lm"), "--input", str(fa), "--out", str(tmp_path / "q.tsv")]) == 2


def test_predict_per_base_head_on_bed_writes_a_bedgraph_on_genome_coordinates(tmp_path, capsys):
    import pysam

    rng = np.random.default_rng(0)
    chrom = "".join(rng.choice(list("ACGT"), 200))
    (tmp_path / "g.fa").write_text(f">chr1\n{chrom}\n")
    pysam.faidx(str(tmp_path / "g.fa"))
    (tmp_path / "r.bed").write_text("chr1\t10\t22\tx\t0\t+\nchr1\t50\t59\ty\t0\t-\n")
    model = SequenceModel(_backbone(), HeadConfig(kind="token_classification", num_outputs=3, pooling="mean",
                                                  dropout=0.0)).eval()
    model.save_pretrained(tmp_path / "ft")
    out = tmp_path / "p.bedGraph"
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(tmp_path / "r.bed"), "--fasta",
                 str(tmp_path / "g.fa"), "--out", str(out), "--no-progress"]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    got = {(c, int(s)): float(v) for c, s, e, v in rows}
    assert len(got) == 12 + 9 and all(int(e) == int(s) + 1 for _, s, e, _ in rows)
    plus = 1 - _alone(model, chrom[10:22])[:, 0]
    np.testing.assert_allclose([got[("chr1", 10 + k)] for k in range(12)], plus, rtol=1e-4, atol=1e-5)
    minus = 1 - _alone(model, reverse_complement(chrom[50:59]))[:, 0]  # read 5'->3' on -, written on + bases
    np.testing.assert_allclose([got[("chr1", 50 + k)] for k in range(9)], minus[::-1], rtol=1e-4, atol=1e-5)
    tsv = tmp_path / "p.tsv"
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(tmp_path / "r.bed"), "--fasta",
                 str(tmp_path / "g.fa"), "--out", str(tsv), "--no-progress"]) == 0
    df = pd.read_csv(tsv, sep="\t")
    assert df[["chrom", "start", "end"]].values.tolist() == [["chr1", 10, 22], ["chr1", 50, 59]]
    assert [len(p.split(",")) for p in df["predicted"]] == [12, 9]
    capsys.readouterr()
    rc = main(["predict", "--model", str(tmp_path / "ft"), "--input", str(tmp_path / "r.bed"), "--fasta",
               str(tmp_path / "g.fa"), "--out", str(tmp_path / "p.bw")])
    try:
        import pyBigWig  # noqa: F401
    except ImportError:
        assert rc == 2 and "pyBigWig" in capsys.readouterr().err
    else:
        assert rc == 0


def test_embed_reads_fasta_with_a_preset(tmp_path):
    fa = _write_fasta(tmp_path / "seqs.fa", SEQS)
    out = tmp_path / "e.npz"
    assert main(["embed", "--model", "hybridna-tiny", "--input", str(fa), "--out", str(out), "--no-progress"]) == 0
    with np.load(out) as z:
        assert z["embeddings"].shape == (3, 128) and np.isfinite(z["embeddings"]).all()
        assert z["name"].tolist() == list(SEQS)
    # the FASTA reader gives the rows a table of the same sequences gives (a saved model: presets are random)
    _backbone().save_pretrained(tmp_path / "lm")
    (tmp_path / "t.csv").write_text("sequence\n" + "\n".join(SEQS.values()) + "\n")
    for src, dst in [(fa, "f.npz"), (tmp_path / "t.csv", "t.npz")]:
        assert main(["embed", "--model", str(tmp_path / "lm"), "--input", str(src), "--out", str(tmp_path / dst),
                     "--no-progress"]) == 0
    with np.load(tmp_path / "f.npz") as a, np.load(tmp_path / "t.npz") as b:
        np.testing.assert_allclose(a["embeddings"], b["embeddings"], rtol=1e-5, atol=1e-6)
    (tmp_path / "bad.fa").write_text(">x\nACGZ\n")
    assert main(["embed", "--model", "hybridna-tiny", "--input", str(tmp_path / "bad.fa"), "--out",
                 str(tmp_path / "b.npz")]) == 2


@pytest.mark.parametrize("bad", ["p.txt", "p.csv"])
def test_predict_refuses_unknown_output_formats(tmp_path, bad):
    model = SequenceModel(_backbone(), HeadConfig(kind="binary")).eval()
    model.save_pretrained(tmp_path / "ft")
    fa = _write_fasta(tmp_path / "s.fa", SEQS)
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(fa), "--out", str(tmp_path / bad)]) == 2

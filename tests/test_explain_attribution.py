"""Attributions (dnalm.explain): the one-hot input path, IG completeness, and a planted-motif task for every method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dnalm
from dnalm.explain.attribution import attribute
from dnalm.explain.onehot import decode, dinucleotide_shuffles, one_hot
from dnalm.explain.targets import HeadTarget, LogLikelihoodTarget
from finetune.heads import HeadConfig, SequenceModel

MOTIF = "TGACTCAG"


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_lm(seed: int = 0):
    torch.manual_seed(seed)
    return dnalm.build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                             mamba2={"d_state": 16, "headdim": 16, "expand": 2, "chunk_size": 16},
                             attention={"n_heads": 2, "n_kv_heads": 2})


def _ids(seqs, L):
    tok = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}
    ids = torch.full((len(seqs), L), 4, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor([tok[c] for c in s])
    return ids


@pytest.mark.parametrize("pooling", ["mean", "last", "echo", "rc_echo"])
def test_onehot_forward_equals_token_forward(pooling):
    seqs = ["ACGTTATAAAGGCNCT", "GGGCATATAT", "TTTTACGCGA"]
    x, mask = one_hot(seqs)
    assert decode(x, mask) == seqs
    x, mask = torch.from_numpy(x), torch.from_numpy(mask)
    lm = tiny_lm()
    kinds = [("binary", 1)] + ([("token_classification", 3)] if pooling != "last" else [])
    for kind, k in kinds:
        for strand_average in (False, True):
            m = SequenceModel(lm, HeadConfig(kind=kind, num_outputs=k, pooling=pooling,
                                             strand_average=strand_average, dropout=0.0)).eval()
            with torch.no_grad():
                a = m(_ids(seqs, x.shape[2]), mask)
                b = m.forward_onehot(x, mask)
            keep = mask[..., None] if a.dim() == 3 else torch.ones(1)
            torch.testing.assert_close(a * keep, b * keep, atol=1e-5, rtol=1e-5)
    # the one-hot path carries gradients to every real column
    xg = x.clone().requires_grad_(True)
    HeadTarget(SequenceModel(lm, HeadConfig(pooling=pooling, dropout=0.0)).eval())(xg, mask).sum().backward()
    assert (xg.grad.abs().sum(1) > 0)[mask].all()


def test_loglikelihood_target_equals_lm_loglik():
    lm = tiny_lm().eval()
    seqs = ["ACGTTATAAAGGCNCT", "GGGCATATAT"]
    x, mask = one_hot(seqs)
    got = LogLikelihoodTarget(lm)(torch.from_numpy(x), torch.from_numpy(mask)).detach()
    for i, s in enumerate(seqs):
        inp = torch.cat([torch.tensor([2]), _ids([s], len(s))[0]])[None]
        with torch.no_grad():
            lp = torch.log_softmax(lm(inp).logits.float(), -1)[0, :-1]
        tgt = inp[0, 1:]
        ref = lp.gather(1, tgt[:, None])[:, 0][tgt != 11].sum()
        assert float(got[i]) == pytest.approx(float(ref), abs=1e-4)
    part = LogLikelihoodTarget(lm, start=3, end=8)(torch.from_numpy(x), torch.from_numpy(mask))
    assert (part.detach() > got).all()  # fewer bases scored, each with log p < 0


def test_dinucleotide_shuffles_keep_counts():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 50)), "ACGTACGTNNACGGGTTTAC"]
    x, mask = one_hot(seqs)
    sh = dinucleotide_shuffles(x, mask, n=3, seed=1)
    assert sh.shape == (2, 3, 4, 50)
    for i, s in enumerate(seqs):
        for k in range(3):
            t = decode(sh[i, k][None], mask[i : i + 1])[0]
            assert sorted(t[j : j + 2] for j in range(len(t) - 1)) == sorted(s[j : j + 2] for j in range(len(s) - 1))
            assert [j for j, c in enumerate(t) if c == "N"] == [j for j, c in enumerate(s) if c == "N"]
    assert any(decode(sh[0, k][None])[0] != seqs[0] for k in range(3))


@pytest.mark.parametrize("baseline", ["zeros", "dinucleotide"])
def test_integrated_gradients_completeness(baseline):
    """Sum of contributions == f(x) - mean f(baseline) (IG's completeness) on a tiny model."""
    lm = tiny_lm(1)
    model = SequenceModel(lm, HeadConfig(kind="binary", pooling="mean", dropout=0.0)).eval()
    rng = np.random.default_rng(0)
    x, mask = one_hot(["".join(rng.choice(list("ACGT"), 24)) for _ in range(3)])
    a = attribute(HeadTarget(model), x, mask, method="ig", baseline=baseline, n_shuffles=2, steps=64)
    delta = a.scores - a.baseline_scores
    assert np.abs(delta).min() > 1e-3  # a test that can fail: the model's output does move
    np.testing.assert_allclose(a.contributions.sum((1, 2)), delta, atol=0.02 * np.abs(delta).max() + 1e-4)
    # the one-hot projection: contributions live on the observed base only
    assert np.all((a.contributions != 0) <= (x > 0))
    # the LM log-likelihood target obeys it too
    ll = attribute(LogLikelihoodTarget(lm.eval()), x, mask, method="ig", baseline="uniform", steps=64)
    d = ll.scores - ll.baseline_scores
    np.testing.assert_allclose(ll.contributions.sum((1, 2)), d, atol=0.02 * np.abs(d).max())


def _planted(n, rng, L=40):
    seqs, y, site = [], [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), L))
        st = -1
        if i % 2:
            st = int(rng.integers(0, L - len(MOTIF)))
            s[st : st + len(MOTIF)] = MOTIF
        seqs.append("".join(s))
        y.append(i % 2)
        site.append(st)
    return seqs, np.array(y), np.array(site)


@pytest.fixture(scope="module")
def planted_model():
    """A tiny dnalm classifier trained a few steps to tell sequences with a planted 8-mer from random ones."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    model = SequenceModel(tiny_lm(), HeadConfig(kind="binary", pooling="mean", dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        seqs, y, _ = _planted(32, rng)
        x, m = one_hot(seqs)
        logits = model.forward_onehot(torch.from_numpy(x), torch.from_numpy(m))[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(y, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("method", ["saliency", "ig", "deeplift", "ism"])
def test_attributions_peak_on_planted_sites(planted_model, method):
    from sklearn.metrics import roc_auc_score

    seqs, y, site = _planted(24, np.random.default_rng(5))
    x, mask = one_hot(seqs)
    with torch.no_grad():
        scores = planted_model.forward_onehot(torch.from_numpy(x), torch.from_numpy(mask))[:, 0].numpy()
    assert roc_auc_score(y, scores) > 0.9  # the model learned the task
    pos = y == 1
    a = attribute(HeadTarget(planted_model), x[pos], mask[pos], method=method, n_shuffles=3, steps=16)
    assert a.contributions.shape == a.hypothetical.shape == x[pos].shape
    is_site = np.zeros((pos.sum(), x.shape[2]), dtype=bool)
    for j, st in enumerate(site[pos]):
        is_site[j, st : st + len(MOTIF)] = True
    auroc = roc_auc_score(is_site.ravel(), a.contributions.sum(1).ravel())
    # measured: ig 0.89, ism 0.99, saliency 0.78, deeplift (gradient x (x - b) on dnalm's functional ops) 0.68
    assert auroc > (0.8 if method in ("ig", "ism") else 0.65), (method, auroc)


def test_ism_matches_direct_mutation(planted_model):
    seqs, _, _ = _planted(2, np.random.default_rng(9), L=20)
    x, mask = one_hot(seqs)
    a = attribute(HeadTarget(planted_model), x, mask, method="ism")
    i, c = 7, int(np.flatnonzero(x[1, :, 7] == 0)[0])
    xm = x[1:2].copy()
    xm[0, :, i] = 0
    xm[0, c, i] = 1
    with torch.no_grad():
        f = [float(planted_model.forward_onehot(torch.from_numpy(z), torch.from_numpy(mask[1:2]))[0, 0]) for z in (xm, x[1:2])]
    assert a.info["ism_delta"][1, c, i] == pytest.approx(f[0] - f[1], abs=1e-5)
    np.testing.assert_allclose(a.hypothetical.mean(1), 0, atol=1e-6)


def test_attribute_and_scan_cli(planted_model, tmp_path, yeast_fasta):
    """dnalm attribute on a table and on BED + genome, then dnalm motifs scan of the attributions."""
    from dnalm.cli import main

    model_dir = tmp_path / "model"
    planted_model.save_pretrained(model_dir)
    seqs, y, site = _planted(6, np.random.default_rng(3))
    table = tmp_path / "seqs.tsv"
    table.write_text("name\tsequence\tlabel\n" + "".join(f"s{i}\t{s}\t{v}\n" for i, (s, v) in enumerate(zip(seqs, y))))
    out = tmp_path / "attr"
    assert main(["attribute", "--model", str(model_dir), "--input", str(table), "--method", "saliency", "--out", str(out),
                 "--top", "2", "--label", "1", "--no-progress"]) == 0
    z = np.load(out / "attributions.npz")
    assert z["contributions"].shape == (3, 4, 40) and list(z["names"]) == ["s1", "s3", "s5"]
    assert len(list((out / "logos").glob("*.png"))) == 2
    assert (out / "summary.tsv").read_text().count("\n") == 4
    # an existing output folder is refused without --overwrite (exit 2, no traceback)
    assert main(["attribute", "--model", str(model_dir), "--input", str(table), "--method", "saliency",
                 "--out", str(out)]) == 2
    # scanning the attributed sequences: the planted site is found and carries attribution
    motif = tmp_path / "m.transfac"
    rows = "".join(f"{j + 1:02d} " + " ".join("20" if b == c else "0" for b in "ACGT") + "\n" for j, c in enumerate(MOTIF))
    motif.write_text(f"AC  P1\nXX\nID  planted\nXX\nP0 A C G T\n{rows}XX\n//\n")
    hits = tmp_path / "hits.tsv"
    assert main(["motifs", "scan", "--attributions", str(out), "--motifs", str(motif), "--out", str(hits)]) == 0
    import pandas as pd

    df = pd.read_csv(hits, sep="\t")
    found = {(r.sequence, r.start) for r in df.itertuples() if r.strand == "+"}
    assert {("s1", site[1]), ("s3", site[3]), ("s5", site[5])} <= found
    # genomic input: coordinates travel to the arrays (the model sees 40 bp of yeast chrI)
    bed = tmp_path / "r.bed"
    bed.write_text("chrI\t1000\t1040\tr1\t0\t+\nchrI\t2000\t2040\tr2\t0\t-\n")
    out2 = tmp_path / "attr_bed"
    assert main(["attribute", "--model", str(model_dir), "--bed", str(bed), "--fasta", str(yeast_fasta),
                 "--method", "ism", "--out", str(out2), "--top", "1", "--no-progress"]) == 0
    z = np.load(out2 / "attributions.npz")
    assert list(z["chrom"]) == ["chrI", "chrI"] and list(z["start"]) == [1000, 2000] and list(z["strand"]) == ["+", "-"]
    assert len(list((out2 / "logos").glob("*.png"))) == 1

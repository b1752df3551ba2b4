"""Motif scanning (dnalm.explain.motifs): Biopython PSSM scores as the reference, exact p-values by enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dnalm.errors import InputError
from dnalm.explain.motifs import (
    motif_set,
    read_motifs,
    scan,
    scan_motifs,
    score_null,
    score_pvalues,
    write_meme,
)


def scan_reference(sequence: str, pwm: np.ndarray, threshold: float) -> int:
    """Hits of one matrix on both strands by Biopython's PSSM scan (independent reference)."""
    from Bio.motifs.matrix import PositionSpecificScoringMatrix
    from Bio.Seq import Seq

    pssm = PositionSpecificScoringMatrix("ACGT", {b: list(pwm[i]) for i, b in enumerate("ACGT")})
    n = 0
    for strand_seq in (sequence, str(Seq(sequence).reverse_complement())):
        if len(strand_seq) < pssm.length:
            continue
        scores = np.atleast_1d(pssm.calculate(strand_seq))
        n += int(np.sum(scores >= threshold - 1e-4))
    return n


def _transfac(tmp_path, widths=(4, 6, 9), seed=0):
    rng = np.random.default_rng(seed)
    text = ""
    for i, w in enumerate(widths):
        text += f"AC  M{i}\nXX\nID  TF{i}\nXX\nP0      A      C      G      T\n"
        counts = rng.integers(0, 20, size=(w, 4))
        for r, row in enumerate(counts):
            text += f"{r + 1:02d}      " + "      ".join(str(c) for c in row) + "\n"
        text += f"XX\nCC  tax_group:{'fungi' if i else 'plants'}\nXX\n//\n"
    path = tmp_path / "m.transfac"
    path.write_text(text)
    return path


def test_motif_scan_matches_biopython(tmp_path):
    path = _transfac(tmp_path)
    ms = read_motifs(path)
    assert len(ms) == 3 and ms.names == ["TF0", "TF1", "TF2"] and ms.tax_groups == ["plants", "fungi", "fungi"]
    assert len(read_motifs(path, tax_group="fungi")) == 2
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (3, 8, 40, 77)]
    for thr in (0.6, 0.8):
        hits = scan_motifs(seqs, ms, thr)
        lo = np.array([p.min(0).sum() for p in ms.pwms])
        hi = np.array([p.max(0).sum() for p in ms.pwms])
        for m, pwm in enumerate(ms.pwms):
            t = lo[m] + thr * (hi[m] - lo[m])
            for s_i, s in enumerate(seqs):
                assert hits[s_i, m] == scan_reference(s, pwm, t), (thr, m, s_i)
    bad = tmp_path / "bad.transfac"
    bad.write_text("AC  X\nP0 A C G T\n01 x y z w\n//\n")
    with pytest.raises(InputError):
        read_motifs(bad)


def test_scan_scores_and_pvalues_match_references(tmp_path):
    """Every reported hit's score equals Biopython's PSSM score at that window; p-values equal the fraction of
    all 4^W words scoring at least as high (exhaustive enumeration); nothing below the threshold is missed."""
    from Bio.motifs.matrix import PositionSpecificScoringMatrix
    from Bio.Seq import Seq

    ms = read_motifs(_transfac(tmp_path, widths=(5, 6)))
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(5)]
    df = scan(seqs, ms, pvalue=0.02)
    assert len(df) > 0
    for m, pwm in enumerate(ms.pwms):
        W = pwm.shape[1]
        words = np.array(list(itertools.product(range(4), repeat=W)))  # (4^W, W)
        all_scores = pwm[words, np.arange(W)].sum(1)  # (4^W,)
        pssm = PositionSpecificScoringMatrix("ACGT", {b: list(pwm[i]) for i, b in enumerate("ACGT")})
        for si, s in enumerate(seqs):
            fwd = np.atleast_1d(pssm.calculate(s))  # window i on +
            rev = np.atleast_1d(pssm.calculate(str(Seq(s).reverse_complement())))[::-1]  # window i on -
            got = df[(df.sequence == str(si)) & (df.motif_id == ms.ids[m])]
            for strand, ref in (("+", fwd), ("-", rev)):
                exact_p = np.array([(all_scores >= v - 1e-9).mean() for v in ref])
                g = got[got.strand == strand]
                np.testing.assert_allclose(g.score, ref[g.start], atol=1e-4)
                # p-values on a 0.01-bit grid: equal to the exact ones up to words within a grid step
                lo = np.array([(all_scores >= v + 0.02).mean() for v in ref[g.start]])
                hi = np.array([(all_scores >= v - 0.02).mean() for v in ref[g.start]])
                assert ((g.p_value >= lo - 1e-12) & (g.p_value <= hi + 1e-12)).all()
                # every window with a clearly significant exact p-value is reported
                sure = np.flatnonzero(exact_p < 0.02 * 0.5)
                assert set(sure) <= set(g.start), (m, si, strand)


def test_pvalues_monotone_and_exact_on_grid():
    rng = np.random.default_rng(2)
    pwm = np.log2(rng.dirichlet(np.ones(4), size=6).T / 0.25)
    _, tail = score_null(pwm, 0.01)
    assert tail[0] == pytest.approx(1.0) and np.all(np.diff(tail) <= 1e-15)
    scores = np.linspace(pwm.min(0).sum() - 1, pwm.max(0).sum() + 1, 400)
    p = score_pvalues(pwm, scores)
    assert np.all(np.diff(p) <= 0) and p[0] == pytest.approx(1.0) and p[-1] == 0.0
    # exact on the grid: enumerate all words with grid-rounded column scores
    ints = np.round(pwm / 0.01).astype(int)
    words = np.array(list(itertools.product(range(4), repeat=6)))
    grid = ints[words, np.arange(6)].sum(1)
    for k in np.quantile(grid, [0.1, 0.5, 0.9, 0.999]).astype(int):
        assert score_pvalues(pwm, [k * 0.01])[0] == pytest.approx((grid >= k).mean(), rel=1e-9)


def test_meme_roundtrip_and_attribution_weighting(tmp_path):
    ms = motif_set({"tata": np.array([[0, 20, 0, 20, 20, 20], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
                                       [20, 0, 20, 0, 0, 0]])}, pseudocount=0.5)
    back = read_motifs(write_meme(ms, tmp_path / "m.meme"))
    np.testing.assert_allclose(back.ppms[0], ms.ppms[0], atol=2e-2)
    assert back.ids == ["tata"] and back.names == ["tata"]
    seq = "GGGGGGGGGGTATAAAGGGGGGGGGG"
    contrib = np.zeros((1, 4, len(seq)), dtype=np.float32)
    contrib[0, 0, 10:16] = 1.0
    df = scan([seq], ms, pvalue=1e-3, contributions=contrib)
    top = df.iloc[0]
    assert (top.start, top.end, top.strand) == (10, 16, "+")
    assert top.attribution == pytest.approx(6.0) and top.attribution_frac == pytest.approx(1.0)


def test_read_sequences_fasta_table_and_errors(tmp_path):
    from dnalm.explain.run import read_sequences

    fa = tmp_path / "s.fa"
    fa.write_text(">a\nACGTN\n>b desc\nacgtacgt\n")
    seqs, names, coords = read_sequences(fa)
    assert seqs == ["ACGTN", "ACGTACGT"] and names == ["a", "b"] and coords is None
    tsv = tmp_path / "t.tsv"
    tsv.write_text("sequence\tlabel\nACGT\t0\nGGGG\t1\nTTTT\t1\n")
    seqs, names, _ = read_sequences(tsv, label="1", max_sequences=1)
    assert seqs == ["GGGG"] and names == ["row2"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("sequence\nACGU\n")
    with pytest.raises(InputError, match="row1"):
        read_sequences(bad)
    with pytest.raises(InputError, match="needs --fasta"):
        (tmp_path / "r.bed").write_text("chrI\t0\t10\n")
        read_sequences(tmp_path / "r.bed")

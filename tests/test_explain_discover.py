"""Motif discovery (dnalm.explain.discover): TF-MoDISco on planted-signal attributions finds the planted motif,
TOMTOM matches it first in a database with q < 0.05; q-values equal scipy's Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np
import pytest

from dnalm.explain.discover import bh_qvalues, discover, patterns_table, trim
from dnalm.explain.motifs import motif_set
from dnalm.explain.onehot import one_hot

MOTIF = "TGACTCAG"


def test_bh_qvalues_match_scipy():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(0).uniform(size=200) ** 3
    np.testing.assert_allclose(bh_qvalues(p), false_discovery_control(p, method="bh"), rtol=1e-12)
    assert trim(np.array([[0.0, 0.1, 1.0, 0.5, 0.05]] * 4)) == slice(2, 4)
    assert list(patterns_table([]).columns)[:2] == ["pattern", "n_seqlets"]  # an empty result still has its header


@pytest.mark.slow
def test_discover_finds_planted_motif(tmp_path, numba_warm):
    """Attributions that sit on a planted 8-mer (plus noise) -> one pattern whose best database match is that
    motif (q < 0.05) in a database of 40 random matrices and the motif. numba_warm: the kernels compiled beside the tests."""
    from dnalm.explain.run import discover_to_files

    rng = np.random.default_rng(0)
    N, L = 240, 50
    seqs, sites = [], []
    for _ in range(N):
        s = list(rng.choice(list("ACGT"), L))
        st = int(rng.integers(5, L - 13))
        s[st : st + 8] = MOTIF
        seqs.append("".join(s))
        sites.append(st)
    x, mask = one_hot(seqs)
    hyp = rng.normal(0, 0.05, x.shape).astype(np.float32)
    for i, st in enumerate(sites):
        hyp[i, :, st : st + 8] += x[i, :, st : st + 8]
    planted = np.array([[20.0 if b == c else 0.5 for c in MOTIF] for b in "ACGT"])
    db = {f"rand{i}": rng.dirichlet(np.full(4, 0.4), size=int(rng.integers(6, 12))).T * 20 for i in range(40)}
    db["planted"] = planted
    database = motif_set(db, pseudocount=0.5)
    patterns = discover(x, hyp, database, window=10, flank=3, min_cluster=20, n_leiden_runs=2)
    assert patterns, "no pattern found"
    best = patterns[0]
    assert best.n_seqlets >= 20
    assert best.matches[0]["motif_id"] == "planted" and best.matches[0]["q_value"] < 0.05
    # the CLI's writer: arrays -> report with logos
    from dnalm.explain.attribution import Attributions
    from dnalm.explain.files import write_attributions
    from dnalm.explain.motifs import write_meme

    attr = Attributions(x * hyp, hyp, np.zeros(N, np.float32), None, "synthetic")
    write_attributions(attr, x, mask, [f"s{i}" for i in range(N)], tmp_path / "attr", top=1)
    write_meme(database, tmp_path / "db.meme")
    info = discover_to_files(tmp_path / "attr", tmp_path / "db.meme", tmp_path / "motifs", window=10, flank=3,
                             min_cluster=20, n_leiden_runs=2)
    assert info["n_significant"] >= 1
    text = (tmp_path / "motifs" / "report.md").read_text()
    assert "**planted" in text and (tmp_path / "motifs" / "logos" / "pos_patterns.pattern_0.cwm.png").exists()

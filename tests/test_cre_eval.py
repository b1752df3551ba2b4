"""CRE metrics against direct computations, and an end-to-end evaluate_cre run on a toy oracle."""

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generate.conditioning import ConditionSpec
from generate.data import PropertyTable
from generate.metrics import (
    all_kmers,
    diversity,
    edit_distance,
    js_divergence,
    kmer_divergence,
    kmer_spectrum,
    levenshtein_reference,
    nearest_distances,
)

dna = st.text(alphabet="ACGT", max_size=40)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@settings(max_examples=150, deadline=None)
@given(dna, dna)
def test_edit_distance_matches_naive_dp(a, b):
    assert edit_distance(a, b) == levenshtein_reference(a, b)


def test_levenshtein_reference_known_values():
    assert levenshtein_reference("kitten", "sitting") == 3
    assert levenshtein_reference("", "ACG") == 3
    assert levenshtein_reference("ACGT", "ACGT") == 0


def test_nearest_and_diversity_vs_brute_force():
    rng = np.random.default_rng(0)
    ref = ["".join(rng.choice(list("ACGT"), int(rng.integers(15, 25)))) for _ in range(60)]
    queries = [ref[3], ref[10][:-2] + "AA"] + ["".join(rng.choice(list("ACGT"), 20)) for _ in range(10)]
    d, idx = nearest_distances(queries, ref, chunk=5)
    for q, dq, iq in zip(queries, d, idx):
        naive = [levenshtein_reference(q, r) for r in ref]
        assert dq == min(naive) and naive[iq] == dq
    assert d[0] == 0
    div = diversity(queries)
    pairs = [levenshtein_reference(a, b) for a, b in itertools.combinations(queries, 2)]
    assert div["mean_pairwise_distance"] == pytest.approx(np.mean(pairs))
    assert div["min_pairwise_distance"] == min(pairs) and div["pairs"] == len(pairs)
    sampled = diversity(queries, max_pairs=30)  # sampled pairs: same scale
    assert sampled["pairs"] == 30 and abs(sampled["mean_pairwise_distance"] - np.mean(pairs)) < 4
    assert diversity(["AC", "AC", "GG"])["exact_duplicates"] == 1


def test_kmer_spectrum_and_js_divergence():
    seqs = ["ACGTNACGTA", "ggcc", "A"]
    spec = kmer_spectrum(seqs, 2)
    counts = Counter()
    for s in seqs:
        s = s.upper()
        for i in range(len(s) - 1):
            if "N" not in s[i : i + 2]:
                counts[s[i : i + 2]] += 1
    total = sum(counts.values())
    assert spec.tolist() == pytest.approx([counts[k] / total for k in all_kmers(2)])
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(1)
    p, q = rng.random(64), rng.random(64)
    q[:5] = 0
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert js_divergence(p, p) == pytest.approx(0.0)
    assert kmer_divergence(["AAAA"], ["CCCC"], 2) == pytest.approx(1.0)


def test_evaluate_cre_end_to_end(tmp_path):
    """Toy oracle = planted-motif CNN; 'generated' sets drawn from high/low real rows; checks outputs and stats."""
    from scipy.stats import mannwhitneyu

    from generate.evaluate import EvalConfig, evaluate_cre
    from generate.oracle import OracleTrainConfig, train_oracle
    from generate.sampling import write_fasta
    rng = np.random.default_rng(2)
    seqs, y = [], []
    for _ in range(600):  # 0-2 planted AP-1 sites; activity = number of sites + noise
        s = "".join(rng.choice(list("ACGT"), 40))
        k = int(rng.integers(0, 3))
        s = "TGACTCA" * k + s[7 * k :]
        seqs.append(s)
        y.append([s.count("TGACTCA") + rng.normal(0, 0.3)])
    y = np.array(y)
    train_oracle(seqs, y[:, :1], ["activity"], tmp_path / "oracle",
                 OracleTrainConfig(max_epochs=3, batch_size=64, progress=False),
                 arch={"channels": 16, "dilated_layers": 1, "hidden": 16})
    spec, _ = ConditionSpec.fit(y[:, :1], ["activity"], 3)
    bins = spec.bins(y[:, :1])[:, 0]
    rng = np.random.default_rng(0)
    high = [seqs[i] for i in rng.choice(np.flatnonzero(bins == 2), 20, replace=False)]
    low = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(20)]
    recs = [(f"g{i}", "condition=activity=2", s) for i, s in enumerate(high)]
    recs += [(f"l{i}", "condition=activity=0", s) for i, s in enumerate(low)]
    fa = tmp_path / "gen.fa"
    write_fasta(fa, recs)
    (tmp_path / "gen.fa.json").write_text(json.dumps({"conditioning": spec.to_dict()}))
    ref = PropertyTable("toy", seqs, y[:, :1], ["activity"], list(range(2, 602)))
    motif_file = tmp_path / "m.transfac"
    motif_file.write_text("AC  PLANT\nXX\nID  AP1\nXX\nP0 A C G T\n" + "".join(
        f"{i + 1:02d} " + " ".join("10" if b == c else "0" for b in "ACGT") + "\n" for i, c in enumerate("TGACTCA"))
        + "XX\n//\n")
    summary = evaluate_cre(fa, tmp_path / "oracle", ref, tmp_path / "ev", motifs_path=motif_file,
                           config=EvalConfig(top_k=5, progress=False))
    rows = {r["condition"]: r for r in summary["conditions"]}
    assert rows["activity=2"]["exact_copies_of_reference"] == 20 and rows["activity=2"]["novelty_min_distance"] == 0
    assert rows["activity=0"]["novelty_min_distance"] > 0
    from generate.oracle import load_oracle

    o = load_oracle(tmp_path / "oracle")
    ph, pl = o.predict(high)[:, 0], o.predict(low)[:, 0]
    t = summary["high_vs_low"]["activity"]
    assert t["oracle_mean_high"] == pytest.approx(ph.mean(), rel=1e-5)
    assert t["p_two_sided"] == pytest.approx(mannwhitneyu(ph, pl).pvalue, rel=1e-5)
    # the oracle's ceiling: the same AUC on the real held-out rows of the two classes (planted motifs: well above 0.5)
    from sklearn.metrics import roc_auc_score

    from generate.evaluate import _oracle_heldout

    held = _oracle_heldout(tmp_path / "oracle")
    rows_o = [i for i, s in enumerate(seqs) if s in held] if len([s for s in seqs if s in held]) >= 20 else range(len(seqs))
    pick = [i for i in rows_o if bins[i] in (0, 2)]
    pred = o.predict([seqs[i] for i in pick])[:, 0]
    assert t["real_auc_high_vs_low"] == pytest.approx(roc_auc_score(bins[pick] == 2, pred), rel=1e-6)
    assert t["real_auc_high_vs_low"] > 0.8 and t["real_n_high"] + t["real_n_low"] == len(pick)
    # best designs vs best real sequences: top n of the high class by the oracle vs the top n held-out rows by
    # measured value, recomputed here with argsort + sklearn's AUC
    top = t["top_n"]
    rows_o = list(rows_o)
    n = min(100, len(ph), len(rows_o))
    best_real = [rows_o[i] for i in np.argsort(y[rows_o, 0], kind="stable")[-n:]]
    pred_best = o.predict([seqs[i] for i in best_real])[:, 0]
    gen_top = np.sort(ph)[-n:]
    assert top["n"] == n and top["generated_top_oracle_mean"] == pytest.approx(gen_top.mean(), rel=1e-5)
    assert top["real_top_by_measured_oracle_mean"] == pytest.approx(pred_best.mean(), rel=1e-5)
    auc = roc_auc_score([1] * n + [0] * n, np.concatenate([gen_top, pred_best]))
    assert top["auc_generated_top_vs_real_top_measured"] == pytest.approx(auc, rel=1e-5)
    assert top["real_top_by_oracle_oracle_mean"] >= top["real_top_by_measured_oracle_mean"] - 1e-6
    assert rows["activity=2"]["activity:oracle_top5_mean"] == pytest.approx(np.sort(ph)[-5:].mean(), rel=1e-5)
    lo_edge, hi_edge = spec.properties[0].bounds(2)
    assert rows["activity=2"]["activity:fraction_in_class"] == pytest.approx(np.mean((ph >= lo_edge) & (ph < hi_edge)))
    assert rows["activity=2"]["kmer4_js"] == pytest.approx(kmer_divergence(high, seqs, 4))
    # the planted motif is found in the high set far more often than in random sequences
    m = summary["motifs"]["sets"]
    assert m["generated:activity=2"]["mean_motifs_hit_per_sequence"] > m["generated:activity=0"]["mean_motifs_hit_per_sequence"]
    for f in ("summary.json", "conditions.tsv", "sequences.tsv", "motifs.tsv", "activity.png"):
        assert (tmp_path / "ev" / f).stat().st_size > 0
    assert (tmp_path / "ev" / "activity.png").read_bytes()[:4] == b"\x89PNG"

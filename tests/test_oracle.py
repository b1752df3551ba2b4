"""Oracle CNN: one-hot encoding, learning a planted motif, save/load round trip."""

import numpy as np
import pytest
import torch

from dnalm.errors import DnalmError, InputError
from generate.oracle import OracleTrainConfig, load_oracle, match_targets, one_hot, train_oracle

MOTIF = "TGACTCA"


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def planted_table(n=1200, length=50, seed=0):
    """Random sequences with 0-3 planted copies of a motif; activity = copies + GC/4 + noise."""
    rng = np.random.default_rng(seed)
    seqs, y = [], []
    for _ in range(n):
        s = list(rng.choice(list("ACGT"), length))
        k = int(rng.integers(0, 4))
        for start in rng.choice(np.arange(0, length - len(MOTIF), len(MOTIF)), k, replace=False):
            s[start : start + len(MOTIF)] = MOTIF
        s = "".join(s)
        seqs.append(s)
        y.append([s.count(MOTIF) + rng.normal(0, 0.3), (s.count("G") + s.count("C")) / length])
    return seqs, np.array(y)


def test_one_hot():
    x = one_hot(["ACGTN", "GA"], 6)
    assert x.shape == (2, 4, 6)
    assert x[0, :, :4].argmax(0).tolist() == [0, 1, 2, 3]
    assert x[0, :, 4].tolist() == [0.25] * 4 and x[0, :, 5].sum() == 0 and x[1, :, 2:].sum() == 0
    with pytest.raises(InputError, match="longer than"):
        one_hot(["ACGTACG"], 6)
    with pytest.raises(InputError, match="sequence 1: invalid character"):
        one_hot(["ACG", "AXG"], 6)


def test_oracle_learns_planted_motif_and_round_trips(tmp_path):
    seqs, y = planted_table()
    cfg = OracleTrainConfig(max_epochs=6, patience=3, batch_size=64, lr=3e-3, progress=False)
    model, report = train_oracle(seqs, y, ["activity", "gc"], tmp_path / "o", cfg,
                                 arch={"channels": 32, "dilated_layers": 2, "hidden": 32, "dropout": 0.1})
    assert report["n_test"] == 120 and report["n_validation"] == 120
    assert report["heldout"]["activity"]["spearman"] > 0.5
    assert report["heldout"]["gc"]["spearman"] > 0.5
    # the report's held-out metrics are reproducible from the saved predictions
    rows = [line.split("\t") for line in (tmp_path / "o" / "heldout_predictions.tsv").read_text().splitlines()[1:]]
    from scipy.stats import spearmanr

    rho = spearmanr([float(r[1]) for r in rows], [float(r[2]) for r in rows]).statistic
    assert rho == pytest.approx(report["heldout"]["activity"]["spearman"], abs=1e-4)
    loaded = load_oracle(tmp_path / "o")
    np.testing.assert_allclose(loaded.predict(seqs[:20]), model.predict(seqs[:20]), rtol=1e-5, atol=1e-5)
    assert loaded.targets == ["activity", "gc"]
    # predictions come back in the original units: planted copies raise the prediction
    base = "A" * 50
    one = MOTIF + "A" * 43
    three = MOTIF * 3 + "A" * 29
    p = loaded.predict([base, one, three])[:, 0]
    assert p[0] < p[1] < p[2]
    assert match_targets(loaded, ["gc"]) == {"gc": 1}
    assert match_targets(loaded, ["expr"], {"expr": "activity"}) == {"expr": 0}
    with pytest.raises(DnalmError, match="no oracle target"):
        match_targets(loaded, ["expr"])
    with pytest.raises(InputError, match="not an oracle directory"):
        load_oracle(tmp_path)

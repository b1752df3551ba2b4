"""Heads, pooling, losses and metrics of the fine-tuning package against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dnalm
from dnalm.tokenizer import BOS_ID, PAD_ID, SEP_ID, DNATokenizer, reverse_complement, reverse_complement_ids
from finetune.heads import HeadConfig, SequenceModel, build_inputs, task_loss
from finetune.metrics import classification_metrics, compute_metrics, regression_metrics

TOK = DNATokenizer()


def tiny_backbone(seed: int = 0):
    torch.manual_seed(seed)
    return dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, attention={"n_heads": 2, "rotary": True})


def batch_of(seqs: list[str], extra_pad: int = 0):
    width = max(map(len, seqs)) + extra_pad
    ids = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(TOK.encode(s))
        mask[i, : len(s)] = 1
    return ids, mask


SEQS = ["ACGTTGCA", "GGGATTACAC", "TTA", "CCGTANCG"]


# ------------------------------------------------------------------------------------------ losses vs sklearn
def test_losses_match_sklearn_log_loss_and_mse():
    from sklearn.metrics import log_loss, mean_squared_error

    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 1)).astype(np.float32)
    y = rng.integers(0, 2, 12)
    p = 1 / (1 + np.exp(-z[:, 0]))
    got = float(task_loss("binary", torch.from_numpy(z), torch.from_numpy(y)))
    assert got == pytest.approx(log_loss(y, p), rel=1e-5)

    z = rng.normal(size=(12, 4)).astype(np.float32)
    y = rng.integers(0, 4, 12)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    got = float(task_loss("multiclass", torch.from_numpy(z), torch.from_numpy(y)))
    assert got == pytest.approx(log_loss(y, p, labels=range(4)), rel=1e-5)

    z = rng.normal(size=(12, 3)).astype(np.float32)
    y = rng.integers(0, 2, (12, 3))
    p = 1 / (1 + np.exp(-z))
    got = float(task_loss("multilabel", torch.from_numpy(z), torch.from_numpy(y)))
    assert got == pytest.approx(log_loss(y.ravel(), p.ravel()), rel=1e-5)

    z = rng.normal(size=(5, 7, 3)).astype(np.float32)
    y = rng.integers(0, 3, (5, 7))
    y[:, 5:] = -100
    keep = y != -100
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    got = float(task_loss("token_classification", torch.from_numpy(z), torch.from_numpy(y)))
    assert got == pytest.approx(log_loss(y[keep], p[keep], labels=range(3)), rel=1e-5)

    # regression: the model standardises targets with the train mean/std before the MSE
    head = HeadConfig(kind="regression", num_outputs=2, target_mean=[1.0, -2.0], target_std=[2.0, 0.5])
    model = SequenceModel(tiny_backbone(), head)
    out = torch.from_numpy(rng.normal(size=(6, 2)).astype(np.float32))
    target = rng.normal(size=(6, 2)).astype(np.float32)
    std_target = (target - np.array([1.0, -2.0])) / np.array([2.0, 0.5])
    assert float(model.loss(out, torch.from_numpy(target))) == pytest.approx(
        mean_squared_error(std_target, out.numpy()), rel=1e-5)
    assert np.allclose(model.scores(out).numpy(), out.numpy() * [2.0, 0.5] + [1.0, -2.0], atol=1e-6)


# ------------------------------------------------------------------------------------------ metrics vs naive
def naive_mcc(y, pred):
    tp = sum(1 for a, b in zip(y, pred) if a == 1 and b == 1)
    tn = sum(1 for a, b in zip(y, pred) if a == 0 and b == 0)
    fp = sum(1 for a, b in zip(y, pred) if a == 0 and b == 1)
    fn = sum(1 for a, b in zip(y, pred) if a == 1 and b == 0)
    den = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return 0.0 if den == 0 else (tp * tn - fp * fn) / den


def naive_auroc(y, s):
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def naive_average_precision(y, s):
    order = np.argsort(-np.asarray(s), kind="stable")
    hits, total, ap = 0, sum(y), 0.0
    for rank, i in enumerate(order, start=1):
        if y[i] == 1:
            hits += 1
            ap += hits / rank
    return ap / total


def test_binary_and_multilabel_metrics_match_naive_references():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = np.clip(y * 0.3 + rng.random(40) * 0.7, 0, 1)  # distinct scores, informative
    m = classification_metrics("binary", y, s)
    assert m["mcc"] == pytest.approx(naive_mcc(y, (s > 0.5).astype(int)))
    assert m["auroc"] == pytest.approx(naive_auroc(y, s))
    assert m["auprc"] == pytest.approx(naive_average_precision(y, s))
    assert m["accuracy"] == pytest.approx(np.mean((s > 0.5) == y))

    Y = rng.integers(0, 2, (30, 4))
    Y[:, 3] = 0  # a label without positives is not scored
    S = np.clip(Y * 0.4 + rng.random((30, 4)) * 0.6, 0, 1)
    m = classification_metrics("multilabel", Y, S)
    assert m["n_labels_scored"] == 3
    assert m["auroc"] == pytest.approx(np.mean([naive_auroc(Y[:, j], S[:, j]) for j in range(3)]))
    assert m["auprc"] == pytest.approx(np.mean([naive_average_precision(Y[:, j], S[:, j]) for j in range(3)]))


def test_multiclass_token_and_regression_metrics():
    from scipy.stats import rankdata

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    P = rng.dirichlet(np.ones(3), 50)
    m = classification_metrics("multiclass", y, P)
    pred = P.argmax(1)
    # multiclass MCC (Gorodkin's R_K) from the confusion matrix
    C = np.zeros((3, 3))
    for a, b in zip(y, pred):
        C[a, b] += 1
    t, p, c, n = C.sum(1), C.sum(0), np.trace(C), C.sum()
    ref = (c * n - t @ p) / np.sqrt((n**2 - p @ p) * (n**2 - t @ t))
    assert m["mcc"] == pytest.approx(ref)

    # per-base: positions labelled -100 are ignored
    Y = np.full((2, 5), -100)
    Y[0, :5], Y[1, :3] = [0, 1, 2, 1, 0], [2, 2, 1]
    S = rng.dirichlet(np.ones(3), (2, 5))
    tok = compute_metrics("token_classification", Y, S)
    keep = Y != -100
    assert tok["accuracy"] == pytest.approx(np.mean(S[keep].argmax(-1) == Y[keep]))

    yv = rng.normal(size=40)
    pv = yv + rng.normal(scale=0.5, size=40)
    r = regression_metrics(yv, pv)
    ry, rp = rankdata(yv), rankdata(pv)
    assert r["spearman"] == pytest.approx(np.corrcoef(ry, rp)[0, 1])
    assert r["pearson"] == pytest.approx(np.corrcoef(yv, pv)[0, 1])


# ------------------------------------------------------------------------------------------ pooling
def reference_pool(backbone, seq: str, pooling: str) -> torch.Tensor:
    """Pooled state of one unpadded sequence, computed from its own forward pass."""
    n = len(seq)
    if pooling in ("mean", "last"):
        ids = [BOS_ID] + TOK.encode(seq) + [SEP_ID]
    else:
        second = seq if pooling == "echo" else reverse_complement(seq)
        ids = [BOS_ID] + TOK.encode(seq) + [SEP_ID] + TOK.encode(second) + [SEP_ID]
    h = backbone.embed(torch.tensor([ids]))[0]
    if pooling == "mean":
        return h[1 : n + 1].mean(0)
    if pooling == "last":
        return h[n + 1]
    return h[n + 2 : 2 * n + 2].mean(0)  # exactly the second copy


@pytest.mark.parametrize("pooling", ["mean", "last", "echo", "rc_echo"])
def test_pooling_uses_exactly_the_right_tokens_and_ignores_padding(pooling):
    backbone = tiny_backbone().eval()
    model = SequenceModel(backbone, HeadConfig(kind="binary", pooling=pooling)).eval()
    with torch.no_grad():
        ids, mask = batch_of(SEQS)
        pooled = model.embed(ids, mask)
        for i, s in enumerate(SEQS):
            assert torch.allclose(pooled[i], reference_pool(backbone, s, pooling), atol=1e-5), (pooling, s)
        ids2, mask2 = batch_of(SEQS, extra_pad=9)  # more padding: same pooled states
        assert torch.allclose(model.embed(ids2, mask2), pooled, atol=1e-5)


def test_echo_and_rc_echo_input_construction():
    ids, mask = batch_of(SEQS)
    for pooling, second in (("echo", lambda s: s), ("rc_echo", reverse_complement)):
        inp = build_inputs(ids, mask, pooling)
        for i, s in enumerate(SEQS):
            n = len(s)
            row = inp.input_ids[i].tolist()
            want = [BOS_ID] + TOK.encode(s) + [SEP_ID] + TOK.encode(second(s)) + [SEP_ID]
            assert row[: len(want)] == want
            assert all(t == PAD_ID for t in row[len(want):])
            assert inp.attention_mask[i].sum() == 2 * n + 3
            # per-base positions point at the copy's token of base i (its complement for rc_echo)
            got = [row[p] for p in inp.positions[i, :n].tolist()]
            base = TOK.encode(s)
            if pooling == "echo":
                assert got == base
            else:  # the complement of base i, i.e. the reverse complement read backwards
                assert TOK.decode(got) == reverse_complement(s)[::-1]
    rc = reverse_complement_ids(ids, mask)
    for i, s in enumerate(SEQS):
        assert TOK.decode(rc[i, : len(s)]) == reverse_complement(s)
        assert (rc[i, len(s):] == PAD_ID).all()


@pytest.mark.parametrize("kind,pooling", [("multiclass", "mean"), ("token_classification", "echo")])
def test_strand_averaging_is_reverse_complement_invariant(kind, pooling):
    model = SequenceModel(tiny_backbone(), HeadConfig(kind=kind, num_outputs=3, pooling=pooling,
                                                      strand_average=True)).eval()
    ids, mask = batch_of(SEQS)
    rc = reverse_complement_ids(ids, mask)
    with torch.no_grad():
        a, b = model(ids, mask), model(rc, mask)
    if kind == "multiclass":
        assert torch.allclose(a, b, atol=1e-5)
    else:
        for i, s in enumerate(SEQS):
            n = len(s)
            assert torch.allclose(a[i, :n], b[i, :n].flip(0), atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    head = HeadConfig(kind="multiclass", num_outputs=3, pooling="rc_echo", hidden=16, classes=["a", "b", "c"])
    model = SequenceModel(tiny_backbone(), head).eval()
    model.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors", "tokenizer.json", "head.json", "head.safetensors"} <= {
        p.name for p in (tmp_path / "m").iterdir()}
    loaded = SequenceModel.load(tmp_path / "m")
    ids, mask = batch_of(SEQS)
    with torch.no_grad():
        assert torch.allclose(model(ids, mask), loaded(ids, mask), atol=1e-6)
    assert loaded.config == head
    backbone = dnalm.load_model(tmp_path / "m")  # the directory is also a plain backbone
    assert backbone.config.d_model == 32


def test_head_config_rejects_bad_values():
    from dnalm.errors import ConfigError

    with pytest.raises(ConfigError, match="pooling"):
        HeadConfig(pooling="max")
    with pytest.raises(ConfigError, match="last"):
        HeadConfig(kind="token_classification", num_outputs=3, pooling="last")
    with pytest.raises(ConfigError, match="colour: unknown key"):
        HeadConfig.from_dict({"kind": "binary", "colour": 1})


def test_scan_chunk_size_changes_speed_not_outputs(tmp_path):
    from finetune.lightning import set_scan_chunk_size

    torch.manual_seed(0)
    backbone = dnalm.build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                                 mamba2={"d_state": 8, "headdim": 16, "chunk_size": 64},
                                 attention={"n_heads": 2, "n_kv_heads": 2}).eval()
    model = SequenceModel(backbone, HeadConfig(kind="binary", pooling="echo")).eval()
    ids, mask = batch_of(SEQS)
    with torch.no_grad():
        before = model.embed(ids, mask)
        assert set_scan_chunk_size(backbone, 4) == 1  # one Mamba2 layer, one attention layer
        assert torch.allclose(model.embed(ids, mask), before, atol=1e-5)
    backbone.save_pretrained(tmp_path / "m")
    assert dnalm.load_model(tmp_path / "m").config.mamba2.chunk_size == 4


# ------------------------------------------------------------------------------------------ tracking standardisation
def _pooled_rows(model, ids, mask):
    with torch.no_grad():
        feats = model.embed(ids, mask)
    return feats[mask.bool()] if model.per_token else feats


@pytest.mark.parametrize("pooling", ["mean", "last", "echo", "rc_echo"])
@pytest.mark.parametrize("kind,k", [("binary", 1), ("multiclass", 3), ("multilabel", 2), ("regression", 2),
                                    ("token_classification", 3)])
def test_tracking_standardisation_cancels_a_common_backbone_drift(kind, k, pooling):
    """While the backbone fine-tunes, FeatureNorm centres a training batch on its own mean: a drift of the backbone
    that shifts every pooled feature alike (here: added to the final norm's output) leaves the head's training
    outputs unchanged and sends no gradient into that drift, for every head kind and pooling (padding of per-base
    states stays out of the mean). With fixed statistics the same drift moves the outputs by many units: the
    collapse of the old recipe."""
    from finetune.heads import feature_statistics

    if kind == "token_classification" and pooling == "last":
        pytest.skip("per-base heads need a pooling over tokens")
    model = SequenceModel(tiny_backbone(), HeadConfig(kind=kind, num_outputs=k, pooling=pooling, dropout=0.0,
                                                      strand_average=pooling == "mean"))
    ids, mask = batch_of(SEQS + ["GATTACAGATTACA", "CAT"])
    stats = feature_statistics(_pooled_rows(model, ids, mask))
    model.head.norm.set(*stats)
    model.train()
    d = stats[0].shape[0]
    shift = torch.zeros(d, requires_grad=True)
    hook = model.backbone.backbone.ln_f.register_forward_hook(lambda mod, inp, out: out + shift)
    drift = 0.5 * torch.randn(d, generator=torch.Generator().manual_seed(1))
    valid = mask.bool() if kind == "token_classification" else slice(None)
    try:
        model.head.norm.momentum = 0.1
        before = model(ids, mask).detach()
        with torch.no_grad():
            shift.add_(drift)
        after = model(ids, mask)
        torch.testing.assert_close(after[valid], before[valid], atol=2e-4, rtol=1e-4)
        after[valid].square().sum().backward()
        assert float(shift.grad.abs().max()) < 1e-3 * max(1.0, float(after.detach()[valid].abs().max()))
        # fixed statistics: the same drift is amplified into the outputs
        model.head.norm.momentum = 0.0
        model.head.norm.set(*stats)
        with torch.no_grad():
            fixed_after = model(ids, mask)
        assert float((fixed_after - before)[valid].abs().max()) > 0.5
    finally:
        hook.remove()


def test_feature_norm_tracks_the_batch_mean_without_padding():
    """Training mode with momentum > 0: centre on the batch's mean over real rows only (the scale stays the stored
    one) and move the stored mean a momentum step towards it; eval mode and momentum 0 use the stored statistics."""
    from finetune.heads import FeatureNorm

    torch.manual_seed(0)
    norm = FeatureNorm(4)
    norm.set(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 1.0, 2.0, 1e-2]))
    x = torch.randn(3, 5, 4, dtype=torch.float32) * 2 + 7
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    x = x * mask[..., None]  # padding is zeros, as pool_states returns it
    m0, s0 = norm.mean.clone(), norm.std.clone()
    norm.train()
    torch.testing.assert_close(norm(x, mask), (x - m0) / s0)  # momentum 0: fixed, statistics unchanged
    norm.momentum = 0.25
    real = x[mask.bool()]  # (10, 4)
    out = norm(x, mask)
    torch.testing.assert_close(out[mask.bool()], (real - real.mean(0)) / s0, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(norm.mean, m0 + 0.25 * (real.mean(0) - m0))
    assert torch.equal(norm.std, s0)
    norm.eval()
    torch.testing.assert_close(norm(x, mask), (x - norm.mean) / norm.std)
    norm.train()
    one = torch.randn(1, 4)  # a single row: nothing to centre on, the stored statistics
    torch.testing.assert_close(norm(one), (one - norm.mean) / norm.std)

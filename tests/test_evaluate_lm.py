"""evaluate-lm: Markov baselines against brute-force counting, model bits/base against a direct computation."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from dnalm.errors import ConfigError
from dnalm.evaluate_lm import (
    MarkovChains,
    Region,
    evaluate_lm,
    model_log2_probs,
    split_regions,
    to_codes,
    write_result,
)
from dnalm.tokenizer import DNATokenizer

TOK = DNATokenizer()


def _random_seq(rng, n, n_runs=((7, 3), (40, 1))) -> str:
    s = list(rng.choice(list("ACGT"), n))
    for start, length in n_runs:
        s[start : start + length] = "N" * length
    return "".join(s)


# ------------------------------------------------------------------------------------------ brute force Markov
def brute_counts(seqs: list[str], k: int) -> Counter:
    """(context string, next base) counts over positions with k valid bases (no N) right before them."""
    c = Counter()
    for s in seqs:
        for i in range(len(s)):
            ctx = s[i - k : i] if i >= k else None
            if s[i] != "N" and ctx is not None and "N" not in ctx:
                c[(ctx, s[i])] += 1
    return c


def brute_log2p(seqs_fit: list[str], seq: str, k: int, alpha: float) -> list[float | None]:
    """Per-position log2 P with back-off to the longest valid context of length <= k inside ``seq``."""
    tables = {j: brute_counts(seqs_fit, j) for j in range(k + 1)}
    out = []
    for i, b in enumerate(seq):
        if i == 0 or b == "N":
            out.append(None)
            continue
        j = 0
        while j < min(k, i) and seq[i - j - 1] != "N":
            j += 1
        ctx = seq[i - j : i]
        num = tables[j][(ctx, b)] + alpha
        den = sum(tables[j][(ctx, x)] for x in "ACGT") + 4 * alpha
        out.append(math.log2(num / den))
    return out


def test_markov_counts_and_probabilities_match_brute_force():
    rng = np.random.default_rng(0)
    fit = [_random_seq(rng, 300), _random_seq(rng, 150, n_runs=((0, 2), (100, 5)))]
    test = _random_seq(rng, 120, n_runs=((3, 1), (50, 4), (119, 1)))
    chains = MarkovChains.fit([to_codes(TOK.encode_np(s)) for s in fit], max_k=4, alpha=0.5)
    assert chains.n_bases == sum(s.count("A") + s.count("C") + s.count("G") + s.count("T") for s in fit)
    for k in range(5):
        brute = brute_counts(fit, k)
        table = chains.counts[k]
        for ctx_i in range(4**k):
            # context code: base i-1 is the least significant base-4 digit
            ctx = "".join("ACGT"[(ctx_i // 4**t) % 4] for t in range(k))[::-1]
            for b in range(4):
                assert table[ctx_i, b] == brute[(ctx, "ACGT"[b])], (k, ctx, b)
        got = chains.log2_probs(to_codes(TOK.encode_np(test)), k)
        want = brute_log2p(fit, test, k, 0.5)
        for i, w in enumerate(want):
            if w is None:
                assert np.isnan(got[i]), (k, i)
            else:
                assert got[i] == pytest.approx(w, abs=1e-12), (k, i)


def test_markov_learns_a_periodic_sequence():
    seq = to_codes(TOK.encode_np("ACGT" * 500))
    chains = MarkovChains.fit([seq], max_k=3, alpha=1.0)
    bits0 = -np.nanmean(chains.log2_probs(seq, 0))
    bits1 = -np.nanmean(chains.log2_probs(seq, 1))
    assert bits0 == pytest.approx(2.0, abs=1e-3)  # uniform base composition
    assert bits1 < 0.01  # the previous base determines the next
    pred = chains.predictions(seq, 1)
    assert (pred[1:] == seq[1:]).all()


# ------------------------------------------------------------------------------------------ model scoring
def tiny_model(seed=0):
    from dnalm.models import build_model

    torch.manual_seed(seed)
    m = build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                    mamba2={"d_state": 8, "headdim": 16, "chunk_size": 16},
                    attention={"n_heads": 2, "n_kv_heads": 2})
    with torch.no_grad():  # a random model with sharper predictions than the near-uniform init
        m.lm_head.weight.mul_(20)
    return m.eval()


@pytest.mark.parametrize("length, batch_size", [(8, 3), (16, 1), (5, 64)])
def test_model_bits_equal_direct_computation(length, batch_size):
    model = tiny_model()
    rng = np.random.default_rng(1)
    seq = _random_seq(rng, 61)
    ids = TOK.encode_np(seq)
    got, pred = model_log2_probs(model, ids, length, batch_size=batch_size)
    for p in range(len(seq)):
        if p == 0 or seq[p] == "N":
            assert np.isnan(got[p]) and pred[p] == -1
            continue
        start = ((p - 1) // length) * length  # the window that predicts p starts here
        ctx = torch.from_numpy(ids[start:p])[None]
        with torch.no_grad():
            logits = model(ctx).logits[0, -1, 7:11].double()
        lp = torch.log_softmax(logits, -1) / math.log(2)
        assert got[p] == pytest.approx(float(lp["ACGT".index(seq[p])]), abs=1e-5), p
        assert pred[p] == int(lp.argmax())


def test_split_regions_evenly_spaced():
    regions = [Region("a", 0, 1000), Region("b", 100, 600)]
    out = split_regions(regions, 300, block=100)
    assert len(out) == 3 and all(r.end - r.start == 100 for r in out)
    assert out[0] == Region("a", 0, 100) and out[-1] == Region("b", 500, 600)
    assert split_regions(regions, 10_000, block=100) == regions


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from test_pretrain import write_genome

    folder = tmp_path_factory.mktemp("eval")
    fasta = write_genome(folder / "toy.fa")
    model = tiny_model()
    extra = {"pretrain": {"genomes": [str(fasta)], "val_length": 16,
                          "splits": {"train": ["toy:chr1", "toy:chr2"], "validation": ["toy:chr3"], "test": ["toy:chr4"]}}}
    model.save_pretrained(folder / "model", extra=extra)
    return fasta, folder / "model"


def test_evaluate_lm_end_to_end(toy, tmp_path):
    from dnalm.io.genome import Genome

    fasta, model_dir = toy
    res = evaluate_lm(model_dir, fasta, max_k=3, progress=False)
    # defaults from the recorded run: test chromosome, its training chromosomes, its validation length
    assert [r["chrom"] for r in res.regions] == ["chr4"] and res.train_chroms == ["chr1", "chr2"]
    assert res.length == 16 and res.n_bases == 3000 - 1
    assert [r["k"] for r in res.markov] == [0, 1, 2, 3]
    assert res.chosen_k == int(np.argmin([r["val_bits_per_base"] for r in res.markov]))
    assert res.best_k_le3 == int(np.argmin([r["bits_per_base"] for r in res.markov]))
    # the toy genome is an order-2 chain: order 2 beats order 0 clearly
    assert res.markov[2]["bits_per_base"] < res.markov[0]["bits_per_base"] - 0.2
    # the model's figure is the mean of its per-base log-probabilities
    from dnalm.models import load_model

    ids = TOK.encode_np(Genome(fasta).fetch("chr4", 0, 3000))
    lp, _ = model_log2_probs(load_model(model_dir), ids, 16)
    assert res.model_bits_per_base == pytest.approx(-np.nanmean(lp), rel=1e-9)
    text = res.table()
    assert "chosen on validation" in text and "best Markov with k <= 3" in text

    tsv = write_result(res, tmp_path / "r.tsv")
    with open(tsv) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows[0]["predictor"] == "model" and len(rows) == 5
    assert [r["chosen"] for r in rows[1:]].count("yes") == 1
    js = json.loads(write_result(res, tmp_path / "r.json").read_text())
    assert js["model_bits_per_base"] == res.model_bits_per_base and js["chosen_k"] == res.chosen_k


def test_evaluate_lm_bed_and_options(toy, tmp_path):
    fasta, model_dir = toy
    bed = tmp_path / "r.bed"
    bed.write_text("chr3\t100\t400\nchr4\t0\t50\n")
    res = evaluate_lm(model_dir, fasta, bed=bed, max_k=2, length=8, train_chroms=["chr1"], progress=False)
    assert res.n_bases == 299 + 49 and res.train_chroms == ["chr1"]
    with pytest.raises(ConfigError, match="also evaluated"):
        evaluate_lm(model_dir, fasta, chroms=["chr1"], train_chroms=["chr1", "chr2"], max_k=1, progress=False)
    with pytest.raises(ConfigError, match="--chroms or --bed, not both"):
        evaluate_lm(model_dir, fasta, chroms=["chr4"], bed=bed, progress=False)


def test_evaluate_lm_cli(toy, tmp_path, capsys):
    from dnalm.cli import main

    fasta, model_dir = toy
    out = tmp_path / "res.json"
    rc = main(["evaluate-lm", "--model", str(model_dir), "--fasta", str(fasta), "--chroms", "chr3", "--max-k", "2",
               "--length", "32", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "bits/base" in text and "<- chosen on validation" in text
    res = json.loads(out.read_text())
    assert res["regions"] == [{"chrom": "chr3", "start": 0, "end": 3000}]
    assert res["train_chroms"] == ["chr1", "chr2"]  # recorded training chromosomes, not chr4 (test)
    rc = main(["evaluate-lm", "--model", str(tmp_path / "none"), "--fasta", str(fasta), "--chroms", "chr3"])
    assert rc == 2 and "not a dnalm model directory" in capsys.readouterr().err

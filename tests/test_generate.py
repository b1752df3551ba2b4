"""Conditional generation: binning, condition tokens, sampling, constraints, beam search, generator fine-tuning."""

import itertools

import numpy as np
import pytest
import torch

import dnalm
from dnalm.errors import DnalmError, InputError
from dnalm.tokenizer import NUM_BASE_TOKENS
from generate.conditioning import (
    ConditionSpec,
    add_condition_tokens,
    assign_bins,
    load_generator,
    quantile_edges,
    save_generator,
)
from generate.data import read_property_table, split_indices
from generate.sampling import Constraints, prompt_ids, read_fasta, sample, sequence_log_prob, write_fasta
from generate.training import GeneratorTrainConfig, encode_examples, finetune_generator

BASE_IDS = [7, 8, 9, 10]


@pytest.fixture(autouse=True)
def one_thread():
    # two cores shared by many processes: several torch threads spin and slow tiny models down by 10x+
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_generator(n_bins=4, props=("expr",), seed=0):
    torch.manual_seed(seed)
    model = dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, max_length=64)
    vals = np.random.default_rng(seed).normal(size=(200, len(props)))
    spec, _ = ConditionSpec.fit(vals, list(props), n_bins)
    add_condition_tokens(model, spec)
    return model.eval()


# ------------------------------------------------------------------------------------------------ binning


@pytest.mark.parametrize("n_bins", [2, 3, 5, 10])
def test_quantile_edges_match_numpy(n_bins):
    v = np.random.default_rng(n_bins).gamma(2.0, size=1001)
    edges = quantile_edges(v, n_bins)
    np.testing.assert_allclose(edges, [np.quantile(v, k / n_bins) for k in range(1, n_bins)])
    bins = assign_bins(v, edges)
    naive = np.array([sum(x >= e for e in edges) for x in v])
    np.testing.assert_array_equal(bins, naive)
    counts = np.bincount(bins, minlength=n_bins)
    assert counts.min() >= len(v) // n_bins - 2  # quantile bins are balanced


def test_spec_given_edges_ties_and_names():
    v = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    spec, warn = ConditionSpec.fit(v, ["a"], edges={"a": [2.5, 1.5]})
    assert spec.properties[0].edges == [1.5, 2.5]
    assert spec.bins(v)[:, 0].tolist() == [0, 0, 1, 2, 2]
    assert spec.properties[0].counts == [2, 1, 2]
    tied = np.array([[1.0]] * 80 + [[2.0]] * 10 + [[3.0]] * 10)
    spec, warn = ConditionSpec.fit(tied, ["t"], 5)
    assert spec.properties[0].n_bins < 5 and any("tied" in w for w in warn)
    with pytest.raises(Exception, match="property name"):
        ConditionSpec.fit(v, ["bad name"], 2)
    with pytest.raises(Exception, match="unknown"):
        ConditionSpec.fit(v, ["a"], 2, edges={"b": [1.0]})


def test_condition_tokens_own_ids_and_round_trip(tmp_path):
    model = tiny_generator(n_bins=3, props=("expr", "gc"))
    spec = model.conditioning
    ids = [model.tokenizer.vocab[t] for t in spec.token_names]
    assert min(ids) >= NUM_BASE_TOKENS and len(set(ids)) == 6
    assert model.config.vocab_size == NUM_BASE_TOKENS + 6
    assert spec.condition_tokens(spec.parse("gc=1,expr=2")) == ["<expr=2>", "<gc=1>"]
    save_generator(model, tmp_path / "g")
    loaded = load_generator(tmp_path / "g")
    assert loaded.conditioning.to_dict() == spec.to_dict()
    assert loaded.tokenizer.condition_tokens == model.tokenizer.condition_tokens
    x = torch.tensor([prompt_ids(model, "expr=2,gc=0")[0] + [7, 8, 9]])
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    # the same sampled sequences from the saved and the in-memory generator
    assert sample(loaded, "expr=1,gc=2", num=3, length=12, seed=5) == sample(model, "expr=1,gc=2", num=3, length=12, seed=5)


def test_unknown_condition_errors():
    model = tiny_generator()
    for bad, msg in [("expr=4", "classes 0..3"), ("foo=1", "not trained with property 'foo'"),
                     (None, "conditioned on"), ("expr", "NAME=CLASS"), ("expr=x", "not an integer")]:
        with pytest.raises(DnalmError, match=msg):
            sample(model, bad, num=1, length=5, seed=0)
    plain = dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, max_length=64)
    with pytest.raises(DnalmError, match="no condition tokens"):
        sample(plain, "expr=1", num=1, length=5, seed=0)
    assert len(sample(plain, None, num=2, length=5, seed=0)) == 2


# ------------------------------------------------------------------------------------------------ sampling


def test_exact_length_acgt_and_seeds():
    model = tiny_generator()
    a = sample(model, "expr=1", num=7, length=23, seed=3, batch_size=4)
    assert len(a) == 7 and all(len(s) == 23 and set(s) <= set("ACGT") for s in a)
    assert a == sample(model, "expr=1", num=7, length=23, seed=3, batch_size=4)
    assert a != sample(model, "expr=1", num=7, length=23, seed=4, batch_size=4)
    assert a != sample(model, "expr=2", num=7, length=23, seed=3, batch_size=4)  # the condition changes the output
    p = sample(model, "expr=0", num=3, length=15, seed=1, prompt="acgt")
    assert all(s.startswith("ACGT") and len(s) == 15 for s in p)
    with pytest.raises(DnalmError, match="maximum length"):
        sample(model, "expr=0", num=1, length=63, seed=0)  # 1 + 1 + 63 > 64
    with pytest.raises(DnalmError, match="longer than --length"):
        sample(model, "expr=0", num=1, length=3, prompt="ACGTA")


def test_constraints_honoured_and_reported():
    model = tiny_generator()
    seqs, rep = sample(model, "expr=2", num=20, length=20, seed=0, gc_min=0.4, gc_max=0.6, forbid_motifs=["AA", "cg"],
                       forbid_reverse_complement=True, return_report=True)
    for s in seqs:
        assert 8 <= s.count("G") + s.count("C") <= 12
        assert "AA" not in s and "TT" not in s and "CG" not in s
    assert rep.accepted == 20 and rep.generated == 20 + rep.n_rejected + rep.surplus and rep.n_rejected > 0
    assert set(rep.rejected) <= {"gc_low", "gc_high", "motif:AA", "motif:TT", "motif:CG"}
    # a forbidden single base is removed from the alphabet, not rejected
    seqs, rep = sample(model, "expr=2", num=5, length=30, seed=0, forbid_motifs=["G"], return_report=True)
    assert all("G" not in s for s in seqs) and rep.n_rejected == 0


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(gc_min=0.7, gc_max=0.3), "gc-min 0.7 is above"),
        (dict(gc_min=1.5), "must lie in"),
        (dict(length=3, gc_min=0.4, gc_max=0.6), "no GC count"),
        (dict(forbid_motifs=["A", "C", "G", "T"]), "every base"),
        (dict(forbid_motifs=["C", "G"], gc_min=0.1), "GC count lies in 0..0"),
        (dict(forbid_motifs=["ANT"]), "A/C/G/T string"),
        (dict(prompt="GAATTC", forbid_motifs=["GAATTC"]), "already contains"),
        (dict(gc_min=0.99, max_tries=30), "only 0 of 3 sequences met the constraints after 30 candidates"),
    ],
)
def test_impossible_constraints_error(kwargs, msg):
    model = tiny_generator()
    kw = dict(num=3, length=20, seed=0)
    kw.update(kwargs)
    with pytest.raises(DnalmError, match=msg):
        sample(model, "expr=1", **kw)


def test_constraints_violation_matches_direct_checks():
    rng = np.random.default_rng(0)
    c = Constraints(gc_min=0.3, gc_max=0.5, forbid=["GGC"], reverse_complement=True)
    for _ in range(300):
        s = "".join(rng.choice(list("ACGT"), 12))
        gc = (s.count("G") + s.count("C")) / 12
        ok = 0.3 <= gc <= 0.5 and "GGC" not in s and "GCC" not in s
        assert (c.violation(s) is None) == ok


def test_beam_search_finds_brute_force_optimum():
    model = tiny_generator()
    ids, _ = prompt_ids(model, "expr=3")
    scored = sorted(((sequence_log_prob(model, ids, "".join(q), BASE_IDS), "".join(q))
                     for q in itertools.product("ACGT", repeat=3)), reverse=True)
    beams = sample(model, "expr=3", num=5, length=3, beam_size=16)
    assert beams == [q for _, q in scored[:5]]  # beam 16 >= 4^2 keeps every prefix: exact top 5
    # with constraints, pruned beam search returns the best brute-force sequences that meet them
    feasible = [q for _, q in scored if "AA" not in q and sum(c in "GC" for c in q) >= 2]
    assert sample(model, "expr=3", num=3, length=3, beam_size=16, gc_min=0.34, forbid_motifs=["AA"]) == feasible[:3]
    with pytest.raises(DnalmError, match="must not exceed"):
        sample(model, "expr=3", num=5, length=3, beam_size=4)


def test_fasta_round_trip(tmp_path):
    recs = [("gen000001", "condition=expr=4 length=5", "ACGTA"), ("x", "", "A" * 130)]
    write_fasta(tmp_path / "a.fa", recs, width=60)
    assert read_fasta(tmp_path / "a.fa") == recs
    (tmp_path / "b.fa").write_text("ACGT\n>x\nAC\n")
    with pytest.raises(InputError, match="line 1: sequence before"):
        read_fasta(tmp_path / "b.fa")


# ------------------------------------------------------------------------------------------------ data + training


def test_property_table_headerless_and_skips(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("number_of_seqs\t3\nlen\t4\nACGT\t1.5\nAXGT\t2\nACGG\tNA\nTTTT\t-1\n")
    t = read_property_table(p, "seq", ["expr"], header=False, skip_rows=2, column_names=["seq", "expr"])
    assert t.sequences == ["ACGT", "TTTT"] and t.values[:, 0].tolist() == [1.5, -1.0] and t.lines == [3, 6]
    assert [ln for ln, _ in t.skipped] == [4, 5]
    assert "invalid character 'X'" in t.skipped[0][1] and "not a number" in t.skipped[1][1]
    with pytest.raises(InputError, match="no column"):
        read_property_table(p, "seq", ["nope"], header=False, skip_rows=2, column_names=["seq", "expr"])
    a, b, c = split_indices(100, [0.1, 0.2], seed=1)
    assert (len(a), len(b), len(c)) == (70, 10, 20) and len(set(a) | set(b) | set(c)) == 100


def test_labels_mask_condition_tokens():
    model = tiny_generator(props=("expr", "gc"))
    ids, labels = encode_examples(model.tokenizer, ["ACG", "TTTTT"], np.array([[12, 16], [13, 17]]))
    assert ids[0].tolist() == [2, 12, 16, 7, 8, 9, 1, 4, 4]
    assert labels[0].tolist()[:3] == [-100, -100, -100] and labels[0].tolist()[3:7] == [7, 8, 9, 1]
    assert ids[1].tolist() == [2, 13, 17, 10, 10, 10, 10, 10, 1]


@pytest.mark.parametrize("broadcast", [True, False])
def test_finetune_learns_conditions(tmp_path, broadcast):
    rng = np.random.default_rng(0)
    seqs, vals = [], []
    for _ in range(300):  # low values: A-rich sequences, high values: T-rich
        v = rng.random()
        p = [0.7, 0.1, 0.1, 0.1] if v < 0.5 else [0.1, 0.1, 0.1, 0.7]
        seqs.append("".join(rng.choice(list("ACGT"), 16, p=p)))
        vals.append(v)
    torch.manual_seed(0)
    model = dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, max_length=64)
    cfg = GeneratorTrainConfig(n_bins=2, max_steps=80, eval_every=40, lr=3e-3, warmup_steps=5, progress=False,
                               broadcast=broadcast)
    rep = finetune_generator(model, seqs, np.array(vals)[:, None], ["act"], tmp_path / "gen", cfg)
    assert rep["n_train"] == 270 and rep["n_validation"] == 30
    table = (tmp_path / "gen" / "validation_by_condition.tsv").read_text().splitlines()
    assert table[0] == "condition\tn_sequences\tloss\tperplexity" and [r.split("\t")[0] for r in table[1:]] == ["all", "act=0", "act=1"]
    assert rep["best_val_loss"] < 1.2  # uniform would be ln 4 = 1.386 nats
    gen = load_generator(tmp_path / "gen")
    assert gen.config.condition_min_id == (12 if broadcast else 0)  # condition embeddings at every position
    low = "".join(sample(gen, "act=0", num=20, length=16, seed=0))
    high = "".join(sample(gen, "act=1", num=20, length=16, seed=0))
    assert low.count("A") > 2 * low.count("T") and high.count("T") > 2 * high.count("A")
    # guidance against the other class sharpens the condition: more A in the low class
    guided = "".join(sample(gen, "act=0", num=20, length=16, seed=0, guidance=3.0))
    assert guided.count("A") / len(guided) > low.count("A") / len(low) + 0.05


def test_guided_generate_weight_zero_is_plain_sampling():
    from generate.sampling import guided_generate

    model = tiny_generator()
    ids = [prompt_ids(model, f"expr={k}")[0] for k in (2, 0, 1, 3)]
    a = guided_generate(model, ids, 6, 12, 0.0, generator=torch.Generator().manual_seed(7), allowed=BASE_IDS)
    b = model.generate(torch.tensor([ids[0]] * 6), 12, generator=torch.Generator().manual_seed(7),
                       allowed_token_ids=BASE_IDS)
    assert torch.equal(a, b)
    with pytest.raises(DnalmError, match="guidance"):
        sample(model, "expr=1", num=2, length=5, beam_size=2, guidance=1.0)
    with pytest.raises(DnalmError, match="must be >= 0"):
        sample(model, "expr=1", num=2, length=5, guidance=-1.0)


def test_early_stopping_restores_best_weights(tmp_path):
    """Random sequences: the model can only memorise, so validation loss rises and training stops early."""
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 24)) for _ in range(60)]
    vals = rng.random((60, 1))
    torch.manual_seed(0)
    model = dnalm.build_model("transformer-tiny", d_model=64, n_layer=2, max_length=64)
    cfg = GeneratorTrainConfig(n_bins=2, max_steps=400, eval_every=10, patience=2, lr=1e-2, warmup_steps=1,
                               batch_size=16, val_fraction=0.25, progress=False)
    rep = finetune_generator(model, seqs, vals, ["v"], tmp_path / "g", cfg)
    assert rep["stopped_early"] and rep["steps"] < 400 and rep["best_step"] < rep["steps"]
    log = (tmp_path / "g" / "training_log.tsv").read_text().splitlines()[1:]
    val = [float(line.split("\t")[2]) for line in log]
    assert min(val) == pytest.approx(rep["best_val_loss"], abs=1e-4) and val[-1] > min(val)
    # the saved weights are the best ones: recomputing the validation loss gives the best value
    from generate.data import split_indices
    from generate.training import per_sequence_loss

    gen = load_generator(tmp_path / "g")
    _, val_idx = split_indices(60, [0.25], seed=0)
    spec = gen.conditioning
    toks = np.array([[gen.tokenizer.vocab[spec.properties[0].token(k)]] for k in spec.bins(vals[val_idx])[:, 0]])
    ids, labels = encode_examples(gen.tokenizer, [seqs[i] for i in val_idx], toks)
    with torch.no_grad():
        s, n = per_sequence_loss(gen, ids, labels)
    assert float(s.sum() / n.sum()) == pytest.approx(rep["best_val_loss"], rel=1e-4)


def test_sample_hands_batches_to_a_writer_and_keeps_none():
    """With ``on_batch`` the sequences go out batch by batch (memory flat in --num) and are the same ones."""
    from dnalm.models import build_model
    from generate.sampling import sample

    torch.manual_seed(0)
    model = build_model("transformer-tiny", d_model=16, n_layer=1, attention={"n_heads": 2}).eval()
    batches = []
    kept = sample(model, None, num=10, length=12, batch_size=3, seed=4, on_batch=batches.append)
    assert kept == [] and sum(len(b) for b in batches) == 10
    assert all(1 <= len(b) <= 3 for b in batches)
    assert [s for b in batches for s in b] == sample(model, None, num=10, length=12, batch_size=3, seed=4)

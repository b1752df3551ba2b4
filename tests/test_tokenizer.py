"""DNATokenizer: fixed ids, round trips, reverse complement, batching, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dnalm.errors import InputError
from dnalm.tokenizer import DNATokenizer, reverse_complement

tok = DNATokenizer()
acgtn = st.text(alphabet="ACGTN", max_size=300)


def test_hyenadna_ids():
    assert tok.vocab == {
        "[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6,
        "A": 7, "C": 8, "G": 9, "T": 10, "N": 11,
    }
    assert tok.encode("ACGTN", add_special_tokens=True) == [2, 7, 8, 9, 10, 11, 1]


@given(acgtn)
def test_encode_decode_round_trip(seq):
    assert tok.decode(tok.encode(seq)) == seq
    assert tok.decode(tok.encode(seq, add_special_tokens=True)) == seq


@given(st.text(alphabet="ACGTNacgtnRYSWKMBDHVryswkmbdhv", max_size=200))
def test_reverse_complement_twice_is_identity(seq):
    assert reverse_complement(reverse_complement(seq)) == seq
    assert len(reverse_complement(seq)) == len(seq)


@given(acgtn)
def test_rc_of_ids_matches_rc_of_string(seq):
    ids = torch.tensor(tok.encode(seq), dtype=torch.long)
    assert tok.decode(tok.reverse_complement(ids)) == reverse_complement(seq)


def test_normalisation():
    assert tok.decode(tok.encode("acgtu")) == "ACGTT"
    assert tok.decode(tok.encode("RYKMSWBDHVN")) == "N" * 11
    # N stays N under reverse complement
    assert reverse_complement("ANC") == "GNT"


def test_invalid_character_names_it_and_its_position():
    with pytest.raises(InputError, match=r"'X' at position 3"):
        tok.encode("ACGXT")
    with pytest.raises(InputError, match=r"'-' at position 0"):
        tok.encode("-ACG")
    assert tok.encode("ACGXT", lenient=True) == [7, 8, 9, 6, 10]
    assert DNATokenizer(lenient=True).encode("A.") == [7, 6]


def test_batch_encode_pads_and_masks():
    out = tok.batch_encode(["ACG", "A", "ACGTAC"], add_special_tokens=True)
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == (3, 8) and ids.dtype == torch.long
    assert mask.sum(1).tolist() == [5, 3, 8]
    for row, m, s in zip(ids, mask, ["ACG", "A", "ACGTAC"]):
        n = int(m.sum())
        assert row[:n].tolist() == tok.encode(s, add_special_tokens=True)
        assert (row[n:] == tok.pad_token_id).all() and (m[n:] == 0).all()
    out = tok.batch_encode(["ACGTACGT"], max_length=6, truncation=True, add_special_tokens=True)
    assert out["input_ids"][0].tolist() == [2, 7, 8, 9, 10, 1]
    with pytest.raises(InputError, match="max_length"):
        tok.batch_encode(["ACGTACGT"], max_length=6)
    out = tok.batch_encode(["AC"], max_length=6, padding="max_length", add_special_tokens=False)
    assert out["input_ids"][0].tolist() == [7, 8, 4, 4, 4, 4]
    with pytest.raises(InputError, match="sequence 1"):
        tok.batch_encode(["ACG", "AZ"])


def test_rc_with_padding_and_specials():
    out = tok.batch_encode(["AAC", "GT"], add_special_tokens=False)
    rc = tok.reverse_complement(out["input_ids"], out["attention_mask"])
    assert tok.decode(rc[0]) == "GTT" and tok.decode(rc[1]) == "AC"
    assert rc[1, 2].item() == tok.pad_token_id
    ids = torch.tensor([2, 7, 11, 8, 1])
    assert tok.reverse_complement(ids).tolist() == [1, 9, 11, 10, 2]


def test_condition_tokens_save_load(tmp_path):
    t = DNATokenizer()
    ids = t.add_condition_tokens(["<expr=0>", "<expr=1>"])
    assert ids == [12, 13] and len(t) == 14
    assert t.add_condition_tokens(["<expr=1>", "<gc=2>"]) == [13, 14]
    with pytest.raises(InputError):
        t.add_condition_tokens(["A"])
    t.save(tmp_path / "tok.json")
    t2 = DNATokenizer.load(tmp_path / "tok.json")
    assert t2.vocab == t.vocab
    enc = t2.batch_encode(["AC"], prefix_ids=[13], add_special_tokens=True)["input_ids"][0].tolist()
    assert enc == [2, 13, 7, 8, 1]
    assert t2.decode(enc, skip_special_tokens=False) == "[BOS]<expr=1>AC[SEP]"
    # condition tokens are untouched by reverse complement
    assert t2.reverse_complement(torch.tensor([13, 7])).tolist() == [10, 13]


def test_encode_np_is_vectorised_and_matches_loop():
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTNacgt"), size=10_000))
    table = {c: i for c, i in zip("ACGTN", range(7, 12))}
    assert tok.encode_np(seq).tolist() == [table[c.upper()] for c in seq]

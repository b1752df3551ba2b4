"""The Hugging Face-style Python face: callable tokenizer, model(input_ids, attention_mask=...),
output_hidden_states, DNALM.from_pretrained; checked against the plain calls they wrap."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dnalm
from dnalm.models import DNALM, build_model, load_model
from dnalm.tokenizer import BOS_ID, PAD_ID, SEP_ID

tok = dnalm.DNATokenizer()
SEQS = ["ACGTTGCA", "GGA", "TTTACGTA"]


def test_tokenizer_call_is_batch_encode_with_one_special_token_default():
    enc = tok(SEQS, padding=True, return_tensors="pt")
    ref = tok.batch_encode(SEQS)
    assert set(enc) == {"input_ids", "attention_mask"}
    assert torch.equal(enc["input_ids"], ref["input_ids"]) and torch.equal(enc["attention_mask"], ref["attention_mask"])
    # one sequence and a batch, encode and batch_encode: the same default (bases only)
    one = tok("ACGT")
    assert one["input_ids"] == tok.encode("ACGT") == tok.batch_encode(["ACGT"])["input_ids"][0].tolist() == [7, 8, 9, 10]
    assert one["attention_mask"] == [1, 1, 1, 1]
    assert tok(["ACGT"])["input_ids"] == [[7, 8, 9, 10]]
    wrapped = tok("ACGT", add_special_tokens=True)["input_ids"]
    assert wrapped == [BOS_ID, 7, 8, 9, 10, SEP_ID] == tok.encode("ACGT", add_special_tokens=True)
    assert tok("ACGT", return_tensors="pt")["input_ids"].shape == (1, 4)


def test_tokenizer_call_padding_truncation_and_numpy():
    enc = tok(SEQS, padding=True, return_tensors="np", add_special_tokens=True)
    assert isinstance(enc["input_ids"], np.ndarray) and enc["input_ids"].shape == (3, 10)
    assert enc["attention_mask"].sum(1).tolist() == [10, 5, 10]
    assert (enc["input_ids"][1, 5:] == PAD_ID).all()
    rows = tok(SEQS)["input_ids"]  # no padding: ragged lists
    assert [len(r) for r in rows] == [8, 3, 8]
    cut = tok("ACGTACGT", truncation=True, max_length=4, add_special_tokens=True)["input_ids"]
    assert cut == [BOS_ID, 7, 8, SEP_ID]
    with pytest.raises(dnalm.InputError, match="max_length"):
        tok("ACGTACGT", max_length=4)
    with pytest.raises(dnalm.InputError, match="sequence 1"):
        tok(["ACGT", "AZ"])
    assert "attention_mask" not in tok("AC", return_attention_mask=False)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("hybridna-tiny", d_model=32, n_layer=3, attn_layer_idx=[1], d_intermediate=64,
                       mamba2={"d_state": 8, "headdim": 16, "chunk_size": 4},
                       attention={"n_heads": 2, "n_kv_heads": 2}).eval()


def test_model_call_with_attention_mask_matches_each_row_alone(model):
    enc = tok(SEQS, padding=True, return_tensors="pt", add_special_tokens=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=ids)
        for i, s in enumerate(SEQS):
            row = torch.tensor([tok.encode(s, add_special_tokens=True)])
            alone = model(row).logits[0]
            n = row.shape[1]
            torch.testing.assert_close(out.logits[i, :n], alone, rtol=1e-4, atol=1e-4)
    # loss: next-token cross-entropy over real positions only (independent re-computation)
    logp = F.log_softmax(out.logits[:, :-1].double(), -1)
    tgt = ids[:, 1:]
    keep = mask[:, 1:].bool()
    nll = -logp.gather(-1, tgt[..., None])[..., 0][keep]
    torch.testing.assert_close(out.loss.double(), nll.mean(), rtol=1e-5, atol=1e-6)


def test_attention_mask_refuses_left_padding_and_shape_mismatch(model):
    ids = torch.tensor([[PAD_ID, 7, 8], [7, 8, 9]])
    with pytest.raises(ValueError, match="right padding"):
        model(ids, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="does not match"):
        model(ids, attention_mask=torch.ones(2, 2))


def test_output_hidden_states_gives_every_layer(model):
    ids = tok(SEQS[:1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        hs = out.hidden_states
        assert isinstance(hs, tuple) and len(hs) == model.config.n_layer + 1
        # independent re-computation through the modules
        h = model.backbone.embeddings(ids)
        torch.testing.assert_close(hs[0], h)
        for i, layer in enumerate(model.backbone.layers):
            h = layer(h, None)
            if i + 1 < model.config.n_layer:
                torch.testing.assert_close(hs[i + 1], h)
        torch.testing.assert_close(hs[-1], model.backbone.final_norm(h))
        torch.testing.assert_close(hs[-1], model(ids, return_hidden=True).hidden_states)
        torch.testing.assert_close(out.logits, model(ids).logits)
    assert model(ids).hidden_states is None


def test_from_pretrained_folder_and_preset(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    again = DNALM.from_pretrained(tmp_path / "m")
    ids = tok("ACGTAC", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits)
    assert isinstance(again.tokenizer, dnalm.DNATokenizer)
    fresh = DNALM.from_pretrained("transformer-tiny")
    assert fresh.config.mixer == "attention" and not fresh.training
    assert load_model("transformer-tiny").config == fresh.config
    with pytest.raises(dnalm.InputError, match="not a preset"):
        DNALM.from_pretrained(tmp_path / "nothing")

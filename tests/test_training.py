"""The one training core (dnalm.training): no-decay rule, optimiser hints, schedule, next-token loss, and that the
three trainers (pretraining, fine-tuning, generator fine-tuning) build the same groups from it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import dnalm
from dnalm.training import (
    WarmupCosine,
    lr_lambda,
    next_token_loss,
    no_weight_decay,
    parameter_groups,
)

HYBRID = {"d_model": 32, "n_layer": 2, "attn_layer_idx": [1], "d_intermediate": 64,
              "mamba2": {"d_state": 8, "headdim": 16, "chunk_size": 16}, "attention": {"n_heads": 2, "n_kv_heads": 2}}
HYENA = {"d_model": 32, "n_layer": 1, "d_intermediate": 64}

# written out by hand (not derived from the rule): the weight matrices that must decay
DECAYED = {
    "hybridna-tiny": {
        "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.0.mixer.conv1d.weight",
        "backbone.layers.0.mixer.out_proj.weight", "backbone.layers.0.mlp.fc1.weight", "backbone.layers.0.mlp.fc2.weight",
        "backbone.layers.1.mixer.in_proj.weight", "backbone.layers.1.mixer.out_proj.weight",
        "backbone.layers.1.mlp.fc1.weight", "backbone.layers.1.mlp.fc2.weight",
    },
    "hyenadna-tiny": {
        "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.0.mixer.out_proj.weight",
        "backbone.layers.0.mixer.short_filter.weight", "backbone.layers.0.mlp.fc1.weight",
        "backbone.layers.0.mlp.fc2.weight",
    },
}


def _model(preset: str, **extra):
    torch.manual_seed(0)
    return dnalm.build_model(preset, **(HYBRID if preset == "hybridna-tiny" else HYENA), **extra)


def _split(param_groups, model) -> tuple[set, set, list]:
    """(decayed names, not-decayed names, [(names, lr, wd)] of every group) of a model's parameters."""
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, rest, groups = set(), set(), []
    for g in param_groups:
        mine = {names[id(p)] for p in g["params"] if id(p) in names}
        (decayed if g["weight_decay"] > 0 else rest).update(mine)
        groups.append((mine, g["initial_lr"], g["weight_decay"]))  # lr before the schedule
    return decayed, rest, groups


def _trainer_groups(model, which: str, lr: float = 1e-3, weight_decay: float = 0.1):
    """The optimiser param_groups that trainer ``which`` builds for ``model``."""
    if which == "pretrain":
        from dnalm.pretrain.config import OptimSection, PretrainConfig, Stage
        from dnalm.pretrain.module import PretrainModule

        cfg = PretrainConfig(stages=[Stage(steps=10, length=32, batch_size=2)],
                             optim=OptimSection(lr=lr, weight_decay=weight_decay))
        opt = PretrainModule(cfg, model).configure_optimizers()["optimizer"]
    elif which == "finetune":
        from finetune.heads import HeadConfig, SequenceModel
        from finetune.lightning import FinetuneConfig, FinetuneModule

        seq = SequenceModel(model, HeadConfig(kind="binary", hidden=8))
        cfg = FinetuneConfig(lr_backbone=lr, lr_head=10 * lr, weight_decay=weight_decay)
        opt = FinetuneModule(seq, cfg, "mcc").configure_optimizers()["optimizer"]
        head = {id(p) for p in seq.head.parameters()}
        head_groups = [g for g in opt.param_groups if any(id(p) in head for p in g["params"])]
        assert all(g["initial_lr"] == 10 * lr for g in head_groups)  # the head keeps its own learning rate
        assert {g["weight_decay"] for g in head_groups} == {weight_decay, 0.0}  # head weights decay, biases not
    else:
        from generate.conditioning import ConditionSpec
        from generate.training import GeneratorTrainConfig, _lightning_module

        spec, _ = ConditionSpec.fit(torch.arange(20.0).numpy()[:, None], ["gc"], 2)
        cfg = GeneratorTrainConfig(lr=lr, weight_decay=weight_decay)
        opt = _lightning_module()(model, spec, cfg).configure_optimizers()["optimizer"]
    return opt.param_groups


@pytest.mark.parametrize("preset", ["hybridna-tiny", "hyenadna-tiny"])
def test_three_trainers_put_the_same_parameters_in_the_no_decay_group(preset):
    model = _model(preset)
    all_names = {n for n, _ in model.named_parameters()}
    seen = {}
    for which in ("pretrain", "finetune", "generator"):
        decayed, rest, _ = _split(_trainer_groups(model, which), model)
        assert decayed | rest == all_names and not decayed & rest, which
        seen[which] = rest
        assert decayed == DECAYED[preset], which
    assert seen["pretrain"] == seen["finetune"] == seen["generator"]
    must_not_decay = ("embeddings", "A_log", "dt_bias", ".D", "norm", "ln_f", "filter_fn.", "bias")
    for name in seen["pretrain"]:
        assert any(t in name for t in must_not_decay), name


def test_hyena_optimiser_hints_are_honoured_by_every_trainer():
    model = _model("hyenadna-tiny", hyena={"filter_lr": 5e-4, "filter_wd": 0.02, "lr_pos_emb": 1e-5,
                                           "modulation_lr": 2e-4})
    filt = {n for n, _ in model.named_parameters() if ".filter_fn.implicit_filter." in n}
    for which in ("pretrain", "finetune", "generator"):
        _, _, groups = _split(_trainer_groups(model, which), model)
        by_name = {n: (lr, wd) for names, lr, wd in groups for n in names}
        assert all(by_name[n] == (5e-4, 0.02) for n in filt), which
        assert by_name["backbone.layers.0.mixer.filter_fn.pos_emb.z"] == (1e-5, 0.02), which
        assert by_name["backbone.layers.0.mixer.filter_fn.modulation.deltas"] == (2e-4, 0.0), which
        assert by_name["backbone.layers.0.mixer.in_proj.weight"] == (1e-3, 0.1), which


def test_default_hyena_hints_add_no_group():
    groups = parameter_groups(_model("hyenadna-tiny"), 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_no_weight_decay_rule_on_names():
    w, b = torch.zeros(4, 4), torch.zeros(4)
    assert not no_weight_decay("layers.0.mixer.in_proj.weight", w)
    assert no_weight_decay("layers.0.mixer.in_proj.bias", b)
    assert no_weight_decay("embeddings.word_embeddings.weight", w)
    assert no_weight_decay("layers.0.mixer.filter_fn.implicit_filter.2.weight", w)
    assert no_weight_decay("mixer.A_log", w) and no_weight_decay("mixer.D", w) and no_weight_decay("mixer.dt_bias", w)
    p = torch.nn.Parameter(torch.zeros(3, 3))
    p._no_weight_decay = True
    assert no_weight_decay("x.weight", p)


def test_lr_schedule():
    w, total, lo = 10, 110, 0.1
    vals = [lr_lambda(s, w, total, lo) for s in range(total)]
    assert vals[:w] == pytest.approx([(s + 1) / w for s in range(w)])
    assert vals[w] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(vals[w:], vals[w + 1 :]))  # cosine decays monotonically
    assert lr_lambda(total, w, total, lo) == pytest.approx(lo)
    mid = w + (total - w) // 2
    assert vals[mid] == pytest.approx(lo + (1 - lo) * 0.5)
    assert WarmupCosine(0, 100, 0.0)(100) == pytest.approx(0.0)  # fine-tuning anneals to zero


def test_next_token_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 12)
    labels = torch.randint(7, 11, (2, 6))
    labels[0, 4:] = 4  # [PAD]
    labels[1, 2] = -100
    # direct: position t predicts t+1, skipping PAD and -100
    terms = [-torch.log_softmax(logits[b, t], -1)[labels[b, t + 1]]
             for b in range(2) for t in range(5) if labels[b, t + 1] not in (4, -100)]
    assert next_token_loss(logits, labels).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)
    assert next_token_loss(logits, labels, reduction="sum").item() == pytest.approx(torch.stack(terms).sum().item(),
                                                                                     rel=1e-6)
    per = next_token_loss(logits, labels, reduction="none")
    assert per.shape == (2, 5) and per[0, 3:].abs().sum() == 0
    # pre-shifted targets (pretraining's windows) give the same numbers
    assert next_token_loss(logits[:, :-1], labels[:, 1:], shift=False).item() == pytest.approx(
        next_token_loss(logits, labels).item())
    # the model's own loss is this one
    model = _model("hybridna-tiny").eval()
    ids = torch.randint(7, 11, (2, 16))
    out = model(ids, labels=ids)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), ids[:, 1:].reshape(-1))
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-6) and math.isfinite(out.loss.item())

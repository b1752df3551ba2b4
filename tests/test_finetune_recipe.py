"""The fine-tuning recipe on a small real task: a head on a frozen pretrained backbone reaches the logistic probe,
full fine-tuning does not fall below it, and evaluation does not depend on batch size or padding.

The backbone is pretrained for a few seconds on the demo yeast genome: that is enough for its mean-pooled states to
take the shape that made the old recipe collapse (a large common offset, a spread ~1% of it), so a raw linear head
trained for a few dozen steps learns nothing while a probe on standardised features does.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_task_and_backbone(demo_yeast_dir, tmp_path_factory):
    from data_prep.demo_tasks import derive_tasks
    from dnalm.models import load_model
    from dnalm.pretrain import load_config, pretrain
    from finetune.tasks import load_task

    out = tmp_path_factory.mktemp("recipe")
    fasta = demo_yeast_dir / "sacCer_R64.fa.gz"
    derive_tasks(fasta, demo_yeast_dir / "sacCer_R64.cds.bed", out / "tasks", promoter_length=200, max_promoters=300,
                 n_codons=10)
    torch.manual_seed(0)
    cfg = load_config(ROOT / "config" / "pretrain" / "tiny.yaml", [
        f"data.genomes.0.path={fasta}", "stages.0.steps=20", "stages.1.steps=20", "trainer.progress_bar=false",
        "trainer.val_every=1000", "trainer.checkpoint_every=1000"])
    pretrain(cfg, out / "pretrain")
    task = load_task(f"gue:{out / 'tasks' / 'promoters'}")
    return task, load_model(out / "pretrain" / "model")


# the recipe before the collapse was fixed: head dropout, a fixed standardisation, learning rates for a random head
OLD_RECIPE = dict(head_dropout=0.1, norm_momentum=0.0, lr_head=2e-3, lr_backbone=3e-4)


def _collapses(history: list[dict]) -> list[str]:
    """Dev evaluations after backbone steps that fell below the fitted head's (step 0): AUROC down by more than
    0.05 (the dev split has 46 rows) or mean loss up by more than half. (The step-0 head is a checkpoint candidate,
    so the best model's test metric cannot see a collapse; the history can.)"""
    start = history[0]
    assert start["step"] == 0 and start["dev_loss"] > 0
    return [f"step {h['step']}: dev AUROC {h['dev_auroc']:.3f}, loss {h['dev_loss']:.3f} (step 0: "
            f"{start['dev_auroc']:.3f}, {start['dev_loss']:.3f})" for h in history[1:]
            if h["dev_auroc"] < start["dev_auroc"] - 0.05 or h["dev_loss"] > 1.5 * start["dev_loss"]]


def _config(**kw):
    from finetune.lightning import FinetuneConfig

    base = dict(max_steps=40, val_every=10, patience=0, batch_size=32, eval_batch_size=64, warmup_steps=10,
                threads=1, progress_bar=False, save_model=False, seed=0)  # learning rates, dropout: the defaults
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.slow
def test_frozen_head_reaches_the_probe_and_full_finetuning_does_not_fall_below(small_task_and_backbone):
    from finetune.lightning import finetune
    from finetune.probes import embed_sequences, run_probe

    task, backbone = small_task_and_backbone
    X = embed_sequences(backbone, task.train.sequences[:64], "mean", progress=False)
    spread = X.std(0).mean() / np.abs(X.mean(0)).mean()
    assert spread < 0.05, f"premise: pooled states vary little between sequences (spread/offset {spread:.3f})"

    probe = run_probe(backbone, task, "mean", progress=False).test_metrics["auroc"]
    assert probe > 0.65, f"the probe should find the promoter signal (test AUROC {probe:.3f})"
    frozen = finetune(backbone, task, _config(freeze_backbone=True)).test_metrics["auroc"]
    run = finetune(backbone, task, _config())
    full = run.test_metrics["auroc"]
    assert frozen >= probe - 0.03, f"frozen head {frozen:.3f} vs probe {probe:.3f}"
    assert full >= probe - 0.03, f"full fine-tuning {full:.3f} vs probe {probe:.3f}"
    assert len(run.history) == 5 and not _collapses(run.history), _collapses(run.history)


@pytest.mark.slow
def test_the_collapse_check_catches_the_old_recipe(small_task_and_backbone):
    """The old recipe (measured: dev AUROC 0.69 -> 0.58 -> 0.50, loss 0.72 -> 5.8 -> 20.6 over 20 steps) fails the
    check above, so that check would have caught the collapse."""
    from finetune.lightning import finetune

    task, backbone = small_task_and_backbone
    run = finetune(backbone, task, _config(max_steps=20, **OLD_RECIPE))
    assert _collapses(run.history), run.history


def test_evaluation_is_invariant_to_batch_size_and_padding(small_task_and_backbone):
    from finetune.evaluate import predict_scores
    from finetune.head_init import init_head
    from finetune.heads import HeadConfig, SequenceModel
    from finetune.tasks import TaskSplit

    task, backbone = small_task_and_backbone
    for pooling in ("mean", "echo"):
        model = SequenceModel(backbone, HeadConfig(pooling=pooling))
        small = dataclasses.replace(task, train=task.train.take(np.arange(48)), dev=task.dev.take(np.arange(24)))
        init_head(model, small, steps=20)  # standardised features amplify any batch/padding dependence
        rows = np.arange(40)
        split = task.test.take(rows)
        one = predict_scores(model, split, batch_size=1, progress=False)
        many = predict_scores(model, split, batch_size=40, progress=False)
        # mixed lengths: the same sequences, some cut short, batched together (more padding per row)
        cut = [s if i % 2 else s[: len(s) // 2] for i, s in enumerate(split.sequences)]
        mixed_split = TaskSplit(cut, split.labels, split.meta)
        mixed = predict_scores(model, mixed_split, batch_size=40, progress=False)
        alone = np.array([predict_scores(model, TaskSplit([s], split.labels[:1], None), 1, False)[0] for s in cut[:6]])
        np.testing.assert_allclose(one, many, atol=1e-5)
        np.testing.assert_allclose(mixed[:6], alone, atol=1e-5)


def test_feature_statistics_are_saved_with_the_head_and_old_heads_load_as_identity(tmp_path):
    import json

    import dnalm
    from safetensors.torch import save_file

    from finetune.heads import HeadConfig, SequenceModel, feature_statistics

    torch.manual_seed(0)
    bb = dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, attention={"n_heads": 2, "rotary": True})
    model = SequenceModel(bb, HeadConfig())
    x = torch.randn(50, 32) * torch.linspace(1e-4, 1.0, 32) + 3.0
    mean, std = feature_statistics(x)
    np.testing.assert_allclose(mean.numpy(), x.double().mean(0).numpy(), rtol=1e-5)
    assert float(std.min()) >= 1e-3 * float(std.median()) * 0.999  # near-constant features are floored
    model.head.norm.set(mean, std)
    z = model.head.norm(x)
    np.testing.assert_allclose(z.mean(0).numpy(), 0, atol=1e-4)
    model.save_pretrained(tmp_path)
    again = SequenceModel.load(tmp_path)
    assert torch.equal(again.head.norm.mean, mean) and torch.equal(again.head.norm.std, std)
    # a head saved before FeatureNorm (format version 1: no norm tensors) loads with identity statistics
    save_file({k: v for k, v in model.head.state_dict().items() if k.startswith("net.")},
              str(tmp_path / "head.safetensors"))
    meta = json.loads((tmp_path / "head.json").read_text())
    (tmp_path / "head.json").write_text(json.dumps({**meta, "version": 1}))
    old = SequenceModel.load(tmp_path)
    assert torch.equal(old.head.norm.std, torch.ones(32)) and torch.equal(old.head.net[1].weight, model.head.net[1].weight)


def test_gc_baseline_sees_gc_and_nothing_else():
    from finetune.baselines import gc_baseline
    from finetune.tasks import Task, TaskSplit

    rng = np.random.default_rng(0)

    def split(n):
        # class 1: GC-rich, class 0: AT-rich
        seqs = ["".join(rng.choice(list("GCGCAT" if i % 2 else "ATATGC"), 60)) for i in range(n)]
        return TaskSplit(seqs, np.arange(n) % 2)

    task = Task("toy", "binary", 1, "mcc", split(80), split(40), split(40))
    assert gc_baseline(task).test_metrics["auroc"] > 0.95
    same_gc = [TaskSplit(["".join(rng.choice(list("ACGT"), 60)) for _ in range(n)], np.arange(n) % 2)
               for n in (80, 40, 40)]
    assert abs(gc_baseline(Task("toy", "binary", 1, "mcc", *same_gc)).test_metrics["auroc"] - 0.5) < 0.2


def test_embedding_memo_returns_the_same_features_and_misses_on_changed_weights():
    """The probe and the head initialisation share one embedding pass: a repeat call with the same frozen weights,
    pooling and sequences is served from the memo (equal to a fresh pass), and changed weights are a miss."""
    import torch

    from dnalm import build_model
    from finetune import probes

    torch.manual_seed(0)
    model = build_model("transformer-tiny", n_layer=1, d_model=32, d_intermediate=64)
    seqs = ["ACGTAC" * 5, "TTGACA" * 3, "GATTACA"]
    probes._EMBED_CACHE.clear()
    first = probes.embed_sequences(model, seqs, "mean", progress=False)
    assert len(probes._EMBED_CACHE) == 1
    first[0, 0] = 123.0  # the caller's copy: the memo is not changed through it
    again = probes.embed_sequences(model, seqs, "mean", progress=False)
    fresh = probes._embed_sequences(model, seqs, "mean", False, 64, False, np.float32)
    np.testing.assert_array_equal(again, fresh)
    assert len(probes._EMBED_CACHE) == 1
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    changed = probes.embed_sequences(model, seqs, "mean", progress=False)
    assert len(probes._EMBED_CACHE) == 2 and not np.allclose(changed, fresh)


def test_head_fit_reaches_the_penalised_logistic_optimum_of_scikit_learn():
    """The LP stage is a logistic probe: on cached features the head reaches scikit-learn's L2 logistic regression
    (same penalty: mean loss + wd * |w|^2  <=>  C = 1 / (2 wd N)), dropout off."""
    from sklearn.linear_model import LogisticRegression

    from dnalm import build_model
    from finetune.head_init import fit_head
    from finetune.heads import HeadConfig, SequenceModel

    rng = np.random.default_rng(0)
    n, d, wd = 300, 8, 1e-3
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + rng.normal(0, 1.5, n) > 0).astype(np.int64)
    backbone = build_model("transformer-tiny", n_layer=1, d_model=d, d_intermediate=16)
    model = SequenceModel(backbone, HeadConfig(kind="binary", num_outputs=1, dropout=0.5))
    fit_head(model, torch.from_numpy(X)[:, None, :], torch.from_numpy(y), wd, steps=500)
    with torch.no_grad():
        ours = model.head(torch.from_numpy(X)[:, None, :]).mean(1)[:, 0].numpy()
    ref = LogisticRegression(C=1 / (2 * wd * n), tol=1e-10, max_iter=10_000).fit(X, y).decision_function(X)
    np.testing.assert_allclose(ours, ref, atol=2e-3)

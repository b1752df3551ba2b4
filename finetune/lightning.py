"""Lightning fine-tuning: a LightningModule (steps, metrics, optimiser), a DataModule, and :func:`finetune`.

Full fine-tuning or a frozen backbone, separate head/backbone learning rates (AdamW, linear warm-up then
linear decay to ``max_steps``), evaluation on the dev split every ``val_every`` steps with early stopping
and a best-model checkpoint on the task metric (written as safetensors, never pickle), test evaluation of
the best model at the end, and ``save_pretrained`` of backbone + head.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from torch.utils.data import DataLoader

from dnalm.errors import InputError
from finetune.config import FinetuneConfig
from finetune.data import TaskDataset, collate_batch
from finetune.evaluate import evaluate, predictions_table
from finetune.heads import HeadConfig, SequenceModel, load_backbone
from finetune.metrics import compute_metrics, higher_is_better
from finetune.tasks import Task, load_task


# --------------------------------------------------------------------------------------------- Lightning
class TaskDataModule(L.LightningDataModule):
    """Train/dev loaders of a task (test is evaluated outside Lightning, with the best weights)."""

    def __init__(self, task: Task, config: FinetuneConfig, tokenizer=None):
        super().__init__()
        self.task = task
        self.config = config
        self.train_set = TaskDataset(task.train, task.kind, tokenizer, config.rc_augment, config.seed,
                                     source=f"{task.name} train")
        self.dev_set = TaskDataset(task.dev, task.kind, tokenizer, source=f"{task.name} dev")

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(self.train_set, batch_size=self.config.batch_size, shuffle=True, generator=g,
                          collate_fn=collate_batch, num_workers=self.config.num_workers, drop_last=False,
                          persistent_workers=self.config.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dev_set, batch_size=self.config.eval_batch_size, shuffle=False,
                          collate_fn=collate_batch, num_workers=self.config.num_workers)


class FinetuneModule(L.LightningModule):
    """Training/validation steps, dev metrics and the optimiser of a :class:`SequenceModel`."""

    def __init__(self, model: SequenceModel, config: FinetuneConfig, metric: str):
        super().__init__()
        self.model = model
        self.config = config
        self.metric = metric
        self.history: list[dict] = []
        self._val_scores: list[np.ndarray] = []
        self._val_labels: list[np.ndarray] = []
        self._val_loss: list[float] = []

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(ids, mask)

    def on_train_epoch_start(self) -> None:
        ds = self.trainer.datamodule.train_set if self.trainer.datamodule is not None else None
        if ds is not None:
            ds.set_epoch(self.current_epoch)
        if self.config.freeze_backbone:  # no dropout in a frozen backbone
            self.model.backbone.eval()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.model.loss(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        self._val_loss.append(float(self.model.loss(logits, batch["labels"])) * len(logits))
        scores = self.model.scores(logits).float().cpu().numpy()
        labels = batch["labels"].cpu().numpy()
        if self.model.per_token:  # pad to a common width so batches concatenate
            width = self.trainer.datamodule.dev_set.labels.shape[1]
            s = np.zeros((len(scores), width, scores.shape[-1]), np.float32)
            s[:, : scores.shape[1]] = scores
            lab = np.full((len(labels), width), -100, np.int64)
            lab[:, : labels.shape[1]] = labels
            scores, labels = s, lab
        self._val_scores.append(scores)
        self._val_labels.append(labels)

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = np.concatenate(self._val_scores)
        labels = np.concatenate(self._val_labels)
        metrics = compute_metrics(self.model.config.kind, labels, scores)
        metrics["loss"] = sum(self._val_loss) / len(labels)
        self._val_scores, self._val_labels, self._val_loss = [], [], []
        value = metrics[self.metric]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = -1e9 if higher_is_better(self.metric) else 1e9  # an undefined metric never looks best
        self.log(f"val/{self.metric}", float(value), prog_bar=True)
        self.log("val/loss", float(metrics["loss"]))
        if not self.trainer.sanity_checking:
            self.history.append({"step": int(self.global_step), **{f"dev_{k}": v for k, v in metrics.items()}})

    def configure_optimizers(self):
        from dnalm.training import make_optimizer, make_scheduler, parameter_groups

        cfg = self.config
        groups = (parameter_groups(self.model.head, cfg.weight_decay, lr=cfg.lr_head, prefix="head.")
                  + parameter_groups(self.model.backbone, cfg.weight_decay, lr=cfg.lr_backbone, prefix="backbone."))
        opt = make_optimizer(groups, lr=cfg.lr_backbone, betas=(0.9, 0.98), eps=1e-8)
        sched = make_scheduler(opt, cfg.warmup_steps, cfg.max_steps, min_lr_ratio=0.0)
        return {"optimizer": opt, "lr_scheduler": sched}


class SafetensorsCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes the model weights as safetensors (no pickled Lightning checkpoint)."""

    FILE_EXTENSION = ".safetensors"

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        from safetensors.torch import save_model

        from dnalm.utils import atomic_path

        with atomic_path(filepath) as tmp:
            save_model(trainer.lightning_module.model, str(tmp))
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


# --------------------------------------------------------------------------------------------- entry point
@dataclass
class FinetuneResult:
    """What a fine-tuning run produced."""

    model: SequenceModel
    test_metrics: dict  # on the test split, best dev checkpoint
    dev_metrics: dict  # on the dev split, best dev checkpoint
    best_step: int  # optimiser step of the best dev evaluation
    steps: int  # optimiser steps taken
    seconds: float  # wall time of training + evaluation
    history: list[dict]  # dev metrics of every evaluation
    task: Task  # the task as used (after subsampling)
    out_dir: Path | None = None


def make_model(backbone, task: Task, config: FinetuneConfig) -> SequenceModel:
    """A :class:`SequenceModel` for ``task`` on ``backbone`` (a DNALM, or a SequenceModel whose backbone
    is reused with a fresh head). Regression heads standardise targets with the train split's mean/std."""
    if isinstance(backbone, SequenceModel):
        backbone = backbone.backbone
    mean, std = [], []
    if task.kind == "regression":
        y = np.asarray(task.train.labels, dtype=np.float64).reshape(len(task.train), -1)
        mean = y.mean(0).tolist()
        std = [float(s) if s > 0 else 1.0 for s in y.std(0)]
    head = HeadConfig(
        kind=task.kind, num_outputs=task.num_outputs, pooling=config.pooling, hidden=config.head_hidden,
        dropout=config.head_dropout, strand_average=config.strand_average, target_mean=mean, target_std=std,
        classes=[c if isinstance(c, (int, float, str)) else str(c) for c in task.classes], task=task.name,
        metric=task.metric,
    )
    return SequenceModel(backbone, head)


def set_scan_chunk_size(backbone, chunk_size: int) -> int:
    """``backbone.set_scan_chunk_size(chunk_size)`` (see :meth:`dnalm.models.lm.DNALM.set_scan_chunk_size`)."""
    return backbone.set_scan_chunk_size(chunk_size)


def check_length(model: SequenceModel, task: Task) -> None:
    """Raise a clear error when the longest sequence (with its echo copy) exceeds the model's maximum length."""
    longest = max(max((len(s) for s in task.split(sp).sequences), default=0) for sp in ("train", "dev", "test"))
    tokens = 2 * longest + 3 if model.config.pooling in ("echo", "rc_echo") else longest + 2
    limit = model.backbone.config.max_length
    if tokens > limit:
        raise InputError(f"task {task.name}: the longest sequence ({longest:,} bp) needs {tokens:,} tokens with "
                         f"pooling {model.config.pooling}, more than the model's maximum length {limit:,}")


def finetune(model, task: Task | str, config: FinetuneConfig | None = None, out_dir: str | os.PathLike | None = None) -> FinetuneResult:
    """Fine-tune ``model`` on ``task``, pick the best dev checkpoint, evaluate it on test and save it.

    Args:
        model: a model directory (``save_pretrained``), a preset name (random init), a DNALM or a SequenceModel.
        task: a :class:`Task` or a TASK SPEC.
        config: :class:`FinetuneConfig`.
        out_dir: where ``metrics.json``, ``history.csv``, ``test_predictions.csv``, ``skipped.csv`` and
            ``model/`` are written (None: nothing is written).

    Returns:
        :class:`FinetuneResult`.
    """
    config = config or FinetuneConfig()
    t0 = time.time()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    task = load_task(task) if not isinstance(task, Task) else task
    task.check_learnable()
    task = task.subsample({"train": config.max_train, "dev": config.max_dev, "test": config.max_test}, config.seed)
    L.seed_everything(config.seed, workers=True, verbose=False)
    seq_model = make_model(load_backbone(model), task, config)
    if config.scan_chunk_size:
        seq_model.backbone.set_scan_chunk_size(config.scan_chunk_size)
    check_length(seq_model, task)
    init_state, init_value = None, float("nan")
    if config.head_init:
        from finetune.head_init import init_head

        seq_model.eval()
        init = init_head(seq_model, task, steps=config.head_init_steps, batch_size=config.eval_batch_size,
                         seed=config.seed, progress=config.progress_bar)
        init_value = float(init.dev_metrics.get(task.metric, float("nan")))
        init_state = {k: v.detach().clone() for k, v in seq_model.state_dict().items()}
        print(f"head initialised on frozen features: dev {task.metric} {init_value:.4f} (L2 {init.weight_decay:g}, "
              f"{init.seconds:.0f} s)", flush=True)
    seq_model.set_backbone_trainable(not config.freeze_backbone)
    if config.head_init and not config.freeze_backbone:  # the standardisation follows the backbone as it moves
        seq_model.head.norm.momentum = config.norm_momentum
    seq_model.train()  # load_model returns the backbone in eval mode
    module = FinetuneModule(seq_model, config, task.metric)
    data = TaskDataModule(task, config, seq_model.tokenizer)
    out = Path(out_dir) if out_dir is not None else None
    import shutil
    import tempfile

    ckpt_root = Path(tempfile.mkdtemp(prefix="dnalm-finetune-"))  # best weights only; removed at the end
    mode = "max" if higher_is_better(task.metric) else "min"
    monitor = f"val/{task.metric}"
    ckpt = SafetensorsCheckpoint(dirpath=str(ckpt_root), filename="best", monitor=monitor, mode=mode, save_top_k=1,
                                 save_last=False, auto_insert_metric_name=False)
    callbacks = [ckpt]
    if config.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=config.patience, check_finite=False))
    if config.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    val_every = min(config.val_every, config.max_steps)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    from dnalm.pretrain.outputs import lightning_loggers  # the one logger set-up (pretraining uses it too)

    trainer = L.Trainer(
        max_steps=config.max_steps, max_epochs=-1, val_check_interval=val_every, check_val_every_n_epoch=None,
        callbacks=callbacks, logger=lightning_loggers(out) if out is not None else False, enable_checkpointing=True, enable_progress_bar=config.progress_bar,
        enable_model_summary=False, num_sanity_val_steps=0, gradient_clip_val=config.grad_clip or None,
        accelerator=config.accelerator, devices=1, precision=config.precision, deterministic=False,
        default_root_dir=str(ckpt_root),
    )
    trainer.fit(module, datamodule=data)
    steps = int(trainer.global_step)
    # the last steps since the previous evaluation are not evaluated; the best checkpoint is what counts
    best_path = ckpt.best_model_path
    if best_path and Path(best_path).exists():
        from safetensors.torch import load_model as st_load

        st_load(seq_model, best_path)
    best_step = _best_step(module.history, task.metric, steps)
    # the initialised head (step 0) is a candidate too: training that only lowers dev is not kept
    tuned = [float(h[f"dev_{task.metric}"]) for h in module.history if h["step"] == best_step]
    sign = 1 if higher_is_better(task.metric) else -1
    if init_state is not None and not math.isnan(init_value) and (
            not tuned or math.isnan(tuned[0]) or sign * init_value > sign * tuned[0]):
        seq_model.load_state_dict(init_state)
        best_step = 0
    if init_state is not None:
        module.history.insert(0, {"step": 0, **{f"dev_{k}": v for k, v in init.dev_metrics.items()}})
    shutil.rmtree(ckpt_root, ignore_errors=True)
    seq_model.head.norm.momentum = 0.0  # the returned (and saved) model standardises with its stored statistics
    seq_model.eval()
    dev_metrics, _ = evaluate(seq_model, task.dev, config.eval_batch_size, config.progress_bar, "dev")
    test_metrics, test_scores = evaluate(seq_model, task.test, config.eval_batch_size, config.progress_bar, "test")
    seconds = time.time() - t0
    result = FinetuneResult(seq_model, test_metrics, dev_metrics, int(best_step), steps, seconds, module.history,
                            task, out)
    if out is not None:
        write_outputs(result, config, test_scores)
    return result


def _best_step(history: list[dict], metric: str, default: int) -> int:
    """Step of the first best dev evaluation (the one ModelCheckpoint kept)."""
    values = [(h[f"dev_{metric}"], h["step"]) for h in history if not math.isnan(float(h[f"dev_{metric}"]))]
    if not values:
        return default
    sign = 1 if higher_is_better(metric) else -1
    best = max(sign * v for v, _ in values)
    return next(s for v, s in values if sign * v == best)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_outputs(result: FinetuneResult, config: FinetuneConfig, test_scores: np.ndarray) -> None:
    """``metrics.json``, ``history.csv``, ``test_predictions.csv``, ``skipped.csv`` and ``model/``."""
    from dnalm.utils import atomic_write

    out = result.out_dir
    task = result.task
    if config.save_model:
        result.model.save_pretrained(out / "model")
    summary = {
        "task": task.name,
        "source": task.source,
        "kind": task.kind,
        "metric": task.metric,
        "test": result.test_metrics,
        "dev": result.dev_metrics,
        "best_step": result.best_step,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "rows": task.sizes(),
        "notes": task.notes,
        "skipped": len(task.skipped),
        "skipped_examples": task.skipped.head(10).to_dict("records"),
        "config": dataclasses.asdict(config),
        "model": str(out / "model") if config.save_model else None,
    }
    with atomic_write(out / "metrics.json") as fh:
        json.dump(_jsonable(summary), fh, indent=2)
    with atomic_write(out / "history.csv") as fh:
        pd.DataFrame(result.history).to_csv(fh, index=False)
    with atomic_write(out / "test_predictions.csv") as fh:
        predictions_table(task.test, test_scores, task.kind, task.classes).to_csv(fh, index=False)
    if len(task.skipped):
        with atomic_write(out / "skipped.csv") as fh:
            task.skipped.to_csv(fh, index=False)

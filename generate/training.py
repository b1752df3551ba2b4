"""Fine-tune a DNA LM into a conditional generator: ``[BOS] <cond tokens> sequence [EOS]``, loss on sequence only.

The ``nn.Module`` stays free of Lightning; :class:`GeneratorModule` holds the steps, the per-condition validation
metrics and the optimiser; :func:`finetune_generator` wires data, split, early stopping and saving.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dnalm.errors import ConfigError, DnalmError
from generate.conditioning import ConditionSpec, add_condition_tokens, format_condition, save_generator


@dataclass
class GeneratorTrainConfig:
    """Settings of :func:`finetune_generator` (loaded strictly by :func:`dnalm.config.load_config`)."""

    n_bins: int = 5  # classes per property (quantile bins)
    edges: dict[str, list[float]] = field(default_factory=dict)  # property -> given inner edges (overrides bins)
    val_fraction: float = 0.1  # held-out validation rows
    max_steps: int = 1000  # optimiser steps (upper bound; early stopping may end sooner)
    batch_size: int = 32  # sequences per step
    lr: float = 1e-3  # peak learning rate (AdamW); the 1.6M-parameter demo model needed 2e-3 and ~1000 steps on yeast
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_steps: int = 50  # linear warm-up, then cosine decay to 10 % of lr
    eval_every: int = 100  # steps between validations
    patience: int = 3  # validations without improvement before stopping
    seed: int = 0  # split, shuffling and initialisation of new embeddings
    max_val_rows: int = 2000  # cap on validation rows (CPU budget)
    broadcast: bool = True  # add the condition embeddings at every position (LMConfig.condition_min_id), not only as a prefix
    progress: bool = True  # show Lightning's progress bar
    log_validation: bool = False  # print one line per validation (for logs without a progress bar)

    def __post_init__(self):
        for name in ("n_bins", "max_steps", "batch_size", "eval_every", "max_val_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction: {self.val_fraction}; early stopping needs a validation split in (0, 1)")
        for name in ("lr", "weight_decay", "warmup_steps", "patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")


def encode_examples(tokenizer, sequences: Sequence[str], prefixes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[BOS] cond seq [EOS]`` (right padded) and labels with [BOS]/condition positions set to -100.

    Args:
        tokenizer: the generator's tokenizer (condition tokens registered).
        sequences: N DNA strings.
        prefixes: (N, P) condition-token ids per row.

    Returns:
        ``input_ids`` (N, L) and ``labels`` (N, L); [PAD] positions are ignored by the model's loss.
    """
    from dnalm.tokenizer import BOS_ID, PAD_ID, SEP_ID

    n_cond = prefixes.shape[1]
    lengths = [len(s) for s in sequences]
    width = 1 + n_cond + max(lengths) + 1
    ids = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for i, s in enumerate(sequences):
        body = tokenizer.encode_np(s)
        ids[i, 0] = BOS_ID
        ids[i, 1 : 1 + n_cond] = prefixes[i]
        ids[i, 1 + n_cond : 1 + n_cond + len(body)] = body
        ids[i, 1 + n_cond + len(body)] = SEP_ID
    labels = ids.copy()
    labels[:, : 1 + n_cond] = -100  # no loss on [BOS] and condition tokens
    return torch.from_numpy(ids), torch.from_numpy(labels)


def per_sequence_loss(model, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy (nats) and target count per row.

    Returns:
        ``(loss_sum (B,), n_tokens (B,))``.
    """
    from dnalm.training import IGNORE_INDEX, next_token_loss, next_token_targets

    logits = model(input_ids).logits  # (B, L, V)
    ce = next_token_loss(logits, labels, reduction="none")  # (B, L-1), 0 where not scored
    valid = next_token_targets(labels) != IGNORE_INDEX
    return ce.sum(1), valid.sum(1)


def _lightning_module():
    import lightning as L

    class GeneratorModule(L.LightningModule):
        """Steps, per-condition validation loss and optimiser of generator fine-tuning."""

        def __init__(self, model, spec: ConditionSpec, cfg: GeneratorTrainConfig):
            super().__init__()
            self.model = model
            self.spec = spec
            self.cfg = cfg
            self.best_loss = math.inf
            self.best_state = None
            self.best_step = 0
            self.best_table: list[dict] = []
            self.history: list[dict] = []
            self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
            self._train_losses: list[float] = []

        def training_step(self, batch, batch_idx):
            ids, labels, _ = batch
            loss = self.model(ids, labels=labels).loss
            self._train_losses.append(float(loss.detach()))
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(ids))
            return loss

        def validation_step(self, batch, batch_idx):
            ids, labels, bins = batch
            s, n = per_sequence_loss(self.model, ids, labels)
            self._val.append((s.detach().cpu(), n.detach().cpu(), bins.cpu()))

        def on_validation_epoch_end(self):
            if not self._val:
                return
            s = torch.cat([v[0] for v in self._val]).double()
            n = torch.cat([v[1] for v in self._val]).double()
            bins = torch.cat([v[2] for v in self._val]).numpy()
            self._val.clear()
            val_loss = float(s.sum() / n.sum())
            self.log("val_loss", val_loss, prog_bar=True, batch_size=len(n))
            table = validation_table(s.numpy(), n.numpy(), bins, self.spec)
            train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
            self._train_losses.clear()
            self.history.append({"step": int(self.global_step), "train_loss": train_loss, "val_loss": val_loss})
            if self.cfg.log_validation:
                print(f"step {int(self.global_step)}: train loss {train_loss:.4f}  validation loss {val_loss:.4f}", flush=True)
            if val_loss < self.best_loss:
                self.best_loss, self.best_step, self.best_table = val_loss, int(self.global_step), table
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

        def configure_optimizers(self):
            from dnalm.training import make_optimizer, make_scheduler, parameter_groups

            cfg = self.cfg
            opt = make_optimizer(parameter_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
            sched = make_scheduler(opt, cfg.warmup_steps, cfg.max_steps, min_lr_ratio=0.1)
            return {"optimizer": opt, "lr_scheduler": sched}

    return GeneratorModule


def validation_table(loss_sum: np.ndarray, n_tokens: np.ndarray, bins: np.ndarray, spec: ConditionSpec) -> list[dict]:
    """Validation loss per full condition and per class of each property (token-weighted means, nats).

    Args:
        loss_sum: (N,) summed loss per validation row.
        n_tokens: (N,) target tokens per row.
        bins: (N, P) classes per row.
        spec: the conditioning spec.

    Returns:
        Rows ``{"condition", "n_sequences", "loss", "perplexity"}``; ``condition`` is ``"all"``, ``"A=k"`` or
        ``"A=k,B=j"``.
    """
    rows = []

    def add(name, mask):
        if mask.sum() == 0:
            rows.append({"condition": name, "n_sequences": 0, "loss": float("nan"), "perplexity": float("nan")})
            return
        loss = float(loss_sum[mask].sum() / n_tokens[mask].sum())
        rows.append({"condition": name, "n_sequences": int(mask.sum()), "loss": loss, "perplexity": math.exp(loss)})

    add("all", np.ones(len(loss_sum), dtype=bool))
    for j, p in enumerate(spec.properties):
        for k in range(p.n_bins):
            add(f"{p.name}={k}", bins[:, j] == k)
    if len(spec.properties) > 1:
        for cond in spec.all_conditions():
            mask = np.all(bins == np.array([cond[n] for n in spec.names]), axis=1)
            add(format_condition(cond), mask)
    return rows


class _quiet_lightning:
    """Silence Lightning's informational banner (accelerator, tips) and its internal deprecation warnings."""

    def __enter__(self):
        import logging
        import warnings

        self._loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.WARNING)
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*litlogger.*")
        return self

    def __exit__(self, *exc):
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
        self._warn.__exit__(*exc)
        return False


def finetune_generator(
    model,
    sequences: Sequence[str],
    values: np.ndarray,
    property_names: Sequence[str],
    out_dir: str | os.PathLike,
    config: GeneratorTrainConfig | None = None,
    extra_report: Mapping | None = None,
) -> dict:
    """Fine-tune ``model`` on sequences labelled with binned properties and save the generator to ``out_dir``.

    Args:
        model: a :class:`dnalm.models.DNALM` (pretrained or fresh); condition tokens are added to it.
        sequences: N training sequences.
        values: (N, P) property values.
        property_names: P names (become ``<name=k>`` tokens).
        out_dir: model directory to write (weights, tokenizer, config with the spec) plus
            ``validation_by_condition.tsv``, ``training_log.tsv`` and ``finetune_report.json``.
        config: training settings.
        extra_report: entries added to the report (e.g. skipped input rows).

    Returns:
        The report dict (split sizes, best validation loss and step, per-condition losses, warnings).
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    from dnalm.utils import atomic_write
    from generate.data import split_indices

    if getattr(model, "conditioning", None) is not None:
        raise DnalmError("the model is already a conditional generator; fine-tune from the base model instead")
    cfg = config or GeneratorTrainConfig()
    values = np.asarray(values, dtype=float).reshape(len(sequences), -1)
    train_idx, val_idx = split_indices(len(sequences), [cfg.val_fraction], seed=cfg.seed)
    if len(val_idx) > cfg.max_val_rows:
        val_idx = np.sort(np.random.default_rng(cfg.seed + 1).choice(val_idx, cfg.max_val_rows, replace=False))
    # bins come from the training rows only, so validation does not leak into the edges
    spec, warnings = ConditionSpec.fit(values[train_idx], property_names, cfg.n_bins, cfg.edges)
    lengths = [len(s) for s in sequences]
    spec.sequence_lengths = [int(min(lengths)), int(max(lengths))]
    need = 1 + len(spec.properties) + max(lengths) + 1
    if need > model.config.max_length:
        raise DnalmError(
            f"the longest sequence needs {need} tokens ([BOS], conditions, sequence, [EOS]) but the model's maximum "
            f"length is {model.config.max_length}"
        )
    torch.manual_seed(cfg.seed)
    add_condition_tokens(model, spec, broadcast=cfg.broadcast)
    bins = spec.bins(values)  # (N, P)
    token_ids = np.array([[model.tokenizer.vocab[p.token(k)] for p, k in zip(spec.properties, row)] for row in bins])
    token_ids = token_ids.reshape(len(sequences), len(spec.properties))
    ids, labels = encode_examples(model.tokenizer, sequences, token_ids)
    bins_t = torch.from_numpy(bins)

    ds_train = torch.utils.data.TensorDataset(ids[train_idx], labels[train_idx], bins_t[train_idx])
    ds_val = torch.utils.data.TensorDataset(ids[val_idx], labels[val_idx], bins_t[val_idx])
    g = torch.Generator().manual_seed(cfg.seed)
    dl_train = torch.utils.data.DataLoader(ds_train, batch_size=cfg.batch_size, shuffle=True, generator=g, drop_last=len(ds_train) > cfg.batch_size)
    dl_val = torch.utils.data.DataLoader(ds_val, batch_size=max(cfg.batch_size, 64))

    module = _lightning_module()(model, spec, cfg)
    eval_every = min(cfg.eval_every, cfg.max_steps)
    with _quiet_lightning():
        trainer = L.Trainer(
            max_steps=cfg.max_steps,
            max_epochs=-1,
            val_check_interval=eval_every,
            check_val_every_n_epoch=None,
            callbacks=[EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience, check_on_train_epoch_end=False)],
            accelerator="auto",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=cfg.progress,
            num_sanity_val_steps=0,
            gradient_clip_val=1.0,
        )
    model.train()
    with _quiet_lightning():
        trainer.fit(module, dl_train, dl_val)
        steps_done = int(trainer.global_step)
        if not module.history or module.history[-1]["step"] != steps_done:
            trainer.validate(module, dl_val, verbose=False)  # final validation so the last weights are considered
    model.load_state_dict(module.best_state)
    model.eval().cpu()
    out_dir = Path(out_dir)
    save_generator(model, out_dir, spec, extra={"finetune": {"best_step": module.best_step, "val_loss": module.best_loss}})
    with atomic_write(out_dir / "validation_by_condition.tsv") as fh:
        fh.write("condition\tn_sequences\tloss\tperplexity\n")
        for r in module.best_table:
            fh.write(f"{r['condition']}\t{r['n_sequences']}\t{r['loss']:.5f}\t{r['perplexity']:.4f}\n")
    with atomic_write(out_dir / "training_log.tsv") as fh:
        fh.write("step\ttrain_loss\tval_loss\n")
        for h in module.history:
            fh.write(f"{h['step']}\t{h['train_loss']:.5f}\t{h['val_loss']:.5f}\n")
    report = {
        "n_train": len(train_idx),
        "n_validation": len(val_idx),
        "steps": steps_done,
        "stopped_early": steps_done < cfg.max_steps,
        "best_step": module.best_step,
        "best_val_loss": module.best_loss,
        "validation_by_condition": module.best_table,
        "conditioning": spec.to_dict(),
        "warnings": warnings,
        "config": asdict(cfg),
        **dict(extra_report or {}),
    }
    with atomic_write(out_dir / "finetune_report.json") as fh:
        json.dump(report, fh, indent=2, default=float)
    return report

"""Next-nucleotide pretraining with Lightning: a LightningModule, a LightningDataModule and :func:`pretrain`.

The model stays a plain :class:`~dnalm.models.lm.DNALM`; :class:`PretrainModule` holds the loss, AdamW with
weight-decay groups, the warm-up + cosine schedule and the metrics; :class:`PretrainDataModule` serves windows
from :class:`~dnalm.data.GenomeWindows`. Lightning does all scale-out (devices, nodes, DDP/FSDP, precision); this
is the only module of ``dnalm`` that imports lightning.

Exact resume. Batch ``s`` (0-based optimizer step) is a pure function of (seed, s): its windows are the random
windows ``offset + s*B + j`` (``j < B``, global batch B) of the stage's :class:`GenomeWindows`, split between
ranks by position, and the torch RNG (dropout) is reseeded from (seed, s, rank) before every step. The train
DataLoader is *stateful* in Lightning's sense: its state (the next step) goes into ``last.ckpt`` together with
model, optimizer, scheduler and loop counters, and Lightning's resume path restores it. So killing a run and
resuming from ``last.ckpt`` gives the same weights as an uninterrupted run, and the batches do not depend on the
number of devices.

Lightning checkpoints (``checkpoints/*.ckpt``) are pickles by Lightning's design: load them only through
``dnalm pretrain --resume`` (Lightning's own resume path) and only from runs you made. The exported model
(``model/``: ``config.json`` + ``model.safetensors`` + ``tokenizer.json``) is pickle-free; share that.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from dnalm.data import GenomeWindows
from dnalm.errors import ConfigError
from dnalm.io.genome import Genome
from dnalm.models.lm import DNALM, build_model, load_model
from dnalm.pretrain_config import PretrainConfig
from dnalm.tokenizer import A_ID, C_ID, G_ID, T_ID, DNATokenizer
from dnalm.training import (  # noqa: F401 - lr_lambda, TimeBudget: part of this module's API
    TimeBudget,
    WarmupCosine,
    lr_lambda,
    make_optimizer,
    make_scheduler,
    next_token_loss,
    parameter_groups,
)
from dnalm.utils import atomic_path, atomic_write, umask

IGNORE = -100
BASE_IDS = (A_ID, C_ID, G_ID, T_ID)
METRIC_COLUMNS = (
    "step", "tokens", "train_loss", "val_loss", "val_bits_per_base", "val_accuracy", "lr", "tokens_per_s", "elapsed_s"
)
LN2 = math.log(2.0)


# ======================================================================================== data
def make_targets(windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets from windows of L + 1 token ids.

    Args:
        windows: (B, L + 1) token ids.

    Returns:
        ``x`` (B, L) = windows[:, :-1] and ``y`` (B, L) = windows[:, 1:] with non-base targets (N, padding,
        specials) set to -100, so they are neither trained on nor scored.
    """
    x = windows[:, :-1]
    y = windows[:, 1:].clone()
    is_base = (y >= A_ID) & (y <= T_ID)
    y[~is_base] = IGNORE
    return x.contiguous(), y


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StepBatches(Dataset):
    """Map-style dataset whose item ``s`` is this rank's share of the batch of optimizer step ``s``.

    Batches follow the length warm-up stages of the config; item ``s`` holds ``batch_size / world`` windows of
    ``length + 1`` tokens (inputs and shifted targets), the ``rank``-th slice of the global batch.
    """

    def __init__(self, cfg: PretrainConfig, genomes: dict[str, Genome], tokenizer: DNATokenizer | None = None):
        self.cfg = cfg
        self.genomes = genomes
        self.tokenizer = tokenizer or DNATokenizer()
        self._windows: dict[int, GenomeWindows] = {}
        self.rank, self.world = 0, 1
        # first global sample index of each stage, so that no two steps share a window
        self._starts, self._sample_offsets = [], []
        step, sample = 0, 0
        for s in cfg.stages:
            self._starts.append(step)
            self._sample_offsets.append(sample)
            step += s.steps
            sample += s.steps * s.batch_size
        for i in range(len(cfg.stages)):  # open (and validate) every stage's window source up front
            self.windows(i)

    def windows(self, stage: int) -> GenomeWindows:
        """The random-mode :class:`GenomeWindows` of a stage (windows of length + 1 tokens)."""
        if stage not in self._windows:
            d = self.cfg.data
            self._windows[stage] = GenomeWindows(
                self.genomes,
                length=self.cfg.stages[stage].length + 1,
                mode="random",
                split="train",
                splits=splits_of(self.cfg),
                weights=weights_of(self.cfg),
                max_n_frac=d.max_n_frac,
                rc_prob=d.rc_prob,
                seed=self.cfg.trainer.seed,
                tokenizer=self.tokenizer,
            )
        return self._windows[stage]

    def __len__(self) -> int:
        return self.cfg.total_steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        stage, s = self.cfg.stage_at(step)
        per_rank = s.batch_size // self.world
        first = self._sample_offsets[stage] + (step - self._starts[stage]) * s.batch_size + self.rank * per_rank
        gw = self.windows(stage)
        windows = torch.stack([gw.random_window(first + j)["input_ids"] for j in range(per_rank)])  # (b, L+1)
        x, y = make_targets(windows)
        return {"input_ids": x, "labels": y, "step": torch.tensor(step)}


class StepSampler(Sampler[int]):
    """Yields optimizer-step indices ``start, start + 1, ..., total - 1``; ``start`` is the resume position."""

    def __init__(self, total: int):
        self.total = total
        self.start = 0

    def __iter__(self):
        return iter(range(self.start, self.total))

    def __len__(self) -> int:
        # the full run: Lightning counts batches already done in its restored loop state
        return self.total


class ResumableLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict``/``load_state_dict`` protocol: its state is the next step.

    Lightning stores the state in each checkpoint and restores it on resume before iterating, so the resumed
    run continues with exactly the batch that an uninterrupted run would have taken next.
    """

    def __init__(self, *args, position=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._position = position  # callable -> optimizer steps done (the trainer's global step)

    def state_dict(self) -> dict:
        return {"next_step": int(self._position()) if self._position else self.sampler.start}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.start = int(state["next_step"])


class ValidationWindows(IterableDataset):
    """Tiled windows (length + 1) of the validation chromosomes, spread evenly, with shifted targets."""

    def __init__(self, windows: GenomeWindows):
        self.windows = windows

    def __iter__(self):
        for item in self.windows:  # GenomeWindows shards over ranks and workers itself
            x, y = make_targets(item["input_ids"][None])
            yield {"input_ids": x[0], "labels": y[0]}


def splits_of(cfg: PretrainConfig) -> dict:
    """The GenomeWindows ``splits`` mapping of a config."""
    splits = {"validation": list(cfg.data.validation_chroms)}
    if cfg.data.test_chroms:
        splits["test"] = list(cfg.data.test_chroms)
    return splits


def weights_of(cfg: PretrainConfig):
    if all(g.weight > 0 for g in cfg.data.genomes):
        return [g.weight for g in cfg.data.genomes]
    return None  # in proportion to genome size


def open_genomes(cfg: PretrainConfig) -> dict[str, Genome]:
    """``{name: Genome}`` of the config's genomes (names from the config or the file names)."""
    from dnalm.data.windows import genome_name

    out: dict[str, Genome] = {}
    for i, g in enumerate(cfg.data.genomes):
        name = g.name or genome_name(Path(g.path))
        if name in out:
            raise ConfigError(f"data.genomes[{i}].name: two genomes are called {name!r}; give them distinct names")
        out[name] = Genome(g.path)
    return out


class PretrainDataModule(L.LightningDataModule):
    """Training batches by optimizer step (length warm-up stages) and evenly spread validation tiles."""

    def __init__(self, cfg: PretrainConfig):
        super().__init__()
        self.cfg = cfg
        self.genomes = open_genomes(cfg)
        self.train_data = StepBatches(cfg, self.genomes)  # opens the window sources: bad splits fail early
        self.val_windows = self._validation_windows()

    def _validation_windows(self) -> GenomeWindows:
        cfg, t = self.cfg, self.cfg.trainer
        length = cfg.val_length + 1
        probe = GenomeWindows(self.genomes, length=length, mode="tiled", split="validation", splits=splits_of(cfg))
        wanted = max(1, t.val_batches * self.val_batch_size * cfg.world_size)
        spare = probe.describe()["splits"]["validation"]["bp"] - length * len(probe.chroms)
        # a stride that spreads at most `wanted` windows evenly over the validation chromosomes
        stride = max(length, -(-spare // max(1, wanted - len(probe.chroms))))
        return GenomeWindows(
            self.genomes, length=length, mode="tiled", split="validation", splits=splits_of(cfg), stride=stride,
            max_n_frac=cfg.data.max_n_frac, last_window="drop", rc_prob=0.0, seed=t.seed,
        )

    @property
    def val_batch_size(self) -> int:
        t = self.cfg.trainer
        return t.val_batch_size or max(1, self.cfg.stages[-1].batch_size // self.cfg.world_size)

    def describe(self) -> dict:
        """Chromosomes and bp per split (from GenomeWindows)."""
        return self.train_data.windows(0).describe()["splits"]

    def train_dataloader(self) -> DataLoader:
        rank, world = _rank_world()
        self.train_data.rank, self.train_data.world = rank, world
        if world != self.cfg.world_size:
            raise ConfigError(
                f"trainer.devices x trainer.num_nodes = {self.cfg.world_size} but {world} processes are running"
            )
        trainer = self.trainer
        sampler = StepSampler(self.cfg.total_steps)
        nw = self.cfg.trainer.num_workers
        return ResumableLoader(
            self.train_data,
            batch_size=None,  # items are whole batches
            sampler=sampler,
            num_workers=nw,
            persistent_workers=False,
            prefetch_factor=2 if nw else None,
            generator=torch.Generator().manual_seed(self.cfg.trainer.seed),  # keeps the global RNG untouched
            position=(lambda: trainer.global_step) if trainer is not None else None,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            ValidationWindows(self.val_windows),
            batch_size=self.val_batch_size,
            num_workers=self.cfg.trainer.num_workers,
        )


# ======================================================================================== module
def score_bases(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bits and correctness of base targets under the model's distribution renormalised over A, C, G, T.

    Args:
        logits: (B, L, V).
        targets: (B, L) token ids, -100 (or any non-base id) where not scored.

    Returns:
        (sum of bits, number of scored bases, number predicted correctly by the arg-max base), 0-d tensors.
    """
    base_logits = logits[..., list(BASE_IDS)].float()  # (B, L, 4)
    logp = torch.log_softmax(base_logits, dim=-1)
    idx = targets - A_ID
    mask = (idx >= 0) & (idx < 4)
    idx = idx.clamp(0, 3)
    lp = logp.gather(-1, idx[..., None])[..., 0]  # (B, L)
    bits = -(lp * mask).sum() / LN2
    correct = ((logp.argmax(-1) == idx) & mask).sum()
    return bits, mask.sum(), correct


class PretrainModule(L.LightningModule):
    """Next-token loss, AdamW with weight-decay groups, warm-up + cosine schedule, and validation metrics."""

    def __init__(self, cfg: PretrainConfig, model: DNALM):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self._val_sums = torch.zeros(4, dtype=torch.float64)  # loss nats, tokens, bits, correct
        self._step_t0: float | None = None
        self.tokens_per_s = float("nan")
        self.last_val: dict[str, float] = {}
        minutes = cfg.trainer.max_time_min
        self.budget = TimeBudget(60.0 * minutes) if minutes else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).logits

    @staticmethod
    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over scored targets; logits (B, L, V), labels (B, L) already shifted."""
        return next_token_loss(logits, labels, shift=False)

    # ---------------------------------------------------------------- training
    def on_train_start(self) -> None:
        if self.budget is not None:
            self.budget.start()
            for config in self.trainer.lr_scheduler_configs:  # a resumed scheduler holds the old run's budget
                for fn in getattr(config.scheduler, "lr_lambdas", []):
                    if isinstance(fn, WarmupCosine):
                        fn.budget = self.budget

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # RNG (dropout) as a function of (seed, step, rank): resuming reproduces it without saved RNG state
        step = int(self.trainer.global_step)
        torch.manual_seed((self.cfg.trainer.seed * 1_000_003 + step * 1009 + self.global_rank) % (2**63 - 1))
        if self._step_t0 is None:
            self._step_t0 = time.perf_counter()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"])
        loss = self.loss_fn(logits, batch["labels"])
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        tokens = batch["input_ids"].numel() * self.trainer.world_size
        if self._step_t0 is not None:
            dt = max(now - self._step_t0, 1e-9)
            rate = tokens / dt
            # exponential average, so the bar shows a steady figure
            self.tokens_per_s = rate if math.isnan(self.tokens_per_s) else 0.9 * self.tokens_per_s + 0.1 * rate
            self.log("tok/s", self.tokens_per_s, prog_bar=True, on_step=True, on_epoch=False)
        self._step_t0 = now

    # ---------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(4, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["input_ids"])
        labels = batch["labels"]
        n = (labels != IGNORE).sum()
        loss_sum = next_token_loss(logits, labels, shift=False, reduction="sum")
        bits, _, correct = score_bases(logits, labels)
        self._val_sums += torch.stack([loss_sum.double(), n.double(), bits.double(), correct.double()])

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums.clone(), reduce_op="sum")
        n = float(sums[1])
        if n == 0:
            return
        self.last_val = {
            "step": int(self.trainer.global_step),
            "val_loss": float(sums[0]) / n,
            "val_bits_per_base": float(sums[2]) / n,
            "val_accuracy": float(sums[3]) / n,
            "val_bases": n,
        }
        self.log("val_loss", self.last_val["val_loss"], prog_bar=True, sync_dist=False, rank_zero_only=True)
        self.log("val_bpb", self.last_val["val_bits_per_base"], prog_bar=True, rank_zero_only=True)

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        o = self.cfg.optim
        opt = make_optimizer(parameter_groups(self.model, o.weight_decay), o.lr, betas=tuple(o.betas), eps=o.eps)
        sched = make_scheduler(opt, o.warmup_steps, self.cfg.total_steps, o.min_lr_ratio, self.budget)
        return {"optimizer": opt, "lr_scheduler": sched}


# ======================================================================================== outputs
class RunOutputs(L.Callback):
    """Writes metrics.csv and curves.png, exports the model (``model/``) and saves the final checkpoint.

    Runs on every rank (state gathering for export is collective under FSDP); only rank 0 writes files.
    """

    def __init__(self, cfg: PretrainConfig, out: Path, resume: bool = False):
        self.cfg = cfg
        self.out = out
        self.resume = resume
        self.rows: dict[int, dict] = {}
        self._loss_window: list[float] = []
        self._t_start = time.perf_counter()
        self._elapsed_before = 0.0
        self.start_step = 0
        self.train_seconds = float("nan")

    def on_train_start(self, trainer, pl_module) -> None:
        self._t_start = time.perf_counter()
        self.start_step = trainer.global_step
        if self.resume:  # keep the rows of the interrupted run up to the restored step
            self._load_rows(trainer.global_step)

    # ---------------------------------------------------------------- metrics
    def _load_rows(self, step: int) -> None:
        path = self.out / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                s = int(row["step"])
                if s <= step:
                    self.rows[s] = {k: (float(v) if v not in ("", None) else None) for k, v in row.items() if k != "step"}
        if self.rows:
            last = self.rows[max(self.rows)]
            self._elapsed_before = float(last.get("elapsed_s") or 0.0)

    def _row(self, step: int) -> dict:
        return self.rows.setdefault(step, {})

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._t_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._loss_window.append(float(loss))
        step = trainer.global_step
        t = self.cfg.trainer
        if step % t.log_every == 0 or step == self.cfg.total_steps:
            row = self._row(step)
            row["train_loss"] = float(np.mean(self._loss_window))
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            row["tokens_per_s"] = pl_module.tokens_per_s
            row["tokens"] = self.tokens_at(step)
            row["elapsed_s"] = self._elapsed()
            self._loss_window = []
            if trainer.is_global_zero:
                self.write_metrics()
        if step == self.cfg.total_steps:
            trainer.should_stop = True  # Lightning then validates once more (unless this step just did)
        if t.export_every and step % t.export_every == 0 and step < self.cfg.total_steps:
            self.export(trainer)

    def tokens_at(self, step: int) -> int:
        """Tokens consumed by the first ``step`` optimizer steps."""
        total, done = 0, 0
        for s in self.cfg.stages:
            n = min(s.steps, max(0, step - done))
            total += n * s.length * s.batch_size
            done += s.steps
        return total

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not pl_module.last_val or pl_module.last_val["step"] != trainer.global_step:
            return
        v = pl_module.last_val
        row = self._row(trainer.global_step)
        row.update({k: v[k] for k in ("val_loss", "val_bits_per_base", "val_accuracy")})
        row["tokens"] = self.tokens_at(trainer.global_step)
        row["elapsed_s"] = self._elapsed()
        if trainer.is_global_zero:
            self.write_metrics()
            self.plot()
            msg = (
                f"step {trainer.global_step}: val loss {v['val_loss']:.4f} nats, {v['val_bits_per_base']:.4f} bits/base, "
                f"accuracy {v['val_accuracy']:.3f} ({int(v['val_bases']):,} bases)"
            )
            bar = trainer.progress_bar_callback
            (bar.print if bar is not None else print)(msg)

    def write_metrics(self) -> None:
        with atomic_write(self.out / "metrics.csv", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(METRIC_COLUMNS)
            for step in sorted(self.rows):
                r = self.rows[step]
                w.writerow([step] + [_fmt(r.get(k)) for k in METRIC_COLUMNS[1:]])

    def plot(self) -> None:
        plot_curves(self.rows, self.out / "curves.png")

    # ---------------------------------------------------------------- export
    def export(self, trainer) -> None:
        state = trainer.strategy.lightning_module_state_dict()  # full state on rank 0 (gathers under FSDP)
        if trainer.is_global_zero:
            model = trainer.lightning_module.model
            state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
            extra = {"pretrain": self.summary(trainer)}
            export_model(model.config, state, self.out / "model", extra, tokenizer=model.tokenizer)

    def summary(self, trainer) -> dict:
        pm = trainer.lightning_module
        splits = trainer.datamodule.describe() if trainer.datamodule is not None else {}
        return {
            "step": int(trainer.global_step),
            "tokens": self.tokens_at(trainer.global_step),
            "genomes": [str(Path(g.path).resolve()) for g in self.cfg.data.genomes],
            "splits": {k: v["chromosomes"] for k, v in splits.items()},
            "val_length": self.cfg.val_length,
            "last_validation": dict(pm.last_val),
            "config": self.cfg.to_dict(),
        }

    def on_train_end(self, trainer, pl_module) -> None:
        step = trainer.global_step
        self.train_seconds = time.perf_counter() - self._t_start
        if self._loss_window:  # stopped between log steps (max_time): record where it ended
            row = self._row(step)
            row.update(train_loss=float(np.mean(self._loss_window)), lr=trainer.optimizers[0].param_groups[0]["lr"],
                       tokens_per_s=pl_module.tokens_per_s, tokens=self.tokens_at(step), elapsed_s=self._elapsed())
            self._loss_window = []
        self.export(trainer)
        trainer.save_checkpoint(self.out / "checkpoints" / "last.ckpt", weights_only=False)
        if trainer.is_global_zero:
            self.write_metrics()
            self.plot()


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def export_model(config, state: dict, directory: Path, extra: dict, tokenizer=None) -> Path:
    """Write a model directory from a state dict, replacing ``directory`` as a whole (readers never see a mix).

    Args:
        config: the model's LMConfig.
        state: its state dict (CPU or any device).
        directory: target folder (``model/``).
        extra: stored under ``extra`` in ``config.json``.
        tokenizer: saved beside the weights.
    """
    model = DNALM(config)
    model.load_state_dict({k: v.detach().to("cpu") for k, v in state.items()}, strict=True)
    model.tokenizer = tokenizer
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        model.save_pretrained(tmp, extra=extra)
        mask = umask()  # mkdtemp/mkstemp make private files; a model folder gets what a plain mkdir/open gives
        os.chmod(tmp, 0o777 & ~mask)
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~mask)
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, old / "m")
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def plot_curves(rows: dict[int, dict], path: Path) -> None:
    """Training and validation loss (bits per base) against tokens seen, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(rows)
    tr = [(rows[s].get("tokens") or 0, rows[s]["train_loss"] / LN2) for s in steps if rows[s].get("train_loss") is not None]
    va = [(rows[s].get("tokens") or 0, rows[s]["val_bits_per_base"]) for s in steps if rows[s].get("val_bits_per_base") is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if tr:
        ax.plot([t for t, _ in tr], [v for _, v in tr], label="train (bits/token)", lw=1)
    if va:
        ax.plot([t for t, _ in va], [v for _, v in va], "o-", label="validation (bits/base)", lw=1.5)
    ax.axhline(2.0, color="grey", ls=":", lw=1, label="uniform (2 bits)")
    values = [v for _, v in tr + va]
    if values:  # the first steps start far above 2 bits; keep the scale for the part that matters
        lo = min(values) - 0.01
        ax.set_ylim(lo, max(2.02, min(max(values), 2.1)) + 0.005)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("bits per base")
    ax.set_title("dnalm pretraining")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


class _ProgressBar(L.pytorch.callbacks.TQDMProgressBar):
    """Lightning's tqdm bar without the version number; shows loss, tokens/s and the last validation."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


# ======================================================================================== entry point
class _QuietLightning(logging.Filter):
    """Drops Lightning's advertising tip from the run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning() -> None:
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _QuietLightning) for f in logger.filters):
        logger.addFilter(_QuietLightning())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _compare_configs(saved: dict, now: dict) -> list[str]:
    """Dotted keys that differ between two config dicts, ignoring trainer settings that do not change results."""
    free = {"trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.num_workers", "trainer.threads",
            "trainer.progress_bar", "trainer.log_every", "trainer.val_every", "trainer.val_batches",
            "trainer.val_batch_size", "trainer.checkpoint_every", "trainer.export_every", "trainer.accelerator",
            "trainer.max_time_min"}
    out = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        elif a != b and prefix not in free:
            out.append(prefix)

    walk(saved, now, "")
    return out


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint of a run: ``checkpoints/last.ckpt`` or one that Lightning's SLURM plugin wrote on
    pre-emption (``hpc_ckpt_N.ckpt`` in the run folder); None if there is none."""
    found = [p for p in [out / "checkpoints" / "last.ckpt", *out.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def build_pretrain_model(cfg: PretrainConfig) -> DNALM:
    """The model a run starts from: the preset with overrides, or the weights of ``model.init_from``."""
    if cfg.model.init_from:
        model = load_model(cfg.model.init_from)
        model.train()
        return model
    return build_model(cfg.lm_config())


def pretrain(
    cfg: PretrainConfig,
    out: str | os.PathLike,
    resume: bool = False,
    callbacks: list | tuple = (),
    overwrite: bool = False,
) -> dict:
    """Pretrain a model with next-nucleotide prediction as configured; see the module docstring.

    Args:
        cfg: a validated :class:`PretrainConfig`.
        out: run folder: ``checkpoints/last.ckpt``, ``model/``, ``metrics.csv``, ``curves.png``, ``config.yaml``.
        resume: continue from ``out/checkpoints/last.ckpt`` through Lightning's resume path.
        callbacks: extra Lightning callbacks.
        overwrite: start afresh in a folder that holds a run (its checkpoints, metrics and curves are deleted;
            ``model/`` is replaced at the first export).

    Returns:
        ``{"out", "model_dir", "steps", "tokens", "last_validation", "wall_s", "tokens_per_s" (recent, smoothed),
        "mean_tokens_per_s" (this session's training), "is_global_zero"}``
        (every process returns; only rank 0 has written files).
    """
    import yaml
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.callbacks import ModelCheckpoint

    _quiet_lightning()
    out = Path(out)
    is_rank_zero = rank_zero_only.rank == 0
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other")
    if overwrite and is_rank_zero:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        for stale in [*out.glob("hpc_ckpt_*.ckpt"), out / "metrics.csv", out / "curves.png"]:
            stale.unlink(missing_ok=True)
    ckpt = None if overwrite else latest_checkpoint(out)
    if resume:
        if ckpt is None:
            raise ConfigError(
                f"--resume: {out / 'checkpoints' / 'last.ckpt'} not found (nothing to resume; run without --resume)"
            )
        saved_path = out / "config.yaml"
        if saved_path.exists():
            diff = _compare_configs(yaml.safe_load(saved_path.read_text()), cfg.to_dict())
            if diff:
                raise ConfigError(
                    f"--resume: the config differs from the run's {saved_path} in {', '.join(diff)}; an exact "
                    "resume needs the same model, data, stages, optimizer and seed (start a new --out instead)"
                )
    elif ckpt is not None:
        raise ConfigError(
            f"{out} already holds a run ({ckpt}); pass --resume to continue it, --overwrite to start afresh, "
            "or choose another --out"
        )
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    model = build_pretrain_model(cfg)
    module = PretrainModule(cfg, model)
    data = PretrainDataModule(cfg)

    t = cfg.trainer
    outputs = RunOutputs(cfg, out, resume=resume)
    checkpointing = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="step{step}", every_n_train_steps=t.checkpoint_every, save_top_k=0,
        save_last=True, save_on_train_epoch_end=False,
    )
    cbs: list = [checkpointing, outputs, *callbacks]
    if t.progress_bar:
        refresh = 1 if sys.stderr.isatty() else max(1, t.log_every)
        cbs.append(_ProgressBar(refresh_rate=refresh))
    strategy: Any = t.strategy
    if t.strategy == "ddp" and t.accelerator == "cpu":
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo")
    try:
        trainer = L.Trainer(
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=strategy,
            precision=t.precision,
            max_steps=cfg.total_steps,
            max_epochs=-1,
            max_time=timedelta(minutes=t.max_time_min) if t.max_time_min else None,
            val_check_interval=t.val_every,
            check_val_every_n_epoch=None,
            limit_val_batches=t.val_batches,
            num_sanity_val_steps=0,
            gradient_clip_val=cfg.optim.grad_clip or None,
            gradient_clip_algorithm="norm",
            callbacks=cbs,
            logger=False,
            enable_progress_bar=t.progress_bar,
            enable_model_summary=False,
            use_distributed_sampler=False,  # StepBatches splits each batch between ranks itself
            default_root_dir=str(out),
            deterministic=False,
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"trainer: {exc}") from None
    except Exception as exc:  # lightning's MisconfigurationException
        if type(exc).__name__ == "MisconfigurationException":
            raise ConfigError(f"trainer: {exc}") from None
        raise
    if is_rank_zero:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "config.yaml") as fh:
            fh.write(cfg.to_yaml())
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if resume else None)
    wall = time.perf_counter() - t0
    return {
        "out": str(out),
        "model_dir": str(out / "model"),
        "steps": int(trainer.global_step),
        "tokens": outputs.tokens_at(trainer.global_step),
        "last_validation": dict(module.last_val),
        "wall_s": wall,
        "tokens_per_s": module.tokens_per_s,
        "mean_tokens_per_s": (outputs.tokens_at(trainer.global_step) - outputs.tokens_at(outputs.start_step))
        / outputs.train_seconds,
        "is_global_zero": trainer.is_global_zero,
    }

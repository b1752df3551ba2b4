"""Outputs of a pretraining run: metrics.csv, curves.png, the exported model folder, the progress bar."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import lightning as L
import numpy as np

from dnalm.io.output import atomic_folder
from dnalm.models.lm import DNALM
from dnalm.pretrain.config import PretrainConfig
from dnalm.pretrain.module import LN2
from dnalm.utils import atomic_path, atomic_write

METRIC_COLUMNS = (
    "step", "tokens", "train_loss", "val_loss", "val_bits_per_base", "val_accuracy", "lr", "tokens_per_s", "elapsed_s"
)


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
    with atomic_folder(directory) as tmp:  # umask modes; the old folder is replaced whole, or kept on failure
        model.save_pretrained(tmp, extra=extra)
    return directory


def lightning_loggers(out: Path) -> list:
    """Lightning's CSV logger always (``OUT/logs/csv/metrics.csv``: every logged value), and its TensorBoard logger
    when tensorboard is installed (``OUT/logs/tensorboard``)."""
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(out), name="logs", version="csv")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name="logs", version="tensorboard"))
    return loggers


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
        ax.plot([t for t, _ in tr], [v for _, v in tr], label="train (bits/base)", lw=1)  # specials are not scored
    if va:
        ax.plot([t for t, _ in va], [v for _, v in va], "o-", label="validation (bits/base)", lw=1.5)
    ax.axhline(2.0, color="grey", ls=":", lw=1, label="uniform (2 bits)")
    values = [v for _, v in tr + va]
    if values:  # the first steps start far above 2 bits: cut them off, but keep both curves in view
        later = [v for _, v in tr[len(tr) // 10 :]] + [v for _, v in va]
        hi = max(2.02, float(np.quantile(later, 0.98)) if later else max(values))
        ax.set_ylim(min(values) - 0.01, hi + 0.01)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("bits per base")
    ax.set_title("dnalm pretraining")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


class ProgressBar(L.pytorch.callbacks.TQDMProgressBar):
    """Lightning's tqdm bar without the version number; shows the training loss and the last validation in one
    unit (bits per base: ``bpb``, ``val_bpb``) and tokens/s."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        for nats in ("loss", "val_loss"):  # shown as bits per base instead
            items.pop(nats, None)
        loss = trainer.callback_metrics.get("loss")
        if loss is not None:
            items["bpb"] = f"{float(loss) / LN2:.3f}"
        return items

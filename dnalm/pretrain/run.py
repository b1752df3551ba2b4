"""A pretraining run: resume/overwrite rules, the Lightning Trainer, and :func:`pretrain`."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dnalm.errors import ConfigError
from dnalm.models.lm import DNALM, build_model, load_model
from dnalm.pretrain.config import PretrainConfig
from dnalm.pretrain.data import PretrainDataModule
from dnalm.pretrain.module import PretrainModule
from dnalm.pretrain.outputs import ProgressBar, RunOutputs, lightning_loggers
from dnalm.utils import atomic_write


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
        cbs.append(ProgressBar(refresh_rate=refresh))
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
            logger=lightning_loggers(out),
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

"""The pretraining LightningModule: next-token loss, optimiser and schedule from dnalm.training, validation metrics."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch

from dnalm.models.lm import DNALM
from dnalm.pretrain.config import PretrainConfig
from dnalm.pretrain.data import IGNORE
from dnalm.tokenizer import A_ID, C_ID, G_ID, T_ID
from dnalm.training import (
    TimeBudget,
    WarmupCosine,
    make_optimizer,
    make_scheduler,
    next_token_loss,
    parameter_groups,
)

BASE_IDS = (A_ID, C_ID, G_ID, T_ID)
LN2 = math.log(2.0)


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

"""The one training core: AdamW parameter groups (one no-decay rule), warm-up + cosine schedule, next-token loss.

Pretraining (:mod:`dnalm.pretrain`), task fine-tuning (:mod:`finetune.lightning`) and generator fine-tuning
(:mod:`generate.training`) all build their optimiser and schedule here, so the same parameter of the same model is
treated the same way by all three.

No-decay rule (:func:`no_weight_decay`): every parameter with fewer than 2 dimensions (biases, norm weights, the
SSM's ``A_log``/``D``/``dt_bias``, Hyena's ``D`` skip and Sin frequencies), the ``A_log``/``D``/``dt_bias``/``bias``
leaves whatever their shape, token embeddings (``embeddings`` in the name), Hyena's implicit filter and positional
features (everything under ``filter_fn.``; HyenaDNA's default filter weight decay is 0), and any parameter carrying
``_no_weight_decay = True`` (mamba_ssm's convention). Weight matrices of projections, convolutions, MLPs and task
heads are decayed.

Per-parameter hints (``p._optim = {"lr": ..., "weight_decay": ...}``, HyenaDNA's convention; set by
:class:`~dnalm.models.hyena.HyenaConfig`'s ``filter_lr``, ``filter_wd``, ``lr_pos_emb`` and ``modulation_lr``) are
honoured: such a parameter goes into a group with the hinted learning rate and weight decay. With the default
HyenaConfig (``filter_lr=None``, ``filter_wd=0``) the hint equals the no-decay rule, so no extra group appears.

This module imports only torch, so :mod:`dnalm.models` may use :func:`next_token_loss`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
PAD_ID = 4  # dnalm.tokenizer.PAD_ID (HyenaDNA's [PAD]); repeated here so this module needs only torch
NO_DECAY_LEAVES = ("A_log", "D", "dt_bias", "bias")


# ---------------------------------------------------------------------------------------------------- groups
def no_weight_decay(name: str, p: torch.Tensor) -> bool:
    """True when parameter ``name`` (a ``named_parameters`` name) is exempt from weight decay (see module doc)."""
    return (
        p.ndim < 2
        or name.rsplit(".", 1)[-1] in NO_DECAY_LEAVES
        or "embeddings" in name
        or "filter_fn." in name
        or bool(getattr(p, "_no_weight_decay", False))
    )


def parameter_groups(
    model: torch.nn.Module, weight_decay: float, lr: float | None = None, prefix: str = ""
) -> list[dict]:
    """AdamW parameter groups of ``model`` under the one no-decay rule, honouring per-parameter hints.

    Args:
        model: the module whose trainable parameters are grouped (tied weights appear once; frozen ones not at all).
        weight_decay: decay of the decayed group.
        lr: learning rate of the groups (None: the optimiser's ``lr`` argument applies). A hinted ``lr`` wins.
        prefix: prepended to the ``names`` entries (e.g. ``"head."``), for reporting only.

    Returns:
        ``[{"params", "weight_decay", "names"[, "lr"]}, ...]``: the decayed group, the no-decay group, then one group
        per distinct hint; empty groups are left out. Pass ``[{k: v for k, v in g.items() if k != "names"}]`` to the
        optimiser (:func:`make_optimizer` does).
    """
    groups: dict[tuple, dict] = {}

    def add(key: tuple, name: str, p: torch.Tensor, group_lr: float | None, wd: float) -> None:
        g = groups.setdefault(key, {"params": [], "weight_decay": wd, "names": []})
        if group_lr is not None:
            g["lr"] = group_lr
        g["params"].append(p)
        g["names"].append(prefix + name)

    for name, p in model.named_parameters():  # named_parameters() yields a tied tensor once
        if not p.requires_grad:
            continue
        skip = no_weight_decay(name, p)
        hint = getattr(p, "_optim", None) or {}
        wd = float(hint.get("weight_decay", 0.0 if skip else weight_decay))
        group_lr = hint.get("lr", lr)
        if group_lr == lr and wd == (0.0 if skip else weight_decay):
            add(("rest",) if skip else ("decay",), name, p, lr, wd)
        else:
            add(("hint", group_lr, wd), name, p, group_lr, wd)
    order = sorted(groups, key=lambda k: {"decay": 0, "rest": 1}.get(k[0], 2))
    return [groups[k] for k in order]


def make_optimizer(
    groups: Iterable[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8
) -> torch.optim.AdamW:
    """AdamW over the groups of :func:`parameter_groups` (their ``names`` entries dropped)."""
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    return torch.optim.AdamW(clean, lr=lr, betas=tuple(betas), eps=eps)


# ---------------------------------------------------------------------------------------------------- schedule
def lr_lambda(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warm-up, then cosine to min_lr_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TimeBudget:
    """Wall-clock budget of a run: the fraction of it used since :meth:`start`."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.t0: float | None = None

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def fraction(self) -> float:
        if self.t0 is None or self.seconds <= 0:
            return 0.0
        return (time.perf_counter() - self.t0) / self.seconds


class WarmupCosine:
    """LambdaLR function: warm-up + cosine over steps, or over a :class:`TimeBudget` when that runs out first.

    With a budget the cosine follows ``max(step, total * time used / budget)``, so a run on a machine slower than
    planned still anneals to ``min_ratio`` by the time it is stopped.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float, budget: TimeBudget | None = None):
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio
        self.budget = budget

    def __call__(self, step: int) -> float:
        if self.budget is not None and step >= self.warmup:
            step = max(step, int(self.total * self.budget.fraction()))
        return lr_lambda(step, self.warmup, self.total, self.min_ratio)


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float,
    budget: TimeBudget | None = None,
) -> dict:
    """Lightning's ``lr_scheduler`` entry: a per-step LambdaLR of :class:`WarmupCosine`."""
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(max(0, warmup_steps), total_steps, min_lr_ratio, budget)
    )
    return {"scheduler": sched, "interval": "step", "frequency": 1}


# ---------------------------------------------------------------------------------------------------- loss
def next_token_targets(labels: torch.Tensor, shift: bool = True) -> torch.Tensor:
    """Targets of next-token prediction: ``labels[:, 1:]`` (``shift``) or ``labels``, with [PAD] set to -100."""
    target = (labels[:, 1:] if shift else labels).clone()
    target[target == PAD_ID] = IGNORE_INDEX
    return target


def next_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, shift: bool = True, reduction: str = "mean"
) -> torch.Tensor:
    """Next-token cross-entropy (nats), computed in float32.

    Args:
        logits: (B, T, V).
        labels: (B, T). With ``shift`` they are aligned with the inputs (logits at t predict labels at t+1, the
            Hugging Face convention); without, they are already the targets of each position. -100 and [PAD] are
            not scored.
        reduction: ``mean`` over scored targets, ``sum``, or ``none`` ((B, T-1) or (B, T), 0 where not scored).
    """
    target = next_token_targets(labels, shift)
    pred = logits[:, :-1] if shift else logits
    ce = F.cross_entropy(
        pred.float().reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX,
        reduction="none" if reduction == "none" else reduction,
    )
    return ce.view(target.shape) if reduction == "none" else ce

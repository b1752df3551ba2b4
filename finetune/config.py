"""Settings of one fine-tuning run (:class:`FinetuneConfig`), readable without importing Lightning.

Loaded strictly by :mod:`dnalm.config` (``load_config(FinetuneConfig, "ft.yaml", ["max_steps=500"])``): an unknown
key names itself and the closest known one, a wrongly typed value names the key and the expected type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dnalm.errors import ConfigError

POOLINGS = ("mean", "last", "echo", "rc_echo")  # poolings of finetune.heads


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (``dnalm finetune --set key=value``)."""

    pooling: str = "mean"  # mean | last | echo | rc_echo
    head_hidden: int = 0  # hidden width of the head (0 = linear)
    head_dropout: float = 0.0  # dropout in the head (0: the head_init head is fitted without it; dropout on its weights is logit noise of several units)
    strand_average: bool = False  # average predictions of x and rc(x) (train and test)
    freeze_backbone: bool = False  # train only the head
    head_init: bool = True  # before training: standardise pooled features with train-split statistics and fit the head on frozen features (LP-FT)
    head_init_steps: int = 300  # Adam steps of that fit per L2 penalty (on cached features: no backbone passes)
    norm_momentum: float = 0.1  # while the backbone trains, the head centres each batch on its own mean and tracks it with this momentum (0 = fixed train-split statistics)
    lr_head: float = 1e-4  # peak learning rate of the head (head_init starts it at the probe's optimum; ~1e-3 for a random head)
    lr_backbone: float = 1e-5  # peak learning rate of the backbone (1e-4 drove the demo's fitted head off in 20 steps)
    weight_decay: float = 0.01  # AdamW weight decay (dnalm.training rule: not on biases, norms, embeddings, ...)
    warmup_steps: int = 50  # linear warm-up steps, then cosine decay to 0 at max_steps
    batch_size: int = 32  # training batch size
    eval_batch_size: int = 128  # batch size for dev/test
    max_steps: int = 1000  # optimiser steps (cap)
    val_every: int = 100  # optimiser steps between dev evaluations
    patience: int = 5  # dev evaluations without improvement before early stopping (0 = never stop early)
    max_train: int = 0  # subsample train to this many rows, stratified and seeded (0 = all)
    max_dev: int = 2000  # subsample dev (0 = all); dev is evaluated often, so keep it small on CPU
    max_test: int = 0  # subsample test (0 = all)
    rc_augment: float = 0.0  # probability of reverse complementing a training sequence
    scan_chunk_size: int = 0  # Mamba2 SSD chunk length for this run (0 = the model's); compute only, same outputs
    grad_clip: float = 1.0  # gradient norm clip (0 = off)
    seed: int = 0  # seed of initialisation, batches, augmentation and subsampling
    num_workers: int = 0  # DataLoader workers
    threads: int = 0  # torch CPU threads (0 = torch's default)
    accelerator: str = "auto"  # Lightning accelerator: auto | cpu | gpu
    precision: str = "32-true"  # Lightning precision (bf16-mixed on recent GPUs)
    progress_bar: bool = True  # show progress bars
    save_model: bool = True  # save_pretrained the fine-tuned model into OUT/model

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        for name in ("max_steps", "val_every", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("head_dropout", "lr_head", "lr_backbone", "weight_decay", "rc_augment", "grad_clip", "norm_momentum"):
            value = getattr(self, name)  # NaN compares False with everything, so test finiteness first
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.rc_augment <= 1.0:
            raise ConfigError(f"rc_augment is a probability, got {self.rc_augment}")
        if self.norm_momentum > 1.0:
            raise ConfigError(f"norm_momentum is a fraction in [0, 1], got {self.norm_momentum}")

"""Task heads on a dnalm backbone: pooling (mean, last, echo, rc_echo), prediction heads and their losses.

A :class:`SequenceModel` takes *base ids* (no special tokens), right padded with [PAD], and builds the
backbone input itself, so that the pooling scheme travels with the saved model:

- ``mean`` / ``last``: ``[BOS] x [EOS]``; mean over the tokens of ``x``, or the state at [EOS] (the only token
  of a causal model that has seen the whole sequence).
- ``echo``: ``[BOS] x [SEP] x [EOS]``; mean over the *second* copy of ``x``, whose every token has seen the
  whole sequence (HybriDNA's echo embedding for causal models).
- ``rc_echo``: ``[BOS] x [SEP] rc(x) [EOS]``; mean over the second copy, the reverse complement.

Per-nucleotide heads read the state of each base of the pooled copy (for ``rc_echo`` the second copy is
flipped back so that output ``i`` belongs to base ``i`` of ``x``). Padding never reaches a pooled value: the
backbone is causal (right padding cannot change the states of real tokens) and pooling masks it out.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError, InputError
from dnalm.tokenizer import BOS_ID, PAD_ID, SEP_ID, reverse_complement_ids
from dnalm.utils import read_model_json
from finetune.config import POOLINGS  # mean | last | echo | rc_echo

KINDS = ("binary", "multiclass", "multilabel", "regression", "token_classification")
HEAD_FORMAT = "dnalm-finetune-head"
HEAD_FORMAT_VERSION = 2  # 2: the head holds FeatureNorm statistics (norm.mean, norm.std)


@dataclass
class HeadConfig:
    """Configuration of a prediction head and the pooling that feeds it (saved as ``head.json``)."""

    kind: str = "binary"  # binary | multiclass | multilabel | regression | token_classification
    num_outputs: int = 1  # classes (multiclass, token_classification), labels (multilabel), targets (regression)
    pooling: str = "mean"  # mean | last | echo | rc_echo
    hidden: int = 0  # width of a hidden layer (0 = one linear layer on the pooled state)
    dropout: float = 0.1  # dropout before each linear layer
    strand_average: bool = False  # average the outputs of x and its reverse complement
    target_mean: list[float] = field(default_factory=list)  # regression targets are standardised with these
    target_std: list[float] = field(default_factory=list)
    classes: list = field(default_factory=list)  # class names in output order (for predictions tables)
    task: str = ""  # task name, for the record
    metric: str = ""  # the task's metric, for the record

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"head kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.kind == "token_classification" and self.pooling == "last":
            raise ConfigError("per-nucleotide heads need a pooling over tokens: mean, echo or rc_echo, not last")
        if self.kind == "binary" and self.num_outputs != 1:
            raise ConfigError(f"a binary head has one output (a logit), got num_outputs={self.num_outputs}")
        if self.num_outputs < 1:
            raise ConfigError(f"num_outputs must be positive, got {self.num_outputs}")
        if self.kind in ("multiclass", "token_classification") and self.num_outputs < 2:
            raise ConfigError(f"a {self.kind} head needs at least 2 classes, got {self.num_outputs}")

    @classmethod
    def from_dict(cls, d: dict, source: str = "head config") -> HeadConfig:
        """Strict (:mod:`dnalm.config`): an unknown or wrongly typed key is an error naming it and ``source``."""
        from dnalm.config import from_dict

        try:
            return from_dict(cls, d)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


# --------------------------------------------------------------------------------------------- input building
@dataclass
class ModelInputs:
    """Backbone input built from base ids for one pooling scheme."""

    input_ids: torch.Tensor  # (B, T) with special tokens, right padded with [PAD]
    attention_mask: torch.Tensor  # (B, T)
    positions: torch.Tensor  # (B, L) index into T of the pooled state of base i (0 where base i is padding)
    base_mask: torch.Tensor  # (B, L) 1 on real bases
    last: torch.Tensor  # (B,) index into T of the final real token ([EOS])


def build_inputs(ids: torch.Tensor, mask: torch.Tensor, pooling: str) -> ModelInputs:
    """Wrap base ids as the backbone input of a pooling scheme (see the module docstring).

    Args:
        ids: (B, L) base ids (A=7 C=8 G=9 T=10 N=11), right padded with [PAD].
        mask: (B, L) 1 on real bases, 0 on padding.
        pooling: mean | last | echo | rc_echo.

    Returns:
        :class:`ModelInputs`.
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    mask = mask.long()
    B, L = ids.shape
    n = mask.sum(1)  # (B,)
    if bool((n == 0).any()):
        raise InputError(f"empty sequence in batch row {int((n == 0).nonzero()[0, 0])}")
    ar = torch.arange(L, device=ids.device)[None].expand(B, L)  # (B, L)
    first = torch.where(mask.bool(), ids, torch.full_like(ids, PAD_ID))
    echo = pooling in ("echo", "rc_echo")
    T = 2 * L + 3 if echo else L + 2
    out = torch.full((B, T), PAD_ID, dtype=torch.long, device=ids.device)
    out[:, 0] = BOS_ID
    out[:, 1 : L + 1] = first
    if not echo:
        out.scatter_(1, (1 + n)[:, None], SEP_ID)  # [EOS] == [SEP]
        positions = 1 + ar
        last = 1 + n
        lengths = n + 2
    else:
        out.scatter_(1, (1 + n)[:, None], SEP_ID)  # separator between the copies
        if pooling == "echo":
            second = first
            positions = 2 + n[:, None] + ar
        else:
            second = reverse_complement_ids(ids, mask)
            # base i of x is copy position n-1-i of its reverse complement
            positions = 2 + n[:, None] + (n[:, None] - 1 - ar)
        out.scatter_(1, 2 + n[:, None] + ar, second)  # padding of `second` lands before the final [EOS]
        last = 2 + 2 * n
        out.scatter_(1, last[:, None], SEP_ID)
        lengths = 2 * n + 3
    positions = torch.where(mask.bool(), positions, torch.zeros_like(positions))
    attention_mask = (torch.arange(T, device=ids.device)[None] < lengths[:, None]).long()
    return ModelInputs(out, attention_mask, positions, mask, last)


def pool_states(h: torch.Tensor, inputs: ModelInputs, pooling: str, per_token: bool = False) -> torch.Tensor:
    """Pool backbone states.

    Args:
        h: (B, T, d) backbone states of ``inputs.input_ids``.
        inputs: from :func:`build_inputs`.
        pooling: the scheme used to build ``inputs``.
        per_token: return the state of every base of the pooled copy instead of one vector.

    Returns:
        (B, d) pooled states, or (B, L, d) per-base states (zeros at padding) when ``per_token``.
    """
    d = h.shape[-1]
    if pooling == "last" and not per_token:
        return h.gather(1, inputs.last[:, None, None].expand(-1, 1, d))[:, 0]  # (B, d)
    per_base = h.gather(1, inputs.positions[..., None].expand(-1, -1, d))  # (B, L, d)
    w = inputs.base_mask.to(h.dtype)[..., None]  # (B, L, 1)
    per_base = per_base * w
    if per_token:
        return per_base
    return per_base.sum(1) / w.sum(1).clamp_min(1.0)


# --------------------------------------------------------------------------------------------- heads
class FeatureNorm(nn.Module):
    """Per-feature standardisation of pooled states, ``(x - mean) / std``, from training-set statistics.

    Pooled states of a pretrained backbone differ very little from sequence to sequence (a final norm, then a
    mean over hundreds of tokens), while their per-feature offsets are large: a freshly initialised linear head
    on the raw states sees near-constant inputs and cannot learn in a few hundred steps, so fine-tuning moves
    the backbone instead and learns shortcuts. The statistics are computed once before training
    (:func:`feature_statistics`) and saved with the head; they are buffers, never trained. Identity until set.

    While the backbone is fine-tuned the centre must follow it: dividing by a spread ~10x smaller than the offset
    turns a backbone step that shifts every sequence's pooled state alike into a shift of many standard deviations
    of every standardised feature, and the fitted head sends everything to one class (demo promoter task, no head
    dropout, 20 steps at backbone lr 1e-4: every dev sequence predicted positive, dev MCC 0.60 -> 0). With
    ``momentum > 0`` (set by :func:`finetune.lightning.finetune` while it trains the backbone) a training forward
    pass centres with the batch's own mean, as BatchNorm does (a common shift then cancels and sends no gradient
    into the backbone), and moves the stored mean towards it by ``momentum``; eval mode uses the stored mean,
    which is what is saved. The scale stays the training split's: dividing by a 32-row batch's standard deviation
    (~12 % noise per feature) would be logit noise of several units through the head's large, cancelling weights,
    the same harm as dropout. ``momentum == 0``: fixed statistics.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(d_model))
        self.register_buffer("std", torch.ones(d_model))
        self.momentum = 0.0  # > 0: training passes centre on the batch mean and track it

    @torch.no_grad()
    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Use these statistics: mean, std (d_model,), std > 0."""
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ConfigError(f"feature statistics need shape {tuple(self.mean.shape)}, got "
                              f"{tuple(mean.shape)} / {tuple(std.shape)}")
        if not bool(torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ConfigError("feature statistics must be finite with std > 0")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Standardise ``x`` (..., d); ``mask`` (B, L) marks the real bases of per-base states (B, L, d), so
        that padding does not enter the batch mean."""
        if not (self.training and self.momentum > 0):
            return (x - self.mean) / self.std  # (..., d)
        rows = x.reshape(-1, x.shape[-1])  # (M, d)
        if mask is not None:
            rows = rows[mask.reshape(-1).bool()]
        if rows.shape[0] < 2:  # no batch to centre on: stored statistics
            return (x - self.mean) / self.std
        mean = rows.mean(0)  # (d,)
        with torch.no_grad():
            self.mean.lerp_(mean.detach().to(self.mean.dtype), self.momentum)
        return (x - mean) / self.std


def feature_statistics(features: torch.Tensor, rel_floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation of pooled states, for :class:`FeatureNorm`.

    Args:
        features: (N, d) pooled states of training sequences (or (N, L, d) per-base states with ``mask``
            applied by the caller: pass the real bases only, flattened to (M, d)).
        rel_floor: standard deviations below ``rel_floor`` times the median feature's are raised to it, so
            that a (near-)constant feature is not blown up into noise.

    Returns:
        mean (d,), std (d,) in float32.
    """
    x = features.reshape(-1, features.shape[-1]).double()
    if x.shape[0] < 2:
        raise InputError(f"feature statistics need at least 2 training rows, got {x.shape[0]}")
    mean = x.mean(0)
    std = x.std(0)
    floor = rel_floor * std.median().clamp_min(1e-12)
    return mean.float(), torch.maximum(std, floor).float()


class PredictionHead(nn.Module):
    """Fixed feature standardisation, then dropout + linear (or a one-hidden-layer MLP) from pooled states to
    outputs."""

    def __init__(self, d_model: int, num_outputs: int, hidden: int = 0, dropout: float = 0.1):
        super().__init__()
        self.norm = FeatureNorm(d_model)
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_outputs)
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, num_outputs))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs of pooled states ``x`` (B, d) or per-base states (B, L, d) with their base ``mask`` (B, L)."""
        return self.net(self.norm(x, mask))


def task_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss of a batch.

    Args:
        kind: head kind.
        logits: (B, 1) binary, (B, C) multiclass/multilabel, (B, k) regression (standardised scale),
            (B, L, C) token_classification.
        labels: (B,) class ids or 0/1, (B, C) multi-hot, (B,) or (B, k) targets (standardised),
            (B, L) per-base class ids with -100 on ignored positions.

    Returns:
        Scalar: binary cross-entropy (binary, multilabel; mean over labels), cross-entropy (multiclass,
        token_classification; mean over non-ignored positions) or mean squared error (regression).
    """
    logits = logits.float()
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.float().reshape(-1))
    if kind == "multiclass":
        return F.cross_entropy(logits, labels.long())
    if kind == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    if kind == "regression":
        return F.mse_loss(logits, labels.float().reshape(logits.shape))
    if kind == "token_classification":
        C = logits.shape[-1]
        return F.cross_entropy(logits.reshape(-1, C), labels.long().reshape(-1), ignore_index=-100)
    raise ConfigError(f"unknown head kind {kind!r}")


def scores_from_logits(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """Probabilities (classification) from logits: sigmoid for binary (B,) / multilabel (B, C), softmax for
    multiclass (B, C) / token_classification (B, L, C); regression outputs pass unchanged."""
    logits = logits.float()
    if kind == "binary":
        return torch.sigmoid(logits[..., 0])
    if kind == "multilabel":
        return torch.sigmoid(logits)
    if kind in ("multiclass", "token_classification"):
        return torch.softmax(logits, -1)
    return logits


# --------------------------------------------------------------------------------------------- the model
class SequenceModel(nn.Module):
    """A dnalm backbone, a pooling scheme and a prediction head."""

    def __init__(self, backbone: nn.Module, head: HeadConfig):
        super().__init__()
        self.backbone = backbone
        self.config = head
        width = getattr(backbone, "hidden_size", backbone.config.d_model)  # 2 * d_model for an RC-equivariant model
        self.head = PredictionHead(width, head.num_outputs, head.hidden, head.dropout)
        k = head.num_outputs
        if head.kind == "regression":
            mean = head.target_mean or [0.0] * k
            std = head.target_std or [1.0] * k
            if len(mean) != k or len(std) != k or any(s <= 0 for s in std):
                raise ConfigError(f"target_mean/target_std need {k} values (std > 0), got {mean} / {std}")
        else:
            mean, std = [0.0] * k, [1.0] * k
        self.register_buffer("target_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("target_std", torch.tensor(std, dtype=torch.float32), persistent=False)

    @property
    def tokenizer(self):
        return getattr(self.backbone, "tokenizer", None)

    @property
    def per_token(self) -> bool:
        return self.config.kind == "token_classification"

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze (False) or unfreeze (True) every backbone parameter."""
        for p in self.backbone.parameters():
            p.requires_grad_(trainable)

    def embed(self, ids: torch.Tensor, mask: torch.Tensor, per_token: bool | None = None, pooling: str | None = None) -> torch.Tensor:
        """Pooled backbone states of base ids: (B, d), or (B, L, d) per base.

        Args:
            ids: (B, L) base ids right padded with [PAD].
            mask: (B, L) 1 on real bases.
            per_token: per-base states (default: whether the head is per-nucleotide).
            pooling: override the model's pooling scheme.
        """
        pooling = pooling or self.config.pooling
        per_token = self.per_token if per_token is None else per_token
        inputs = build_inputs(ids, mask, pooling)
        h = self.backbone.embed(inputs.input_ids, inputs.attention_mask)  # (B, T, d)
        return pool_states(h, inputs, pooling, per_token=per_token)

    def _logits_one_strand(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids, mask), mask if self.per_token else None)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Head outputs (logits; standardised values for regression): (B, k) or (B, L, C) per base.

        With ``strand_average`` the outputs of ``x`` and of its reverse complement are averaged (per-base
        outputs of the reverse complement are flipped back onto the bases of ``x``).
        """
        logits = self._logits_one_strand(ids, mask)
        if not self.config.strand_average:
            return logits
        rc = reverse_complement_ids(ids, mask)
        logits_rc = self._logits_one_strand(rc, mask)
        if self.per_token:
            n = mask.long().sum(1, keepdim=True)  # (B, 1)
            ar = torch.arange(ids.shape[1], device=ids.device)[None]
            src = torch.where(ar < n, n - 1 - ar, ar)  # (B, L)
            logits_rc = logits_rc.gather(1, src[..., None].expand(-1, -1, logits_rc.shape[-1]))
        return 0.5 * (logits + logits_rc)

    def forward_onehot(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of a float one-hot batch, differentiable in ``x`` (for attributions).

        Args:
            x: (B, 4, L) one-hot columns (A, C, G, T; all-zero = N), or points between one-hot inputs.
            mask: (B, L) 1 on real bases.

        Returns:
            The outputs of :meth:`forward` for the bases of ``x`` (equal to it on one-hot input).
        """
        logits = self._onehot_logits_one_strand(x, mask)
        if not self.config.strand_average:
            return logits
        n = mask.long().sum(1, keepdim=True)  # (B, 1)
        ar = torch.arange(x.shape[2], device=x.device)[None]
        src = torch.where(ar < n, n - 1 - ar, ar)  # (B, L): rc position j reads base n-1-j
        x_rc = x.gather(2, src[:, None].expand(-1, 4, -1)).flip(1) * mask[:, None].to(x.dtype)
        logits_rc = self._onehot_logits_one_strand(x_rc, mask)
        if self.per_token:
            logits_rc = logits_rc.gather(1, src[..., None].expand(-1, -1, logits_rc.shape[-1]))
        return 0.5 * (logits + logits_rc)

    def _onehot_logits_one_strand(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from dnalm.explain.targets import base_embeddings, base_ids, embeddings_replaced, scatter_bases

        pooling = self.config.pooling
        ids = torch.where(mask.bool(), base_ids(x, mask), torch.full_like(mask, PAD_ID, dtype=torch.long))
        inputs = build_inputs(ids, mask, pooling)
        emb = self.backbone.backbone.embeddings(inputs.input_ids)  # (B, T, d) special tokens and layout
        first = 1 + torch.arange(x.shape[2], device=x.device)[None].expand(x.shape[0], -1)  # (B, L)
        emb = scatter_bases(emb, first, base_embeddings(self.backbone, x), mask)
        if pooling in ("echo", "rc_echo"):  # the second copy: x again, or its reverse complement
            emb = scatter_bases(emb, inputs.positions, base_embeddings(self.backbone, x, complement=pooling == "rc_echo"), mask)
        with embeddings_replaced(self.backbone, emb):
            h = self.backbone.embed(inputs.input_ids, inputs.attention_mask)  # (B, T, d)
        return self.head(pool_states(h, inputs, pooling, per_token=self.per_token), mask if self.per_token else None)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Task loss (regression targets are standardised with the head's target mean/std first)."""
        if self.config.kind == "regression":
            labels = (labels.float().reshape(logits.shape) - self.target_mean) / self.target_std
        return task_loss(self.config.kind, logits, labels)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities (classification) or values on the targets' own scale (regression)."""
        if self.config.kind == "regression":
            return logits.float() * self.target_std + self.target_mean
        return scores_from_logits(self.config.kind, logits)

    @torch.no_grad()
    def predict(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Scores of a batch in eval mode (see :meth:`scores`)."""
        was = self.training
        self.eval()
        out = self.scores(self(ids, mask))
        self.train(was)
        return out

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the backbone (``config.json``, ``model.safetensors``, ``tokenizer.json``, so that
        ``dnalm.load_model`` reads the fine-tuned backbone) plus ``head.safetensors`` and ``head.json``."""
        from safetensors.torch import save_file

        from dnalm.utils import atomic_path, atomic_write

        directory = Path(directory)
        self.backbone.save_pretrained(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        with atomic_path(directory / "head.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": HEAD_FORMAT})
        meta = {"format": HEAD_FORMAT, "version": HEAD_FORMAT_VERSION, "head": dataclasses.asdict(self.config)}
        with atomic_write(directory / "head.json") as fh:
            json.dump(meta, fh, indent=2)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> SequenceModel:
        """Load a model written by :meth:`save_pretrained` (safetensors + JSON only)."""
        from dnalm.models import load_model
        from dnalm.models.weights import check_against, load_checked

        directory = Path(directory)
        path = directory / "head.json"
        meta = read_model_json(path, {"format": HEAD_FORMAT}, f"{directory}: no head.json (not a fine-tuned model; "
                               "load the backbone with dnalm.load_model)")
        head = HeadConfig.from_dict(meta["head"], source=str(path))
        model = cls(load_model(directory), head)
        weights = directory / "head.safetensors"
        if not weights.exists():
            raise InputError(f"{directory}: no head.safetensors")
        target = model.head
        if meta.get("version", 1) < 2:  # heads saved before FeatureNorm saw raw states: identity statistics
            target = nn.Module()
            target.net = model.head.net  # the same layers: loading them loads the head
        check_against(weights, lambda: target, path)
        load_checked(target, weights)
        model.to(device)
        model.eval()
        return model


def load_backbone(model):
    """A model to fine-tune or embed with: a DNALM / SequenceModel as is, a model folder (a fine-tuned one with
    ``head.json`` loads as :class:`SequenceModel`) or a preset name (random init)."""
    from dnalm.models import DNALM, PRESETS, build_model, load_model

    if isinstance(model, (DNALM, SequenceModel)):
        return model
    path = Path(str(model))
    if path.is_dir():
        if (path / "head.json").exists():
            return SequenceModel.load(path)
        return load_model(path)
    if str(model) in PRESETS:
        return build_model(str(model))
    raise InputError(f"--model {model!r}: neither a model directory nor a preset ({', '.join(PRESETS)})")

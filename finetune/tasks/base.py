"""Fine-tuning tasks: the :class:`Task` / :class:`TaskSplit` data classes and the helpers every loader shares
(seeded subsampling and carving of missing splits, head kind and metric from the labels, split columns)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dnalm.data.fetch import SKIP_COLUMNS
from dnalm.errors import ConfigError, InputError
from finetune.metrics import DEFAULT_METRIC

if TYPE_CHECKING:  # pragma: no cover
    from finetune.tasks.spec import TaskSpec

SPLITS = ("train", "dev", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "dev": "dev", "valid": "dev", "val": "dev",
               "validation": "dev", "test": "test", "testing": "test"}


# --------------------------------------------------------------------------------------------- data classes
@dataclass
class TaskSplit:
    """Sequences and labels of one split.

    ``labels`` is (N,) int64 class ids (binary/multiclass), (N,) or (N, k) float32 targets (regression),
    (N, C) float32 multi-hot (multilabel) or (N, L_max) int64 per-base class ids with -100 past each
    sequence's end (token_classification). ``meta`` has one row per sequence (source file, line, id,
    interval...).
    """

    sequences: list[str]
    labels: np.ndarray
    meta: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    def take(self, index: np.ndarray) -> TaskSplit:
        """The rows ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        meta = self.meta.iloc[index].reset_index(drop=True) if self.meta is not None else None
        return TaskSplit([self.sequences[i] for i in index], self.labels[index], meta)


@dataclass
class Task:
    """A supervised task: three splits, a head kind, its metric and a record of skipped input rows."""

    name: str
    kind: str  # binary | multiclass | multilabel | regression | token_classification
    num_outputs: int  # head outputs (1 for binary)
    metric: str  # headline metric (mcc, accuracy, auroc, spearman, ...)
    train: TaskSplit
    dev: TaskSplit
    test: TaskSplit
    classes: list = field(default_factory=list)  # class names in id order
    source: str = ""
    notes: list[str] = field(default_factory=list)  # how the splits were made (carved dev, subsampling, ...)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIP_COLUMNS))

    def split(self, name: str) -> TaskSplit:
        """The split ``train``, ``dev`` or ``test``."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    def report(self, max_examples: int = 5) -> str:
        """A few lines: sizes, kind, metric, notes and the skipped rows (count per reason + examples)."""
        sizes = ", ".join(f"{s} {n:,}" for s, n in self.sizes().items())
        lines = [f"task {self.name}: {self.kind}, {self.num_outputs} output(s), metric {self.metric}; {sizes}"]
        lines += [f"  note: {n}" for n in self.notes]
        if len(self.skipped):
            lines.append(f"  skipped {len(self.skipped):,} input row(s) that could not be resolved to a sequence:")
            for reason, group in self.skipped.groupby(self.skipped["reason"].map(_reason_key), sort=False):
                lines.append(f"    {len(group):,} x {reason}")
            for _, row in self.skipped.head(max_examples).iterrows():
                lines.append(f"    e.g. {row['source']}: line {row['line']} (id {row['id']}): {row['reason']}")
        return "\n".join(lines)

    def check_learnable(self) -> None:
        """Refuse labels a model cannot learn or be scored on: one class only, or a constant regression target.

        Raises:
            InputError: naming the task's source, the split and the single value.
        """
        for name in SPLITS:
            labels = np.asarray(self.split(name).labels)
            if len(labels) == 0:
                continue
            if self.kind in ("binary", "multiclass") and labels.ndim == 1:
                found = np.unique(labels)
                if len(found) < 2:
                    value = self.classes[int(found[0])] if len(self.classes) > int(found[0]) else found[0]
                    raise InputError(
                        f"{self.source or self.name}: every {name} label is {value!r}; a classifier needs at least two "
                        f"classes in each split ({self.metric} is undefined otherwise)"
                    )
            elif self.kind == "regression" and name != "test":
                flat = labels.reshape(len(labels), -1)
                constant = np.nanstd(flat, axis=0) == 0
                if constant.any() and len(labels) > 1:
                    raise InputError(
                        f"{self.source or self.name}: the {name} target is constant ({flat[0, constant][0]:g}); "
                        "nothing to learn"
                    )

    def subsample(self, max_rows: dict[str, int | None], seed: int = 0) -> Task:
        """A copy with at most ``max_rows[split]`` rows per split (stratified by class, seeded); adds a note."""
        out = dataclasses.replace(self, notes=list(self.notes))
        for name, limit in (max_rows or {}).items():
            if limit is None or limit <= 0:
                continue
            split = self.split(name)
            if len(split) <= limit:
                continue
            idx = subsample_indices(split.labels, int(limit), seed, self.kind)
            setattr(out, name, split.take(idx))
            out.notes.append(f"{name} subsampled to {len(idx):,} of {len(split):,} rows (stratified, seed {seed})")
        return out


def _reason_key(reason: str) -> str:
    """Group key of a skip reason: the text before its first colon (``unknown chromosome``, ``outside the
    genome``, ``no genome``, ``empty interval``)."""
    return reason.split(":", 1)[0]


def subsample_indices(labels: np.ndarray, n: int, seed: int, kind: str = "binary") -> np.ndarray:
    """``n`` row indices drawn without replacement, proportionally per class for single-label classification
    (each class keeps at least one row where possible), uniformly otherwise; sorted."""
    rng = np.random.default_rng(seed)
    N = len(labels)
    if n >= N:
        return np.arange(N)
    if kind in ("binary", "multiclass") and labels.ndim == 1:
        classes, inverse = np.unique(labels, return_inverse=True)
        chosen = []
        quota = np.maximum(1, np.floor(np.bincount(inverse) * n / N)).astype(int)
        while quota.sum() > n:  # rounding up the tiny classes may overshoot
            quota[quota.argmax()] -= 1
        rest = n - quota.sum()
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            chosen.append(rng.choice(members, size=min(quota[c], len(members)), replace=False))
        chosen = np.concatenate(chosen)
        if rest > 0:
            left = np.setdiff1d(np.arange(N), chosen)
            chosen = np.concatenate([chosen, rng.choice(left, size=rest, replace=False)])
        return np.sort(chosen)
    return np.sort(rng.choice(N, size=n, replace=False))


def carve_split(labels: np.ndarray, fraction: float, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into (kept, carved) indices, carving ``fraction`` of each class (seeded, stratified for
    single-label classification)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the fraction carved for a missing split must be in (0, 1), got {fraction}")
    N = len(labels)
    rng = np.random.default_rng(seed)
    if kind in ("binary", "multiclass") and labels.ndim == 1:
        carved = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            k = round(fraction * len(members))
            carved.append(rng.choice(members, size=k, replace=False))
        carved = np.sort(np.concatenate(carved)) if carved else np.zeros(0, np.int64)
    else:
        carved = np.sort(rng.choice(N, size=round(fraction * N), replace=False))
    kept = np.setdiff1d(np.arange(N), carved)
    return kept, carved


# --------------------------------------------------------------------------------------------- label helpers
def kind_from_spec(label_spec, override: str, source: str) -> tuple[str, int]:
    kind = label_spec.kind
    if kind == "class":
        n = label_spec.num_classes
        if n < 2:
            raise InputError(f"{source}: only {n} class(es) in the labels; a classifier needs at least 2")
        out = ("binary", 1) if n == 2 else ("multiclass", n)
    elif kind == "regression":
        out = ("regression", 1)
    elif kind == "multi_task":
        out = ("regression", label_spec.num_classes)
    elif kind == "multi_label":
        out = ("multilabel", label_spec.num_classes)
    else:  # pragma: no cover - LabelSpec kinds are fixed
        raise InputError(f"{source}: unsupported label kind {kind!r}")
    if override:
        if override == "multiclass" and out[0] == "binary":
            return "multiclass", 2
        if override != out[0]:
            raise ConfigError(f"{source}: kind={override} but the labels look like {out[0]} ({label_spec.kind})")
    return out


def task_metric(spec: TaskSpec, kind: str, default: str | None = None) -> str:
    if spec.metric:
        return spec.metric
    if default and kind in ("binary", "multiclass"):
        return default
    return DEFAULT_METRIC[kind]


def class_names(label_spec) -> list:
    return [c.item() if isinstance(c, np.generic) else c for c in (label_spec.classes or [])]


def find_split_column(df: pd.DataFrame, spec: TaskSpec) -> str | None:
    if spec.split:
        if spec.split not in df.columns:
            raise InputError(f"{spec.path}: no split column {spec.split!r}; columns are {list(df.columns)}")
        return spec.split
    for col in df.columns:
        if col in ("chrom", "start", "end", "line"):
            continue
        values = set(df[col].astype(str).str.lower().unique())
        if values and values <= set(SPLIT_NAMES) and values & {"train", "training"}:
            return col
    return None


def assign_splits(n: int, labels: np.ndarray, split_values: list | None, spec: TaskSpec, kind: str,
                   source: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Row indices of train/dev/test from a split column, carving the missing ones."""
    notes = []
    if split_values is not None:
        names = []
        for i, v in enumerate(split_values):
            key = SPLIT_NAMES.get(str(v).strip().lower())
            if key is None:
                raise InputError(f"{source}: row {i + 1}: split {v!r} is not train/dev/valid/test")
            names.append(key)
        names = np.asarray(names)
        idx = {s: np.flatnonzero(names == s) for s in SPLITS}
    else:
        idx = {"train": np.arange(n), "dev": np.zeros(0, np.int64), "test": np.zeros(0, np.int64)}
    if len(idx["test"]) == 0:
        kept, carved = carve_split(labels[idx["train"]], spec.test_fraction, spec.seed + 1, kind)
        idx["test"], idx["train"] = idx["train"][carved], idx["train"][kept]
        notes.append(f"no test split: test carved from the rows ({spec.test_fraction:.0%}, seed {spec.seed + 1})")
    if len(idx["dev"]) == 0:
        kept, carved = carve_split(labels[idx["train"]], spec.dev_fraction, spec.seed, kind)
        idx["dev"], idx["train"] = idx["train"][carved], idx["train"][kept]
        notes.append(f"no dev split: dev carved from train ({spec.dev_fraction:.0%}, seed {spec.seed})")
    for s in SPLITS:
        if len(idx[s]) == 0:
            raise InputError(f"{source}: the {s} split is empty")
    return idx, notes

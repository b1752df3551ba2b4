"""Frozen-embedding protocols: embed sequences with any dnalm model, then fit a scikit-learn probe
(logistic regression for classes and labels, ridge regression for numbers) chosen on the dev split.

:func:`embed_sequences` remembers its last few results in the process, keyed by the backbone's weights (a digest of
every parameter and buffer), the pooling and the sequences: the frozen probe and the head initialisation of
fine-tuning (:mod:`finetune.head_init`) embed the same splits with the same frozen weights in one benchmark, and the
second pass is then free. Changed weights (a fine-tuned backbone) give another key.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from dnalm.errors import ConfigError
from finetune.data import encode_sequences
from finetune.heads import SequenceModel, build_inputs, pool_states
from finetune.metrics import compute_metrics, higher_is_better
from finetune.tasks import Task

DEFAULT_C = (0.01, 0.1, 1.0, 10.0)  # inverse regularisation strengths tried for logistic probes
DEFAULT_ALPHA = (0.1, 1.0, 10.0, 100.0, 1000.0)  # ridge penalties tried for regression probes


_EMBED_CACHE: OrderedDict = OrderedDict()  # key -> result, the most recent last
_EMBED_CACHE_SIZE = 6


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-1 of a module's parameters and buffers (names, shapes, dtypes and values)."""
    h = hashlib.sha1()
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _embed_key(backbone, sequences: list[str], pooling: str, per_token: bool, dtype) -> tuple:
    h = hashlib.sha1()
    for s in sequences:
        h.update(s.encode())
        h.update(b"\0")
    return (weights_digest(backbone), pooling, per_token, np.dtype(dtype).str, h.hexdigest())


def _copy(result):
    return [t.copy() for t in result] if isinstance(result, list) else result.copy()


@torch.no_grad()
def embed_sequences(
    model,
    sequences: list[str],
    pooling: str = "mean",
    per_token: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    dtype: np.dtype = np.float32,
) -> np.ndarray | list[np.ndarray]:
    """Frozen embeddings of DNA sequences.

    Args:
        model: a DNALM (``dnalm.load_model``) or a :class:`SequenceModel` (its backbone is used).
        sequences: DNA strings.
        pooling: mean | last | echo | rc_echo (see :mod:`finetune.heads`).
        per_token: one vector per base (of the pooled copy) instead of one per sequence.
        batch_size: sequences per forward pass (batched by length).
        progress: show a progress bar.

    Returns:
        (N, d_model) array, or with ``per_token`` a list of (L_i, d_model) arrays.
    """
    backbone = model.backbone if isinstance(model, SequenceModel) else model
    sequences = list(sequences)
    key = _embed_key(backbone, sequences, pooling, per_token, dtype)
    if key in _EMBED_CACHE:  # the same frozen weights embedded these sequences already in this process
        _EMBED_CACHE.move_to_end(key)
        return _copy(_EMBED_CACHE[key])
    result = _embed_sequences(backbone, sequences, pooling, per_token, batch_size, progress, dtype)
    _EMBED_CACHE[key] = _copy(result)
    while len(_EMBED_CACHE) > _EMBED_CACHE_SIZE:
        _EMBED_CACHE.popitem(last=False)
    return result


@torch.no_grad()
def _embed_sequences(backbone, sequences: list[str], pooling: str, per_token: bool, batch_size: int, progress: bool,
                     dtype) -> np.ndarray | list[np.ndarray]:
    tokenizer = getattr(backbone, "tokenizer", None)
    flat, offsets = encode_sequences(list(sequences), tokenizer)
    lengths = np.diff(offsets)
    order = np.argsort(lengths, kind="stable")
    was = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    d = getattr(backbone, "hidden_size", backbone.config.d_model)
    pooled = np.zeros((len(sequences), d), dtype=dtype) if not per_token else None
    tokens: list[np.ndarray] = [None] * len(sequences)  # type: ignore[list-item]
    for b in tqdm(range(0, len(order), batch_size), desc="embed", disable=not progress, leave=False):
        rows = order[b : b + batch_size]
        width = int(lengths[rows].max())
        ids = torch.full((len(rows), width), 4, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            seq = torch.from_numpy(flat[offsets[r] : offsets[r + 1]].astype(np.int64))
            ids[j, : len(seq)] = seq
            mask[j, : len(seq)] = 1
        ids, mask = ids.to(device), mask.to(device)
        inputs = build_inputs(ids, mask, pooling)
        h = backbone.embed(inputs.input_ids, inputs.attention_mask)  # (B, T, d)
        out = pool_states(h, inputs, pooling, per_token=per_token).float().cpu().numpy()
        for j, r in enumerate(rows):
            if per_token:
                tokens[r] = out[j, : lengths[r]].astype(dtype)
            else:
                pooled[r] = out[j]
    backbone.train(was)
    return tokens if per_token else pooled


def _estimator(kind: str, value: float, seed: int, scale: str = "standard"):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, StandardScaler

    if scale not in ("standard", "maxabs"):
        raise ConfigError(f"scale must be standard or maxabs, got {scale!r}")
    # standard: unit variance (embeddings); maxabs: keeps sparse k-mer frequencies sparse and rare k-mers small
    scaler = StandardScaler(with_mean=False) if scale == "standard" else MaxAbsScaler()
    if kind in ("binary", "multiclass", "token_classification"):
        return make_pipeline(scaler, LogisticRegression(C=value, max_iter=2000, random_state=seed))
    if kind == "multilabel":
        return make_pipeline(scaler, OneVsRestClassifier(LogisticRegression(C=value, max_iter=2000, random_state=seed)))
    if kind == "regression":
        return make_pipeline(scaler, Ridge(alpha=value, random_state=seed))
    raise ConfigError(f"no probe for head kind {kind!r}")


def probe_scores(estimator, X, kind: str, num_outputs: int) -> np.ndarray:
    """Scores in the layout of :func:`finetune.metrics.compute_metrics` (probabilities or values).

    Classes missing from the probe's training data get probability 0.
    """
    if kind == "regression":
        return np.asarray(estimator.predict(X), dtype=np.float64)
    proba = estimator.predict_proba(X)
    if kind == "multilabel":
        return proba
    classes = list(estimator.classes_)
    C = max(num_outputs, 2)
    full = np.zeros((proba.shape[0], C))
    for j, c in enumerate(classes):
        full[:, int(c)] = proba[:, j]
    return full[:, 1] if kind == "binary" else full


@dataclass
class ProbeResult:
    """A fitted probe: its estimator, the chosen penalty and its metrics."""

    estimator: object
    param: float  # C (logistic) or alpha (ridge)
    dev_metrics: dict
    test_metrics: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # dev metric of every penalty tried
    seconds: float = 0.0


def fit_probe(X_train, y_train, X_dev, y_dev, kind: str, metric: str, num_outputs: int = 2,
              grid: tuple[float, ...] | None = None, seed: int = 0, scale: str = "standard") -> ProbeResult:
    """Fit a probe for every penalty in ``grid`` and keep the one best on dev by ``metric``.

    Args:
        X_train, X_dev: (N, F) features (dense or scipy sparse).
        y_train, y_dev: labels as in :class:`finetune.tasks.TaskSplit` (token tasks: flattened first).
        kind: head kind; logistic regression for classes/labels, ridge for numbers.
        metric: the selection metric.
        num_outputs: classes of a multiclass task (probabilities for unseen classes are 0).
        grid: C values (logistic) or alphas (ridge); defaults DEFAULT_C / DEFAULT_ALPHA.
        scale: feature scaling before the linear model: ``standard`` (unit variance) or ``maxabs``.

    Returns:
        :class:`ProbeResult` with the refit-free best estimator (fit on train only).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    t0 = time.time()
    grid = tuple(grid or (DEFAULT_ALPHA if kind == "regression" else DEFAULT_C))
    eval_kind = "multiclass" if kind == "token_classification" else kind
    best, scores_by = None, {}
    sign = 1 if higher_is_better(metric) else -1
    for value in grid:
        est = _estimator(kind, value, seed, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            est.fit(X_train, y_train)
        dev = compute_metrics(eval_kind, y_dev, probe_scores(est, X_dev, kind, num_outputs))
        v = dev[metric]
        scores_by[value] = v
        if best is None or (not np.isnan(v) and (np.isnan(best[2][metric]) or sign * v > sign * best[2][metric])):
            best = (est, value, dev)
    return ProbeResult(best[0], best[1], best[2], grid=scores_by, seconds=time.time() - t0)


def _flatten_tokens(per_token: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(per_token)
    y = np.concatenate([labels[i, : len(t)] for i, t in enumerate(per_token)])
    keep = y != -100
    return X[keep], y[keep]


def run_probe(model, task: Task, pooling: str = "mean", batch_size: int = 64, grid=None, seed: int = 0,
              progress: bool = True, max_tokens: int = 200_000) -> ProbeResult:
    """The frozen-embedding baseline of a task: embed train/dev/test with ``model`` (``pooling``), fit a
    logistic/ridge probe on train, choose its penalty on dev, report test metrics.

    Per-nucleotide tasks probe every labelled base (at most ``max_tokens`` training bases, seeded).
    """
    t0 = time.time()
    per_token = task.kind == "token_classification"
    feats = {s: embed_sequences(model, task.split(s).sequences, pooling, per_token, batch_size, progress)
             for s in ("train", "dev", "test")}
    if per_token:
        data = {s: _flatten_tokens(feats[s], task.split(s).labels) for s in feats}
        X, y = data["train"]
        if len(y) > max_tokens:
            keep = np.sort(np.random.default_rng(seed).choice(len(y), max_tokens, replace=False))
            data["train"] = (X[keep], y[keep])
    else:
        data = {s: (feats[s], task.split(s).labels) for s in feats}
    res = fit_probe(*data["train"], *data["dev"], task.kind, task.metric, task.num_outputs, grid, seed)
    eval_kind = "multiclass" if per_token else task.kind
    res.test_metrics = compute_metrics(eval_kind, data["test"][1], probe_scores(res.estimator, data["test"][0], task.kind,
                                                                                task.num_outputs))
    res.seconds = time.time() - t0
    return res

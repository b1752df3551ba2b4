"""Batched inference over a task split: scores, metrics and a predictions table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from finetune.data import TaskDataset, collate_batch
from finetune.heads import SequenceModel
from finetune.metrics import compute_metrics
from finetune.tasks import TaskSplit


def _sort_by_length(dataset: TaskDataset) -> np.ndarray:
    return np.argsort(np.diff(dataset.offsets), kind="stable")


@torch.no_grad()
def predict_scores(model: SequenceModel, split: TaskSplit | TaskDataset, batch_size: int = 128,
                   progress: bool = True, desc: str = "predict") -> np.ndarray:
    """Scores of every row of a split, in row order (see :meth:`SequenceModel.scores`).

    Rows are batched by length so that little padding is computed.

    Returns:
        (N,) binary probabilities, (N, C) class/label probabilities, (N, k) or (N,) regression values, or
        (N, L_max, C) per-base probabilities (zeros past each sequence's end).
    """
    ds = split if isinstance(split, TaskDataset) else TaskDataset(split, model.config.kind, model.tokenizer)
    order = _sort_by_length(ds)
    model.eval()
    device = next(model.parameters()).device
    outs: list[np.ndarray] = [None] * len(ds)  # type: ignore[list-item]
    loader = DataLoader(torch.utils.data.Subset(ds, order.tolist()), batch_size=batch_size, collate_fn=collate_batch)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        scores = model.scores(model(batch["input_ids"].to(device), batch["attention_mask"].to(device))).float().cpu().numpy()
        for j, idx in enumerate(batch["index"].tolist()):
            outs[idx] = scores[j]
    if model.config.kind == "token_classification":
        width = ds.labels.shape[1]
        C = model.config.num_outputs
        full = np.zeros((len(ds), width, C), dtype=np.float32)
        lengths = np.diff(ds.offsets)
        for i, o in enumerate(outs):
            full[i, : lengths[i]] = o[: lengths[i]]
        return full
    return np.stack(outs) if outs else np.zeros((0,))


def evaluate(model: SequenceModel, split: TaskSplit, batch_size: int = 128, progress: bool = True,
             desc: str = "evaluate") -> tuple[dict, np.ndarray]:
    """Metrics of ``model`` on ``split`` and its scores (see :func:`predict_scores`)."""
    scores = predict_scores(model, split, batch_size, progress, desc)
    return compute_metrics(model.config.kind, split.labels, scores), scores


def predictions_table(split: TaskSplit, scores: np.ndarray, kind: str, classes: list) -> pd.DataFrame:
    """One row per sequence: meta columns, the label and the prediction (per-base tasks: the predicted
    classes of each base as one string of class ids, comma-separated)."""
    df = split.meta.copy() if split.meta is not None else pd.DataFrame(index=range(len(split)))
    df = df.reset_index(drop=True)
    labels = np.asarray(split.labels)
    if kind == "binary":
        df["label"] = labels
        df["score"] = scores
        df["prediction"] = (scores > 0.5).astype(int)
    elif kind == "multiclass":
        df["label"] = labels
        df["prediction"] = scores.argmax(-1)
        for j in range(scores.shape[1]):
            df[f"p_{classes[j] if j < len(classes) else j}"] = scores[:, j]
    elif kind == "multilabel":
        df["labels"] = [",".join(str(j) for j in np.flatnonzero(r)) for r in labels]
        df["predicted"] = [",".join(str(j) for j in np.flatnonzero(r > 0.5)) for r in scores]
    elif kind == "regression":
        y = labels.reshape(len(labels), -1)
        p = scores.reshape(len(scores), -1)
        for j in range(y.shape[1]):
            suffix = "" if y.shape[1] == 1 else f"_{j}"
            df[f"target{suffix}"] = y[:, j]
            df[f"prediction{suffix}"] = p[:, j]
    else:  # token_classification
        lengths = [len(s) for s in split.sequences]
        df["labels"] = [",".join(map(str, labels[i, : lengths[i]])) for i in range(len(labels))]
        df["predicted"] = [",".join(map(str, scores[i, : lengths[i]].argmax(-1))) for i in range(len(labels))]
    df.insert(0, "sequence", split.sequences)
    return df

"""Task metrics from scikit-learn and scipy: MCC, accuracy, AUROC/AUPRC, Spearman/Pearson.

Every function takes true labels and *scores* (probabilities for classification, values for regression), as
returned by :meth:`finetune.heads.SequenceModel.scores` or a scikit-learn probe's ``predict_proba``.
"""

from __future__ import annotations

import warnings

import numpy as np

from dnalm.errors import ConfigError

# metric name -> True when larger is better
METRICS = {
    "mcc": True,
    "accuracy": True,
    "f1": True,
    "auroc": True,
    "auprc": True,
    "spearman": True,
    "pearson": True,
    "r2": True,
    "mse": False,
    "loss": False,
}

# the headline metric of each head kind when a task names none
DEFAULT_METRIC = {
    "binary": "mcc",
    "multiclass": "mcc",
    "multilabel": "auroc",
    "regression": "spearman",
    "token_classification": "mcc",
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (for early stopping and model selection)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return METRICS[metric]


def _binary_ranking(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(np.unique(y)) < 2:
        return {"auroc": float("nan"), "auprc": float("nan")}
    return {"auroc": float(roc_auc_score(y, p)), "auprc": float(average_precision_score(y, p))}


def classification_metrics(kind: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    """Metrics of a classification task.

    Args:
        kind: binary | multiclass | multilabel | token_classification.
        labels: (N,) class ids (binary: 0/1); (N, C) multi-hot for multilabel; for token_classification
            (N, L) class ids with -100 at ignored positions (or already flattened (M,)).
        scores: (N,) probability of class 1 (binary); (N, C) class probabilities (multiclass, multilabel);
            (N, L, C) or (M, C) per-base probabilities (token_classification).

    Returns:
        binary: mcc, accuracy, f1, auroc, auprc (threshold 0.5 for the hard metrics); multiclass and
        token_classification: mcc, accuracy, f1 (macro), auroc (one-vs-rest macro, when every class occurs);
        multilabel: auroc and auprc (macro over labels with both a positive and a negative), mcc and f1 on
        all (example, label) pairs at 0.5, and n_labels_scored.
    """
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on constant predictions; MCC is then 0 by definition
        if kind == "binary":
            y = labels.astype(np.int64).reshape(-1)
            p = scores.reshape(-1)
            pred = (p > 0.5).astype(np.int64)
            out = {
                "mcc": float(matthews_corrcoef(y, pred)),
                "accuracy": float(accuracy_score(y, pred)),
                "f1": float(f1_score(y, pred, zero_division=0)),
            }
            out.update(_binary_ranking(y, p))
            return out
        if kind in ("multiclass", "token_classification"):
            if kind == "token_classification" and labels.ndim == 2:
                keep = labels != -100
                y = labels[keep]
                scores = scores[keep]  # (M, C)
            else:
                y = labels.reshape(-1)
            y = y.astype(np.int64)
            pred = scores.argmax(-1)
            out = {
                "mcc": float(matthews_corrcoef(y, pred)),
                "accuracy": float(accuracy_score(y, pred)),
                "f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            }
            C = scores.shape[-1]
            if len(np.unique(y)) == C and C > 2:
                p = scores / scores.sum(-1, keepdims=True)
                out["auroc"] = float(roc_auc_score(y, p, multi_class="ovr", average="macro"))
            elif C == 2 and len(np.unique(y)) == 2:
                out["auroc"] = float(roc_auc_score(y, scores[:, 1]))
            else:
                out["auroc"] = float("nan")
            return out
        if kind == "multilabel":
            y = labels.astype(np.int64)
            aurocs, auprcs = [], []
            for j in range(y.shape[1]):
                r = _binary_ranking(y[:, j], scores[:, j])
                if not np.isnan(r["auroc"]):
                    aurocs.append(r["auroc"])
                    auprcs.append(r["auprc"])
            pred = (scores > 0.5).astype(np.int64)
            return {
                "auroc": float(np.mean(aurocs)) if aurocs else float("nan"),
                "auprc": float(np.mean(auprcs)) if auprcs else float("nan"),
                "mcc": float(matthews_corrcoef(y.reshape(-1), pred.reshape(-1))),
                "f1": float(f1_score(y.reshape(-1), pred.reshape(-1), zero_division=0)),
                "n_labels_scored": len(aurocs),
            }
    raise ConfigError(f"not a classification kind: {kind!r}")


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict:
    """Spearman and Pearson correlation (mean over outputs), MSE and R^2 of (N,) or (N, k) predictions."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error, r2_score

    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64).reshape(y.shape)
    y2 = y.reshape(len(y), -1)
    p2 = p.reshape(len(p), -1)
    sp, pe = [], []
    for j in range(y2.shape[1]):
        if np.std(y2[:, j]) == 0 or np.std(p2[:, j]) == 0:
            sp.append(float("nan"))
            pe.append(float("nan"))
            continue
        sp.append(float(spearmanr(y2[:, j], p2[:, j]).statistic))
        pe.append(float(pearsonr(y2[:, j], p2[:, j]).statistic))
    return {
        "spearman": float(np.mean(sp)),
        "pearson": float(np.mean(pe)),
        "mse": float(mean_squared_error(y2, p2)),
        "r2": float(r2_score(y2, p2)) if len(y2) > 1 else float("nan"),
    }


def compute_metrics(kind: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    """Metrics of a task of head kind ``kind`` (see :func:`classification_metrics`,
    :func:`regression_metrics`)."""
    if kind == "regression":
        return regression_metrics(labels, scores)
    return classification_metrics(kind, labels, scores)

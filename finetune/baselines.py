"""The k-mer baseline: k-mer spectrum frequencies (k = 1..6 by default) + logistic/ridge regression; and the GC-content
baseline (one feature), which says how much of a task base composition alone explains.

Features are vectorised over all sequences at once (a rolling base-4 code over one flat id array); k-mers
containing N or crossing a sequence boundary are not counted. Each k's counts are divided by the number of
k-mers counted in that sequence, so the features are frequencies and sequences of any length compare.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from dnalm.errors import ConfigError
from dnalm.tokenizer import A_ID, C_ID, G_ID, T_ID
from finetune.data import encode_sequences
from finetune.metrics import compute_metrics
from finetune.probes import ProbeResult, fit_probe, probe_scores
from finetune.tasks import Task

DEFAULT_K = (1, 2, 3, 4, 5, 6)
DEFAULT_KMER_C = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)  # logistic C values tried (ridge: DEFAULT_ALPHA)

_BASE_CODE = np.full(256, 4, dtype=np.int64)  # token id -> 0..3 for A, C, G, T; 4 for anything else
_BASE_CODE[[A_ID, C_ID, G_ID, T_ID]] = [0, 1, 2, 3]


def kmer_names(ks: Sequence[int] = DEFAULT_K) -> list[str]:
    """Column names of :func:`kmer_features` (``AAA``, ``AAC``, ... for each k, in column order)."""
    names = []
    for k in ks:
        codes = np.arange(4**k)
        digits = [(codes // 4 ** (k - 1 - j)) % 4 for j in range(k)]
        names += ["".join("ACGT"[d[i]] for d in digits) for i in range(4**k)]
    return names


def kmer_features(sequences: Sequence[str], ks: Sequence[int] = DEFAULT_K, normalize: bool = True):
    """k-mer spectrum of each sequence as a sparse matrix.

    Args:
        sequences: DNA strings (upper or lower case; N and IUPAC codes break k-mers).
        ks: k values; column blocks in this order, each of width 4**k (lexicographic A<C<G<T).
        normalize: divide each k's counts by the number of k-mers counted in the sequence.

    Returns:
        scipy.sparse CSR matrix (N, sum(4**k)) of float32 frequencies (or counts).
    """
    import scipy.sparse as sp

    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1 or max(ks) > 12:
        raise ConfigError(f"k-mer sizes must be between 1 and 12, got {list(ks)}")
    flat, offsets = encode_sequences(list(sequences), None)
    codes = _BASE_CODE[flat]  # (total,) 0..3, 4 = not a base
    N = len(offsets) - 1
    total = len(codes)
    row_of = np.repeat(np.arange(N), np.diff(offsets))  # (total,)
    bad_cum = np.concatenate([[0], np.cumsum(codes == 4)])  # invalid bases before each position
    rows, cols, vals = [], [], []
    col0 = 0
    for k in ks:
        n_win = total - k + 1
        if n_win > 0:
            start = np.arange(n_win)
            ok = (row_of[start] == row_of[start + k - 1]) & (bad_cum[start + k] - bad_cum[start] == 0)
            code = np.zeros(n_win, dtype=np.int64)
            c = np.minimum(codes, 3)
            for j in range(k):
                code = code * 4 + c[j : j + n_win]
            r = row_of[start[ok]]
            cc = code[ok] + col0
            if normalize:
                per_row = np.bincount(r, minlength=N).astype(np.float64)
                w = 1.0 / per_row[r]
            else:
                w = np.ones(len(r))
            rows.append(r)
            cols.append(cc)
            vals.append(w)
        col0 += 4**k
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        r, c, v = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(N, col0), dtype=np.float32)


def kmer_baseline(task: Task, ks: Sequence[int] = DEFAULT_K, grid=None, seed: int = 0) -> ProbeResult:
    """k-mer frequencies (max-abs scaled) + logistic regression (classes, labels) or ridge regression (numbers);
    the penalty is chosen on the dev split by the task metric; test metrics in the result.

    Per-nucleotide tasks are not supported (a k-mer spectrum has no per-base output).
    """
    if task.kind == "token_classification":
        raise ConfigError(f"task {task.name}: the k-mer baseline has no per-nucleotide form")
    t0 = time.time()
    X = {s: kmer_features(task.split(s).sequences, ks) for s in ("train", "dev", "test")}
    y = {s: task.split(s).labels for s in X}
    if grid is None and task.kind != "regression":
        grid = DEFAULT_KMER_C
    res = fit_probe(X["train"], y["train"], X["dev"], y["dev"], task.kind, task.metric, task.num_outputs, grid, seed,
                    scale="maxabs")
    res.test_metrics = compute_metrics(task.kind, y["test"], probe_scores(res.estimator, X["test"], task.kind,
                                                                          task.num_outputs))
    res.seconds = time.time() - t0
    return res


def gc_baseline(task: Task, seed: int = 0) -> ProbeResult:
    """GC content (G+C over called bases) as the only feature + logistic (classes, labels) or ridge (numbers); the
    penalty chosen on dev by the task metric; test metrics in the result."""
    if task.kind == "token_classification":
        raise ConfigError(f"task {task.name}: the GC baseline has no per-nucleotide form")
    t0 = time.time()

    def gc(seqs) -> np.ndarray:
        f = kmer_features(seqs, [1], normalize=False).toarray()  # A C G T counts
        return ((f[:, 1] + f[:, 2]) / np.maximum(f.sum(1), 1))[:, None]

    X = {s: gc(task.split(s).sequences) for s in ("train", "dev", "test")}
    y = {s: task.split(s).labels for s in X}
    grid = None if task.kind == "regression" else DEFAULT_KMER_C
    res = fit_probe(X["train"], y["train"], X["dev"], y["dev"], task.kind, task.metric, task.num_outputs, grid, seed)
    res.test_metrics = compute_metrics(task.kind, y["test"], probe_scores(res.estimator, X["test"], task.kind,
                                                                          task.num_outputs))
    res.seconds = time.time() - t0
    return res

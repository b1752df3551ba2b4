"""Metrics for generated CREs: edit-distance diversity and novelty, k-mer spectrum divergence.

Edit distances use rapidfuzz's bit-parallel Levenshtein (C++); :func:`levenshtein_reference` is the plain
dynamic programme the fast path is tested against. Motif scanning is the project's one scanner,
:mod:`dnalm.explain.motifs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from dnalm.errors import InputError

# ------------------------------------------------------------------------------------------------- edit distance


def _rapidfuzz():
    try:
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("edit distances need the 'rapidfuzz' package (pip install rapidfuzz)") from None
    return process, Levenshtein


def levenshtein_reference(a: str, b: str) -> int:
    """Levenshtein distance (unit insert/delete/substitute) by the textbook dynamic programme."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance of two strings (rapidfuzz)."""
    _, lev = _rapidfuzz()
    return int(lev.distance(a, b))


def pairwise_distances(queries: Sequence[str], choices: Sequence[str], chunk: int = 256) -> np.ndarray:
    """(len(queries), len(choices)) int32 Levenshtein distance matrix, computed in row chunks."""
    process, lev = _rapidfuzz()
    out = np.zeros((len(queries), len(choices)), dtype=np.int32)
    for i in range(0, len(queries), chunk):
        out[i : i + chunk] = process.cdist(queries[i : i + chunk], choices, scorer=lev.distance, dtype=np.int32, workers=1)
    return out


def diversity(sequences: Sequence[str], max_pairs: int = 20000, seed: int = 0) -> dict:
    """Mean pairwise edit distance within a set (all pairs, or ``max_pairs`` sampled pairs when there are more).

    Returns:
        ``{"mean_pairwise_distance", "mean_pairwise_distance_per_nt", "min_pairwise_distance", "pairs",
        "exact_duplicates"}``.
    """
    n = len(sequences)
    if n < 2:
        return {"mean_pairwise_distance": float("nan"), "mean_pairwise_distance_per_nt": float("nan"),
                "min_pairwise_distance": float("nan"), "pairs": 0, "exact_duplicates": 0}
    _, lev = _rapidfuzz()
    total = n * (n - 1) // 2
    if total <= max_pairs:
        d = pairwise_distances(sequences, sequences)
        iu = np.triu_indices(n, 1)
        dist = d[iu].astype(float)
        mean_len = np.array([(len(sequences[i]) + len(sequences[j])) / 2 for i, j in zip(*iu)])
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n - 1, max_pairs)
        j = j + (j >= i)  # a partner different from i
        dist = np.array([lev.distance(sequences[a], sequences[b]) for a, b in zip(i, j)], dtype=float)
        mean_len = np.array([(len(sequences[a]) + len(sequences[b])) / 2 for a, b in zip(i, j)])
    return {
        "mean_pairwise_distance": float(dist.mean()),
        "mean_pairwise_distance_per_nt": float((dist / mean_len).mean()),
        "min_pairwise_distance": float(dist.min()),
        "pairs": len(dist),
        "exact_duplicates": int(n - len(set(sequences))),
    }


def nearest_distances(queries: Sequence[str], reference: Sequence[str], chunk: int = 64, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Edit distance from each query to its nearest reference sequence, and that reference's index.

    Exact: every query is compared with every reference sequence by rapidfuzz's bit-parallel Levenshtein
    (about 10^7 pairs of 100-nt strings per minute per core); exact copies are found first by hashing.

    Returns:
        ``(distance (Q,), index (Q,))``.
    """
    ref_index = {s: i for i, s in enumerate(reference)}
    dist = np.full(len(queries), -1, dtype=np.int64)
    idx = np.full(len(queries), -1, dtype=np.int64)
    todo = []
    for q, s in enumerate(queries):
        if s in ref_index:
            dist[q], idx[q] = 0, ref_index[s]
        else:
            todo.append(q)
    it = range(0, len(todo), chunk)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="novelty (nearest training sequence)", unit="chunk")
    ref = list(reference)
    for start in it:
        qs = todo[start : start + chunk]
        d = pairwise_distances([queries[q] for q in qs], ref)
        arg = d.argmin(1)
        dist[qs] = d[np.arange(len(qs)), arg]
        idx[qs] = arg
    return dist, idx


# ------------------------------------------------------------------------------------------------------- k-mers


def kmer_spectrum(sequences: Sequence[str], k: int) -> np.ndarray:
    """Pooled frequencies of all 4**k k-mers (overlapping windows of A/C/G/T only), summing to 1.

    k-mer index: base-4 number with A=0, C=1, G=2, T=3 and the first base most significant.
    """
    lut = np.full(256, -1, dtype=np.int64)
    for v, b in enumerate("ACGT"):
        lut[ord(b)] = v
        lut[ord(b.lower())] = v
    counts = np.zeros(4**k, dtype=np.float64)
    for s in sequences:
        x = lut[np.frombuffer(s.encode("latin-1"), dtype=np.uint8)]
        if len(x) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(x, k)  # (L-k+1, k)
        ok = (windows >= 0).all(1)
        codes = windows[ok] @ (4 ** np.arange(k - 1, -1, -1))
        counts += np.bincount(codes, minlength=4**k)
    total = counts.sum()
    return counts / total if total > 0 else counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) of two distributions (normalised first)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def kmer_divergence(generated: Sequence[str], real: Sequence[str], k: int) -> float:
    """JS divergence (bits) between the pooled k-mer spectra of two sequence sets."""
    return js_divergence(kmer_spectrum(generated, k), kmer_spectrum(real, k))


# ------------------------------------------------------------------------------------------------------- k-mers


def all_kmers(k: int) -> list[str]:
    """Every k-mer in the order of :func:`kmer_spectrum`."""
    return ["".join(t) for t in itertools.product("ACGT", repeat=k)]

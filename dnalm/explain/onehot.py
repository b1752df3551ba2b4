"""One-hot DNA arrays (N, 4, L) in A, C, G, T channel order, and dinucleotide-preserving shuffles for baselines.

Convention: channel order A, C, G, T; an N (or any non-ACGT base) is an all-zero column; padding past a
sequence's end is all-zero too (a mask says which columns are real).

The shuffle is tangermeme's ``dinucleotide_shuffle`` (an Altschul-Erickson Eulerian-path shuffle that keeps
every dinucleotide count exactly; numba-compiled, cached after its first call). It needs every column of the
shuffled range to be one-hot, so N columns are kept in place and only the ACGT runs between them are shuffled
(a run whose dinucleotides allow only its own order is kept as it is).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BASES = "ACGT"
_LUT = np.full(256, -1, dtype=np.int64)
for _i, _b in enumerate(BASES):
    _LUT[ord(_b)] = _LUT[ord(_b.lower())] = _i


def one_hot(sequences: Sequence[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-hot encode sequences, right padded with zero columns.

    Args:
        sequences: DNA strings (case-insensitive; non-ACGT letters become all-zero columns).
        length: pad/require this length (default: the longest sequence).

    Returns:
        (x, mask): x (N, 4, L) float32, mask (N, L) bool (True on the sequence's own columns).
    """
    L = length if length is not None else max((len(s) for s in sequences), default=0)
    x = np.zeros((len(sequences), 4, L), dtype=np.float32)
    mask = np.zeros((len(sequences), L), dtype=bool)
    for i, s in enumerate(sequences):
        if len(s) > L:
            raise ValueError(f"sequence {i} has {len(s)} bases, more than length={L}")
        idx = _LUT[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]  # (len,)
        ok = idx >= 0
        x[i, idx[ok], np.nonzero(ok)[0]] = 1.0
        mask[i, : len(s)] = True
    return x, mask


def decode(x: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """Inverse of :func:`one_hot` (all-zero columns inside the mask decode to N)."""
    x = np.asarray(x)
    letters = np.array(list(BASES + "N"))
    idx = np.where(x.sum(1) > 0, x.argmax(1), 4)  # (N, L)
    out = []
    for i in range(x.shape[0]):
        n = int(mask[i].sum()) if mask is not None else x.shape[2]
        out.append("".join(letters[idx[i, :n]]))
    return out


def reverse_complement(x: np.ndarray) -> np.ndarray:
    """Reverse complement of one-hot arrays (..., 4, L) of full length (A<->T and C<->G by channel flip)."""
    return np.ascontiguousarray(np.asarray(x)[..., ::-1, ::-1])


def dinucleotide_shuffles(x: np.ndarray, mask: np.ndarray | None = None, n: int = 8, seed: int = 0,
                          index: np.ndarray | None = None) -> np.ndarray:
    """``n`` dinucleotide-preserving shuffles of each sequence (baselines for IG / DeepLIFT-SHAP).

    Args:
        x: (N, 4, L) one-hot.
        mask: (N, L) real columns (default: all).
        n: shuffles per sequence.
        seed: random seed (shuffle ``k`` of sequence ``i`` depends only on the seed and ``index[i]``).
        index: (N,) the sequences' numbers in their input (default 0..N-1), so that a sequence gets the same
            shuffles in a shard of the input as in the whole.

    Returns:
        (N, n, 4, L) float32; N columns and padding are kept where they are.
    """
    import torch
    from tangermeme.ersatz import dinucleotide_shuffle

    x = np.asarray(x, dtype=np.float32)
    N, _, L = x.shape
    mask = np.ones((N, L), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out = np.repeat(x[:, None], n, axis=1)  # (N, n, 4, L)
    index = np.arange(N) if index is None else np.asarray(index, dtype=np.int64)
    for i in range(N):
        real = (x[i].sum(0) > 0) & mask[i]  # (L,) one-hot columns
        # shuffle each maximal run of one-hot columns (N bases and padding stay put)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], real.astype(np.int8), [0]])))
        for start, end in zip(edges[::2], edges[1::2]):
            if end - start < 3:
                continue
            run = torch.from_numpy(x[i : i + 1, :, start:end].astype(np.int8))  # (1, 4, W)
            try:
                shuf = dinucleotide_shuffle(run, n=n, random_state=seed + 7919 * int(index[i]) + start)  # (1, n, 4, W)
            except ValueError:  # the run has a single dinucleotide-preserving order (e.g. ACGTACGT): keep it
                continue
            out[i, :, :, start:end] = shuf[0].numpy().astype(np.float32)
    return out

"""Metrics for generated CREs: edit-distance diversity and novelty, k-mer spectrum divergence, motif scanning.

Edit distances use rapidfuzz's bit-parallel Levenshtein (C++); :func:`levenshtein_reference` is the plain
dynamic programme the fast path is tested against. Motif scanning scores every position of both strands with all
position weight matrices at once (one ``conv1d``); :func:`scan_reference` is the per-motif Biopython scan it is
tested against.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnalm.errors import InputError
from dnalm.io.compression import open_maybe_gzip

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


# ------------------------------------------------------------------------------------------------------- motifs


@dataclass
class MotifSet:
    """Position weight matrices (log-odds, bits) read from a JASPAR/TRANSFAC file."""

    ids: list[str]  # matrix ids (e.g. MA0001.3)
    names: list[str]  # TF names
    tax_groups: list[str]  # JASPAR tax_group ('' if absent)
    pwms: list[np.ndarray]  # each (4, width) log2 odds vs a uniform background, A/C/G/T rows
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: Sequence[int]) -> MotifSet:
        return MotifSet([self.ids[i] for i in keep], [self.names[i] for i in keep], [self.tax_groups[i] for i in keep],
                        [self.pwms[i] for i in keep], self.source)


def read_motifs(path: str | os.PathLike, tax_group: str | None = None, pseudocount: float = 0.5) -> MotifSet:
    """Read count matrices from a TRANSFAC (JASPAR export) or JASPAR file (gzip ok) with Biopython.

    Args:
        path: motif file (``.transfac``/``.jaspar``, optionally ``.gz``); a directory picks the single motif file
            in it.
        tax_group: keep only JASPAR matrices of this tax group (e.g. ``fungi``, ``vertebrates``).
        pseudocount: added to every count before the log-odds.

    Returns:
        A :class:`MotifSet` of log2-odds matrices against a uniform background.
    """
    from Bio import motifs

    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if any(x in p.name for x in (".transfac", ".jaspar", ".txt"))]
        if len(files) != 1:
            raise InputError(f"{path}: expected one motif file in the folder, found {[p.name for p in files]}")
        path = files[0]
    if not path.exists():
        raise InputError(f"{path}: no such file")
    name = path.name.lower().removesuffix(".gz")
    fmt = "transfac" if "transfac" in name or name.endswith(".dat") else "jaspar"
    try:
        with open_maybe_gzip(path, "rt") as fh:
            recs = motifs.parse(fh, fmt, strict=False) if fmt == "transfac" else motifs.parse(fh, fmt)
    except (ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot parse as {fmt.upper()} motifs: {exc}") from None
    ids, names, taxa, pwms = [], [], [], []
    for i, m in enumerate(recs):
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=float)  # (4, W)
        if counts.size == 0:
            raise InputError(f"{path}: motif {i + 1} has no matrix rows")
        tax = ""
        cc = m.get("CC", []) if hasattr(m, "get") else []
        for line in cc if isinstance(cc, list) else [cc]:
            if str(line).startswith("tax_group:"):
                tax = str(line).split(":", 1)[1]
        if tax_group and tax != tax_group:
            continue
        freq = (counts + pseudocount) / (counts + pseudocount).sum(0, keepdims=True)
        pwms.append(np.log2(freq / 0.25))
        mid = m.get("AC") if hasattr(m, "get") else None
        ids.append(str(mid or getattr(m, "matrix_id", None) or f"motif{i + 1}"))
        names.append(str((m.get("ID") if hasattr(m, "get") else None) or getattr(m, "name", "") or ids[-1]))
        taxa.append(tax)
    if not ids:
        raise InputError(f"{path}: no motifs{f' of tax group {tax_group!r}' if tax_group else ''}")
    return MotifSet(ids, names, taxa, pwms, str(path))


def _thresholds(motifs: MotifSet, relative: float) -> np.ndarray:
    """Score threshold per motif: min + relative * (max - min) of its achievable scores."""
    lo = np.array([p.min(0).sum() for p in motifs.pwms])
    hi = np.array([p.max(0).sum() for p in motifs.pwms])
    return lo + relative * (hi - lo)


def scan_motifs(sequences: Sequence[str], motifs: MotifSet, relative_threshold: float = 0.85, batch_size: int = 256) -> np.ndarray:
    """Hits of every motif in every sequence (both strands), vectorised as one conv1d over all matrices.

    A hit is a window (fully inside the sequence) whose log-odds score reaches ``min + relative_threshold *
    (max - min)`` of the motif's score range; a palindromic site counts once per strand.

    Returns:
        (n_sequences, n_motifs) int hit counts.
    """
    import torch
    import torch.nn.functional as F

    from generate.oracle import one_hot

    width = max(p.shape[1] for p in motifs.pwms)
    w = np.zeros((len(motifs), 4, width), dtype=np.float32)
    for i, p in enumerate(motifs.pwms):
        w[i, :, : p.shape[1]] = p
    mlen = torch.tensor([p.shape[1] for p in motifs.pwms])
    thr = torch.from_numpy(_thresholds(motifs, relative_threshold)).float() - 1e-4
    weight = torch.from_numpy(w)
    rc_weight = weight.flip(1).flip(2)  # reverse complement: A<->T, C<->G by channel flip, positions reversed
    # rc matrices are right-aligned after the flip; shift them left so both start at offset 0
    rc = torch.zeros_like(rc_weight)
    for i, L in enumerate(mlen.tolist()):
        rc[i, :, :L] = rc_weight[i, :, width - L :]
    hits = np.zeros((len(sequences), len(motifs)), dtype=np.int64)
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        x = one_hot(chunk)  # (B, 4, Lmax), padding = zeros
        lengths = torch.tensor([len(s) for s in chunk])
        x = F.pad(x, (0, width))
        for wmat in (weight, rc):
            scores = F.conv1d(x, wmat)  # (B, M, Lmax + 1)
            pos = torch.arange(scores.shape[-1])
            inside = pos[None, None, :] + mlen[None, :, None] <= lengths[:, None, None]  # window within the sequence
            hit = (scores >= thr[None, :, None]) & inside
            hits[start : start + len(chunk)] += hit.sum(-1).numpy()
    return hits


def scan_reference(sequence: str, pwm: np.ndarray, threshold: float) -> int:
    """Hits of one matrix on both strands by Biopython's PSSM scan (reference for :func:`scan_motifs`)."""
    from Bio.motifs.matrix import PositionSpecificScoringMatrix
    from Bio.Seq import Seq

    pssm = PositionSpecificScoringMatrix("ACGT", {b: list(pwm[i]) for i, b in enumerate("ACGT")})
    n = 0
    for strand_seq in (sequence, str(Seq(sequence).reverse_complement())):
        if len(strand_seq) < pssm.length:
            continue
        scores = np.atleast_1d(pssm.calculate(strand_seq))
        n += int(np.sum(scores >= threshold - 1e-4))
    return n


def all_kmers(k: int) -> list[str]:
    """Every k-mer in the order of :func:`kmer_spectrum`."""
    return ["".join(t) for t in itertools.product("ACGT", repeat=k)]

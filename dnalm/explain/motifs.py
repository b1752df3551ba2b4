"""Motif matrices and scanning: JASPAR/TRANSFAC/MEME reading, FIMO-style hits with exact p-values, hit counts.

This is the one motif scanner of the project: ``dnalm motifs scan`` and CRE evaluation (``generate.evaluate``)
both use it. Every window of both strands is scored against all matrices at once (one ``conv1d``), and a score's
p-value is read from the exact null distribution of the matrix's scores under the background, computed by
dynamic programming over the matrix columns on a grid of ``bin_size`` bits (the method of FIMO, Grant et al.
2011). memelite's ``fimo`` computes the same thing; it is not used here because its numba kernels compile on the
first call of a fresh environment (47 s measured on this loaded 2-core machine, per environment), it returns only
hits below a threshold (CRE evaluation needs relative-score counts as well), and the scanner here was already
the tested project implementation. Scores are log2 odds against a uniform background with a pseudocount; an N
column scores 0 for every matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnalm.errors import InputError
from dnalm.io.compression import open_maybe_gzip


@dataclass
class MotifSet:
    """Position weight matrices (log-odds, bits) read from a JASPAR/TRANSFAC/MEME file."""

    ids: list[str]  # matrix ids (e.g. MA0001.3)
    names: list[str]  # TF names
    tax_groups: list[str]  # JASPAR tax_group ('' if absent)
    pwms: list[np.ndarray]  # each (4, width) log2 odds vs a uniform background, A/C/G/T rows
    source: str = ""
    ppms: list[np.ndarray] = field(default_factory=list)  # each (4, width) probabilities (columns sum to 1)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: Sequence[int]) -> MotifSet:
        return MotifSet([self.ids[i] for i in keep], [self.names[i] for i in keep], [self.tax_groups[i] for i in keep],
                        [self.pwms[i] for i in keep], self.source, [self.ppms[i] for i in keep] if self.ppms else [])

    def index(self, name_or_id: str) -> int:
        """Position of a motif by id or name (case-insensitive name match)."""
        for i, (a, b) in enumerate(zip(self.ids, self.names)):
            if name_or_id == a or name_or_id.lower() == b.lower():
                return i
        raise KeyError(name_or_id)


def motif_set(matrices: dict[str, np.ndarray], pseudocount: float = 0.0, source: str = "") -> MotifSet:
    """A :class:`MotifSet` from named count or probability matrices, each (4, width)."""
    ids, pwms, ppms = [], [], []
    for name, counts in matrices.items():
        counts = np.asarray(counts, dtype=float)
        if counts.ndim != 2 or counts.shape[0] != 4 or (counts < 0).any():
            raise InputError(f"motif {name}: expected a non-negative (4, width) matrix, got shape {counts.shape}")
        freq = (counts + pseudocount) / (counts + pseudocount).sum(0, keepdims=True)
        ids.append(name)
        ppms.append(freq)
        pwms.append(np.log2(np.maximum(freq, 1e-9) / 0.25))
    return MotifSet(ids, list(ids), [""] * len(ids), pwms, source, ppms)


def read_motifs(path: str | os.PathLike, tax_group: str | None = None, pseudocount: float = 0.5) -> MotifSet:
    """Read count matrices from a TRANSFAC (JASPAR export), JASPAR or MEME file (gzip ok) with Biopython.

    Args:
        path: motif file (``.transfac``/``.jaspar``/``.meme``, optionally ``.gz``); a directory picks the single
            motif file in it.
        tax_group: keep only JASPAR matrices of this tax group (e.g. ``fungi``, ``vertebrates``).
        pseudocount: added to every count before the log-odds (MEME probabilities are scaled by their nsites,
            20 where absent, first).

    Returns:
        A :class:`MotifSet` of log2-odds matrices against a uniform background.
    """
    from Bio import motifs

    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if any(x in p.name for x in (".transfac", ".jaspar", ".meme", ".txt"))]
        if len(files) != 1:
            raise InputError(f"{path}: expected one motif file in the folder, found {[p.name for p in files]}")
        path = files[0]
    if not path.exists():
        raise InputError(f"{path}: no such file")
    name = path.name.lower().removesuffix(".gz")
    fmt = "transfac" if "transfac" in name or name.endswith(".dat") else "minimal" if "meme" in name else "jaspar"
    try:
        with open_maybe_gzip(path, "rt") as fh:
            recs = list(motifs.parse(fh, fmt, strict=False) if fmt == "transfac" else motifs.parse(fh, fmt))
    except (ValueError, KeyError, AttributeError) as exc:
        raise InputError(f"{path}: cannot parse as {fmt.upper()} motifs: {exc}") from None
    meme_names = []  # Biopython's MEME reader keeps only the first word of a MOTIF line: read "MOTIF id alt" here
    if fmt == "minimal":
        with open_maybe_gzip(path, "rt") as fh:
            meme_names = [line.split()[1:3] for line in fh if line.startswith("MOTIF") and len(line.split()) > 1]
    ids, names, taxa, pwms, ppms = [], [], [], [], []
    for i, m in enumerate(recs):
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=float)  # (4, W)
        if counts.size == 0:
            raise InputError(f"{path}: motif {i + 1} has no matrix rows")
        if fmt == "minimal" and counts.sum(0).max() <= 1.0 + 1e-6:  # probabilities: back to counts
            counts = counts * float(getattr(m, "num_occurrences", 0) or 20)
        tax = ""
        cc = m.get("CC", []) if hasattr(m, "get") else []
        for line in cc if isinstance(cc, list) else [cc]:
            if str(line).startswith("tax_group:"):
                tax = str(line).split(":", 1)[1]
        if tax_group and tax != tax_group:
            continue
        freq = (counts + pseudocount) / (counts + pseudocount).sum(0, keepdims=True)
        ppms.append(freq)
        pwms.append(np.log2(freq / 0.25))
        if fmt == "minimal" and len(meme_names) == len(recs):
            ids.append(meme_names[i][0])
            names.append(meme_names[i][-1])
            taxa.append(tax)
            continue
        mid = m.get("AC") if hasattr(m, "get") else None
        ids.append(str(mid or getattr(m, "matrix_id", None) or getattr(m, "id", None) or f"motif{i + 1}"))
        names.append(str((m.get("ID") if hasattr(m, "get") else None) or getattr(m, "name", "") or ids[-1]))
        taxa.append(tax)
    if not ids:
        raise InputError(f"{path}: no motifs{f' of tax group {tax_group!r}' if tax_group else ''}")
    return MotifSet(ids, names, taxa, pwms, str(path), ppms)


def write_meme(motifs: MotifSet, path: str | os.PathLike) -> Path:
    """Write the probability matrices in MEME minimal format (uniform background), atomically."""
    from dnalm.utils import atomic_write

    with atomic_write(path) as fh:
        fh.write("MEME version 5\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\n"
                 "A 0.25 C 0.25 G 0.25 T 0.25\n\n")
        for mid, name, ppm in zip(motifs.ids, motifs.names, motifs.ppms):
            fh.write(f"MOTIF {mid} {name}\nletter-probability matrix: alength= 4 w= {ppm.shape[1]} nsites= 20 E= 0\n")
            for col in ppm.T:
                fh.write(" " + "  ".join(f"{v:.6f}" for v in col) + "\n")
            fh.write("\n")
    return Path(path)


# ------------------------------------------------------------------------------------------------ score null
def score_null(pwm: np.ndarray, bin_size: float = 0.01) -> tuple[int, np.ndarray]:
    """Exact distribution of a matrix's score on random sequence (uniform background), on a grid.

    Column scores are rounded to multiples of ``bin_size`` bits; the distribution of their sum over i.i.d.
    uniform bases is the convolution of the columns' distributions (dynamic programming, as FIMO).

    Returns:
        (offset, tail): ``tail[k]`` = P(score >= (offset + k) * bin_size), non-increasing in ``k``.
    """
    ints = np.round(np.asarray(pwm, dtype=float) / bin_size).astype(np.int64)  # (4, W)
    cur_lo, dist = 0, np.ones(1)  # dist[k] = P(grid score of the columns so far == cur_lo + k)
    for j in range(ints.shape[1]):
        col = ints[:, j]
        c_lo, c_hi = int(col.min()), int(col.max())
        new = np.zeros(len(dist) + c_hi - c_lo)
        for v in col:
            new[v - c_lo : v - c_lo + len(dist)] += 0.25 * dist
        dist, cur_lo = new, cur_lo + c_lo
    tail = np.cumsum(dist[::-1])[::-1]
    return cur_lo, np.minimum(tail, 1.0)


def score_pvalues(pwm: np.ndarray, scores: np.ndarray, bin_size: float = 0.01, null: tuple | None = None) -> np.ndarray:
    """P(score >= s) on random sequence for each of ``scores`` (bits; see :func:`score_null`)."""
    offset, tail = null if null is not None else score_null(pwm, bin_size)
    k = np.round(np.asarray(scores, dtype=float) / bin_size).astype(np.int64) - offset
    out = np.where(k < 0, 1.0, tail[np.clip(k, 0, len(tail) - 1)])
    return np.where(k >= len(tail), 0.0, out)


# ------------------------------------------------------------------------------------------------ scanning
def relative_thresholds(motifs: MotifSet, relative: float) -> np.ndarray:
    """Score threshold per motif: min + relative * (max - min) of its achievable scores."""
    lo = np.array([p.min(0).sum() for p in motifs.pwms])
    hi = np.array([p.max(0).sum() for p in motifs.pwms])
    return lo + relative * (hi - lo)


def _weights(motifs: MotifSet):
    """Matrices padded to a common width (M, 4, Wmax), their reverse complements (left aligned) and widths."""
    import torch

    width = max(p.shape[1] for p in motifs.pwms)
    w = np.zeros((len(motifs), 4, width), dtype=np.float32)
    rc = np.zeros_like(w)
    for i, p in enumerate(motifs.pwms):
        w[i, :, : p.shape[1]] = p
        rc[i, :, : p.shape[1]] = p[::-1, ::-1]  # reverse complement: A<->T, C<->G by channel flip, positions reversed
    return torch.from_numpy(w), torch.from_numpy(rc), np.array([p.shape[1] for p in motifs.pwms]), width


def window_scores(x: np.ndarray, motifs: MotifSet, batch_size: int = 256):
    """Scores of every window on both strands: yields (start_row, scores (B, 2, M, L), inside (B, M, L)).

    ``scores[:, 0, m, i]`` is the + strand window starting at ``i``; ``scores[:, 1, m, i]`` the reverse complement
    of the same window. ``inside`` marks windows that lie fully inside the (unpadded) sequence.
    """
    import torch
    import torch.nn.functional as F

    weight, rc, mlen, width = _weights(motifs)
    x, lengths = (x[0], x[1]) if isinstance(x, tuple) else (x, None)
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[start : start + batch_size], dtype=np.float32))  # (B, 4, L)
        L = xb.shape[-1]
        n = torch.as_tensor(lengths[start : start + batch_size]) if lengths is not None else torch.full((len(xb),), L)
        xp = F.pad(xb, (0, width))
        s = torch.stack([F.conv1d(xp, weight)[..., :L], F.conv1d(xp, rc)[..., :L]], 1)  # (B, 2, M, L)
        pos = torch.arange(L)
        inside = pos[None, None, :] + torch.from_numpy(mlen)[None, :, None] <= n[:, None, None]  # (B, M, L)
        yield start, s.numpy(), inside.numpy()


def scan_motifs(sequences: Sequence[str], motifs: MotifSet, relative_threshold: float = 0.85, batch_size: int = 256) -> np.ndarray:
    """Hits of every motif in every sequence (both strands) at a relative score threshold.

    A hit is a window (fully inside the sequence) whose log-odds score reaches ``min + relative_threshold *
    (max - min)`` of the motif's score range; a palindromic site counts once per strand.

    Returns:
        (n_sequences, n_motifs) int hit counts.
    """
    from dnalm.explain.onehot import one_hot

    thr = relative_thresholds(motifs, relative_threshold) - 1e-4
    hits = np.zeros((len(sequences), len(motifs)), dtype=np.int64)
    for start in range(0, len(sequences), batch_size):
        chunk = list(sequences[start : start + batch_size])
        x, mask = one_hot(chunk)
        for _, s, inside in window_scores((x, mask.sum(1)), motifs, batch_size=len(chunk) or 1):
            hit = (s >= thr[None, None, :, None]) & inside[:, None]
            hits[start : start + len(chunk)] += hit.sum((1, 3))
    return hits


def scan(
    sequences: Sequence[str] | np.ndarray,
    motifs: MotifSet,
    pvalue: float = 1e-4,
    names: Sequence[str] | None = None,
    contributions: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    bin_size: float = 0.01,
    batch_size: int = 256,
):
    """FIMO-style hits: every window of either strand whose score p-value is at most ``pvalue``.

    Args:
        sequences: DNA strings, or one-hot (N, 4, L) (with ``mask`` for padded batches).
        motifs: the matrices.
        pvalue: report windows with p <= this.
        names: sequence names (default: row numbers).
        contributions: (N, 4, L) attribution contributions; adds ``attribution`` (their sum over the window)
            and ``attribution_frac`` (that sum over the sequence's total absolute attribution) to each hit, so
            hits can be ranked by what the model uses (attribution-weighted scanning).
        mask: (N, L) real columns of one-hot input.
        bin_size: score grid of the p-values (bits).
        batch_size: sequences per conv pass.

    Returns:
        DataFrame: sequence, motif_id, motif_name, start, end (0-based half-open), strand, score (bits), p_value
        [, attribution, attribution_frac], sorted by sequence and p-value.
    """
    import pandas as pd

    from dnalm.explain.onehot import one_hot

    if isinstance(sequences, np.ndarray):
        x = sequences.astype(np.float32)
        mask = np.ones((x.shape[0], x.shape[2]), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    else:
        x, mask = one_hot(list(sequences))
    names = [str(i) for i in range(len(x))] if names is None else list(names)
    nulls = [score_null(p, bin_size) for p in motifs.pwms]
    # a per-motif score threshold equivalent to the p-value threshold (tail is non-increasing)
    thr = np.empty(len(motifs))
    for m, (off, tail) in enumerate(nulls):
        k = int(np.searchsorted(-tail, -pvalue, side="left"))  # first k with tail[k] <= pvalue
        thr[m] = (off + k - 0.5) * bin_size - 1e-6  # candidates; the p-value itself decides below
    widths = np.array([p.shape[1] for p in motifs.pwms])
    if contributions is not None:
        per_pos = np.asarray(contributions).sum(1)  # (N, L)
        total = np.abs(per_pos).sum(1) + 1e-12  # (N,)
        csum = np.concatenate([np.zeros((len(per_pos), 1)), np.cumsum(per_pos, 1)], 1)  # (N, L+1)
    rows = []
    for start, s, inside in window_scores((x, mask.sum(1)), motifs, batch_size):
        hit = (s >= thr[None, None, :, None]) & inside[:, None]  # (B, 2, M, L)
        for b, strand, m, i in zip(*np.nonzero(hit)):
            n = start + b
            score = float(s[b, strand, m, i])
            p = float(score_pvalues(None, score, bin_size, nulls[m]))
            if p > pvalue:
                continue
            row = [names[n], motifs.ids[m], motifs.names[m], int(i), int(i + widths[m]), "+-"[strand], score, p]
            if contributions is not None:
                a = float(csum[n, i + widths[m]] - csum[n, i])
                row += [a, a / total[n]]
            rows.append(row)
    cols = ["sequence", "motif_id", "motif_name", "start", "end", "strand", "score", "p_value"]
    if contributions is not None:
        cols += ["attribution", "attribution_frac"]
    df = pd.DataFrame(rows, columns=cols)
    order = {n: i for i, n in enumerate(names)}
    return df.sort_values(["sequence", "p_value"], key=lambda c: c.map(order) if c.name == "sequence" else c,
                          kind="stable").reset_index(drop=True)

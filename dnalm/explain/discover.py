"""Motif discovery from attributions: TF-MoDISco patterns, each matched to a motif database with q-values.

TF-MoDISco (modisco-lite, the maintained reimplementation by its authors' lab, MIT) cuts high-attribution
seqlets from the contributions, clusters them on their hypothetical contributions and aggregates each cluster
into a pattern: a contribution weight matrix (CWM) and a position probability matrix (PPM). Each pattern's PPM,
trimmed to the columns whose CWM mass is at least ``trim_threshold`` of the largest (modisco's own rule), is
compared with every matrix of the database by TOMTOM (memelite's ``tomtom``, the complete-score method, both
strands); q-values are Benjamini-Hochberg over all the database's matrices for that pattern (MEME's TOMTOM
reports q-values the same way). Both libraries compile numba kernels on their first call in a fresh
environment (tomtom: 256 s measured on this loaded 2-core machine; cached afterwards).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnalm.explain.motifs import MotifSet


@dataclass
class Pattern:
    """One discovered pattern and its best database matches."""

    name: str  # pos_patterns.pattern_0, ...
    n_seqlets: int
    cwm: np.ndarray  # (4, W) mean contributions of its seqlets (trimmed)
    ppm: np.ndarray  # (4, W) base frequencies of its seqlets (trimmed)
    hypothetical: np.ndarray  # (4, W) mean hypothetical contributions (trimmed)
    matches: list[dict] = field(default_factory=list)  # motif_id, motif_name, p_value, q_value, offset, strand


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of a vector of p-values."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    order = np.argsort(p)
    q = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def trim(cwm: np.ndarray, threshold: float = 0.3) -> slice:
    """Columns from the first to the last whose |CWM| mass is >= threshold x the largest (modisco's rule)."""
    score = np.abs(cwm).sum(0)
    keep = np.flatnonzero(score >= threshold * score.max())
    return slice(int(keep.min()), int(keep.max()) + 1)


def match_patterns(ppms: list[np.ndarray], motifs: MotifSet, top: int = 5) -> list[list[dict]]:
    """TOMTOM matches of each PPM (4, W) against the database: the ``top`` best with p- and q-values."""
    import warnings

    from memelite import tomtom

    targets = [np.ascontiguousarray(p, dtype=np.float64) for p in motifs.ppms]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-database warning is about < 25 targets; we report it ourselves
        p, _scores, offsets, _overlaps, strands = tomtom([np.ascontiguousarray(q, dtype=np.float64) for q in ppms],
                                                         targets, n_jobs=1)
    out = []
    for i in range(len(ppms)):
        q = bh_qvalues(p[i])
        best = np.argsort(p[i], kind="stable")[:top]
        out.append([{"motif_id": motifs.ids[j], "motif_name": motifs.names[j], "p_value": float(p[i, j]),
                     "q_value": float(q[j]), "offset": int(offsets[i, j]), "strand": "+-"[int(strands[i, j])]}
                    for j in best])
    return out


def discover(
    x: np.ndarray,
    hypothetical: np.ndarray,
    motifs: MotifSet | None = None,
    window: int = 15,
    flank: int = 5,
    max_seqlets: int = 2000,
    min_cluster: int = 20,
    n_leiden_runs: int = 4,
    trim_threshold: float = 0.3,
    top: int = 5,
    min_match_width: int = 5,
    seed: int = 0,
) -> list[Pattern]:
    """TF-MoDISco patterns of an attribution set, matched to ``motifs``.

    Args:
        x: (N, 4, L) one-hot.
        hypothetical: (N, 4, L) hypothetical contributions (``Attributions.hypothetical``).
        motifs: database to match against (None: no matching).
        window: seqlet core width (modisco's sliding_window_size; short inputs need short windows).
        flank: flank added to each seqlet.
        max_seqlets: seqlets kept per sign (modisco's max_seqlets_per_metacluster).
        min_cluster: smallest pattern (modisco's final_min_cluster_size) and metacluster size.
        n_leiden_runs: Leiden clusterings per round (modisco's default 50 is slow on a CPU).
        trim_threshold: CWM trimming of reported matrices.
        top: database matches kept per pattern.
        min_match_width: patterns narrower than this after trimming are reported but not matched (TOMTOM p-values
            of 1-4 columns are not specific: a 3-column GAC matches dozens of matrices).
        seed: numpy seed (modisco's clustering draws from numpy's global generator).

    Returns:
        Patterns, positive metacluster first, each with its matches (best p-value first).
    """
    from modiscolite.tfmodisco import TFMoDISco

    x = np.asarray(x, dtype=np.float32)
    hyp = np.asarray(hypothetical, dtype=np.float32) * (x.sum(1, keepdims=True) > 0)
    np.random.seed(seed)
    pos, neg = TFMoDISco(
        one_hot=np.ascontiguousarray(x.transpose(0, 2, 1)), hypothetical_contribs=np.ascontiguousarray(hyp.transpose(0, 2, 1)),
        sliding_window_size=window, flank_size=flank, max_seqlets_per_metacluster=max_seqlets,
        min_metacluster_size=min_cluster, final_min_cluster_size=min_cluster, n_leiden_runs=n_leiden_runs,
        trim_to_window_size=window + 2 * flank, initial_flank_to_add=flank, min_num_to_trim_to=min(30, min_cluster),
        verbose=False,
    )
    patterns = []
    for prefix, group in (("pos_patterns", pos), ("neg_patterns", neg)):
        for i, pat in enumerate(group or []):
            cwm = np.asarray(pat.contrib_scores).T  # (4, W)
            s = trim(cwm, trim_threshold)
            patterns.append(Pattern(f"{prefix}.pattern_{i}", len(pat.seqlets), cwm[:, s],
                                    np.asarray(pat.sequence).T[:, s], np.asarray(pat.hypothetical_contribs).T[:, s]))
    wide = [p for p in patterns if p.ppm.shape[1] >= min_match_width]  # a 1-3 column PPM matches anything
    if motifs is not None and wide:
        for p, m in zip(wide, match_patterns([p.ppm for p in wide], motifs, top)):
            p.matches = m
    return patterns


def patterns_table(patterns: list[Pattern]):
    """One row per pattern and match: pattern, n_seqlets, width, rank, motif_id, motif_name, p_value, q_value."""
    import pandas as pd

    rows = []
    for p in patterns:
        for r, m in enumerate(p.matches or [{}]):
            rows.append({"pattern": p.name, "n_seqlets": p.n_seqlets, "width": p.cwm.shape[1], "rank": r + 1 if m else 0,
                         **{k: m.get(k) for k in ("motif_id", "motif_name", "p_value", "q_value", "offset", "strand")}})
    cols = ["pattern", "n_seqlets", "width", "rank", "motif_id", "motif_name", "p_value", "q_value", "offset", "strand"]
    return pd.DataFrame(rows, columns=cols)


def write_report(patterns: list[Pattern], motifs: MotifSet | None, out_dir: str | os.PathLike, title: str = "Discovered motifs",
                 q_threshold: float = 0.05, note: str = "") -> Path:
    """``report.md`` with a logo per pattern (CWM) beside its best match's logo, ``patterns.tsv``, and
    ``patterns.png`` (the first six patterns beside their best matches in one figure)."""
    from dnalm.explain.plots import plot_patterns, save_logo
    from dnalm.utils import atomic_write

    out = Path(out_dir)
    (out / "logos").mkdir(parents=True, exist_ok=True)
    table = patterns_table(patterns)
    with atomic_write(out / "patterns.tsv") as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4g")
    figure_rows = []
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    lines += [(f"{len(patterns)} pattern(s). Matches: TOMTOM against {motifs.source if motifs else '-'} "
              f"({len(motifs) if motifs else 0} matrices), q-values Benjamini-Hochberg over the database; "
              f"**bold** = q < {q_threshold}."), "",
              "| pattern | seqlets | CWM | best match | match logo | p | q |", "|---|---|---|---|---|---|---|"]
    for p in patterns:
        logo = f"logos/{p.name}.cwm.png"
        save_logo(p.cwm, out / logo, title=f"{p.name} (CWM, {p.n_seqlets} seqlets)")
        best = p.matches[0] if p.matches else None
        if best is not None:
            ppm = motifs.ppms[motifs.ids.index(best["motif_id"])]
            if best["strand"] == "-":
                ppm = ppm[::-1, ::-1]
            mlogo = f"logos/{p.name}.match.png"
            save_logo(information_content(ppm), out / mlogo, title=f"{best['motif_id']} {best['motif_name']}")
            name = f"{best['motif_id']} {best['motif_name']} ({best['strand']})"
            figure_rows.append((f"{p.name} ({p.n_seqlets} seqlets)", p.cwm,
                                f"{name}  q={best['q_value']:.2g}", information_content(ppm)))
            if best["q_value"] < q_threshold:
                name = f"**{name}**"
            lines.append(f"| {p.name} | {p.n_seqlets} | ![]({logo}) | {name} | ![]({mlogo}) | {best['p_value']:.2g} | "
                         f"{best['q_value']:.2g} |")
        else:
            lines.append(f"| {p.name} | {p.n_seqlets} | ![]({logo}) | - | - | - | - |")
            figure_rows.append((f"{p.name} ({p.n_seqlets} seqlets)", p.cwm, None, None))
    plot_patterns(figure_rows[:6], out / "patterns.png")
    with atomic_write(out / "report.md") as fh:
        fh.write("\n".join(lines) + "\n")
    return out / "report.md"


def information_content(ppm: np.ndarray) -> np.ndarray:
    """A PPM (4, W) scaled to bits per column (letter heights of a sequence logo)."""
    p = np.clip(ppm, 1e-9, 1)
    ic = 2 + (p * np.log2(p)).sum(0)  # (W,)
    return ppm * ic[None]

"""Sequence logos (logomaker) of attribution maps and motif matrices, with genome coordinates where known."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_logo(matrix: np.ndarray, path: str | os.PathLike, title: str = "", start: int = 0, chrom: str | None = None,
              ylabel: str = "", width: float | None = None) -> Path:
    """A logo of a (4, W) matrix (A, C, G, T rows) as a PNG, written atomically.

    Args:
        matrix: letter heights (contributions, CWM, or a PPM scaled to bits); negative heights go below the axis.
        path: output PNG.
        title: figure title.
        start: coordinate of column 0 (0-based); ticks are labelled 1-based (``start + i + 1``), as a genome browser.
        chrom: chromosome name for the axis label (genomic input).
        ylabel: y axis label.
        width: figure width in inches (default: from W).
    """
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    from dnalm.utils import atomic_path

    m = np.asarray(matrix, dtype=float)
    W = m.shape[1]
    df = pd.DataFrame(m.T, columns=list("ACGT"))
    fig, ax = plt.subplots(figsize=(width or float(np.clip(0.12 * W + 1.5, 3, 40)), 2.0))
    logomaker.Logo(df, ax=ax, color_scheme="classic")
    ax.axhline(0, color="0.5", lw=0.5)
    step = max(1, round(W / 10 / 5) * 5) if W > 20 else 1 if W <= 12 else 5
    ticks = list(range(0, W, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{start + t + 1:,}" for t in ticks], fontsize=7)
    ax.set_xlabel(f"{chrom} (1-based)" if chrom else "position", fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def plot_patterns(rows: list[tuple[str, np.ndarray, str | None, np.ndarray | None]], path: str | os.PathLike) -> Path:
    """One row per pattern: its CWM logo beside the logo of its best database match (information content).

    Args:
        rows: (pattern title, CWM (4, W), match title or None, match letter heights (4, W') or None).
        path: output PNG (written atomically); with no rows, a figure that says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    from dnalm.utils import atomic_path

    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 2, figsize=(9, 1.9 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 1]})
    if not rows:
        for ax in axes[0]:
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no pattern found", fontsize=11)
    for r, (title, cwm, mtitle, match) in enumerate(rows):
        logomaker.Logo(pd.DataFrame(np.asarray(cwm).T, columns=list("ACGT")), ax=axes[r, 0], color_scheme="classic")
        axes[r, 0].set_title(title, fontsize=9)
        axes[r, 0].set_ylabel("contribution", fontsize=8)
        if match is None:
            axes[r, 1].axis("off")
            continue
        logomaker.Logo(pd.DataFrame(np.asarray(match).T, columns=list("ACGT")), ax=axes[r, 1], color_scheme="classic")
        axes[r, 1].set_ylim(0, 2)
        axes[r, 1].set_ylabel("bits", fontsize=8)
        axes[r, 1].set_title(mtitle or "", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)

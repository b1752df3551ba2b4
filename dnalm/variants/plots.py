"""Plots of variant-effect results: the ISM heatmap with a logo of per-position importance."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_ism(table, path: str | os.PathLike, title: str | None = None, score: str = "LLR") -> Path:
    """Heatmap of the ISM scores and a logomaker logo of the per-position importance (PNG, atomically).

    The x axis is the TSV's ``position`` column (1-based genome coordinates for a region, 1.. for a sequence), so
    a base is found at the same number in the plot and in the table. ``score`` names what changed (``LLR`` for a
    language model, a head's output for ``dnalm ism --head``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    from dnalm.utils import atomic_path

    L = len(table)
    mat = table[list("ACGT")].to_numpy().T  # (4, L)
    width = float(np.clip(0.15 * L + 2, 6, 60))
    fig, (ax_logo, ax_map) = plt.subplots(
        2, 1, figsize=(width, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    pos = table["position"].to_numpy(dtype=np.int64)
    logo = pd.DataFrame(0.0, index=pos, columns=list("ACGT"))
    for p, ref, imp in zip(pos, table["ref"], table["importance"]):
        if ref in "ACGT":
            logo.loc[p, ref] = imp
    logomaker.Logo(logo, ax=ax_logo, color_scheme="classic")
    ax_logo.set_ylabel(f"importance\n(-mean {'LLR' if score == 'LLR' else 'change'})")
    lim = float(np.nanmax(np.abs(mat))) or 1e-9
    im = ax_map.imshow(
        mat,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
        extent=(pos[0] - 0.5, pos[-1] + 0.5, 3.5, -0.5),  # positions are consecutive
    )
    ax_map.set_yticks(range(4), list("ACGT"))
    chrom = f"{table['chrom'].iloc[0]} " if "chrom" in table and table["chrom"].iloc[0] else ""
    ax_map.set_xlabel(f"{chrom}position (1-based, as in the TSV)")
    ax_map.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax_map.set_xlim(pos[0] - 0.5, pos[-1] + 0.5)  # logomaker widens the shared axis otherwise
    fig.colorbar(im, ax=[ax_logo, ax_map], shrink=0.6, label=f"{score} (mutant - reference)")
    if title:
        ax_logo.set_title(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path

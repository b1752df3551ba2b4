"""Variant effects with a causal DNA language model: windows and alleles, scoring (prefix reuse), ISM, plots.

- :mod:`dnalm.variants.windows`: the REF/ALT windows of a variant on each strand, as token-id pairs.
- :mod:`dnalm.variants.scoring`: :func:`score_variants` (LLR, embedding distance, head deltas) with prefix reuse.
- :mod:`dnalm.variants.stream`: :func:`score_variants_to_file`, chunk by chunk into a file, resumable.
- :mod:`dnalm.variants.ism`: in-silico saturation mutagenesis.
- :mod:`dnalm.variants.plots`: the ISM heatmap and importance logo.

Score files are written by :func:`dnalm.io.variant_scores.write_variant_scores` (re-exported here).
"""

from __future__ import annotations

from dnalm.io.regions import Region, parse_region
from dnalm.io.variant_scores import write_variant_scores
from dnalm.variants.ism import ism, ism_table, ism_to_files
from dnalm.variants.plots import plot_ism
from dnalm.variants.scoring import (
    DEFAULT_WINDOW,
    SCORE_NAMES,
    score_sequence_pairs,
    score_variants,
)
from dnalm.variants.stream import ScoreRun, score_variants_to_file
from dnalm.variants.windows import variant_windows, window_split

__all__ = [
    "DEFAULT_WINDOW",
    "SCORE_NAMES",
    "Region",
    "ScoreRun",
    "ism",
    "ism_table",
    "ism_to_files",
    "parse_region",
    "plot_ism",
    "score_sequence_pairs",
    "score_variants",
    "score_variants_to_file",
    "variant_windows",
    "window_split",
    "write_variant_scores",
]

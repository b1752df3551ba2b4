"""Sequences of genomic intervals, fetched eagerly: those inside the genome are returned, the others reported with
the reason (unknown chromosome, outside the FASTA, empty, no genome) instead of being dropped.

:class:`OffsetGenome` is a FASTA whose records are slices of real chromosomes (interval coordinates stay those of
the real chromosome). The lazy, tokenising counterpart is :class:`dnalm.data.intervals.IntervalDataset`; both
resize with :func:`dnalm.data.bed.resize_interval`. This module does not import torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dnalm.errors import InputError

from .bed import resize_interval

if TYPE_CHECKING:  # pragma: no cover
    from dnalm.io.genome import Genome

SKIP_COLUMNS = ["split", "source", "line", "id", "reason"]


class OffsetGenome:
    """A FASTA (:class:`Genome`) whose records may be slices of real chromosomes starting at an offset.

    Args:
        fasta: FASTA path (or an open :class:`Genome`).
        offsets: ``{record: offset}``: the record starts at ``offset`` of the real chromosome (default 0).
    """

    def __init__(self, fasta: str | os.PathLike | Genome, offsets: dict[str, int] | None = None):
        from dnalm.io.genome import Genome

        self.genome = fasta if isinstance(fasta, Genome) else Genome(fasta)
        self.name = self.genome.path.name
        self.offsets = {self.genome.resolve(k): int(v) for k, v in (offsets or {}).items()}

    def locate(self, chrom: str, start: int, end: int) -> tuple[str, int, int] | str:
        """(record, start, end) within the FASTA, or the reason the interval is not inside it."""
        if start >= end:
            return f"empty interval: [{start:,}, {end:,})"
        try:
            name = self.genome.resolve(chrom)
        except InputError:
            return f"unknown chromosome: {chrom!r} is not in {self.name}"
        off = self.offsets.get(name, 0)
        size = self.genome.chrom_sizes[name]
        if start - off < 0 or end - off > size:
            return (f"outside the genome: {chrom}:[{start:,}, {end:,}) is not inside {self.name}, which holds "
                    f"{name}:[{off:,}, {off + size:,})")
        return name, start - off, end - off

    def fetch(self, located: tuple[str, int, int], strand: str) -> str:
        """The sequence of a :meth:`locate` result on ``strand`` (``-`` reverse complemented)."""
        name, s, e = located
        return self.genome.fetch(name, s, e, strand="-" if strand == "-" else "+")


def fetch_intervals(
    df: pd.DataFrame,
    genome: OffsetGenome | Genome | str | os.PathLike | None,
    split: str,
    source: str,
    strand_aware: bool = True,
    length: int = 0,
    no_genome_reason: str = "no genome: none given",
) -> tuple[list[str], np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Fetch the sequence of every interval row that lies inside ``genome``; report the others.

    Args:
        df: rows with ``chrom``, ``start``, ``end`` (0-based half-open), optional ``strand``, ``id``, ``line``.
        genome: where to fetch from (None: every row is skipped with ``no_genome_reason``).
        split, source: recorded in the skipped rows.
        strand_aware: reverse complement rows on the ``-`` strand.
        length: resize each interval to ``length`` bp around its centre first (0 = keep).

    Returns:
        (sequences of the kept rows, kept row indices, per-kept-row meta, skipped rows with ``SKIP_COLUMNS``).
    """
    if genome is not None and not isinstance(genome, OffsetGenome):
        genome = OffsetGenome(genome)
    seqs, kept, skipped, meta = [], [], [], []
    strands = df["strand"].astype(str).tolist() if "strand" in df.columns else ["+"] * len(df)
    ids = df["id"].astype(str).tolist() if "id" in df.columns else ["."] * len(df)
    lines = df["line"].tolist() if "line" in df.columns else list(range(1, len(df) + 1))
    for i, (chrom, start, end) in enumerate(zip(df["chrom"].astype(str), df["start"], df["end"])):
        strand = strands[i] if strand_aware else "+"
        start, end = int(start), int(end)
        if length:
            start, end = resize_interval(start, end, length, strand)
        where = no_genome_reason if genome is None else genome.locate(chrom, start, end)
        if isinstance(where, str):
            skipped.append({"split": split, "source": source, "line": lines[i], "id": ids[i], "reason": where})
            continue
        seqs.append(genome.fetch(where, strand))
        kept.append(i)
        meta.append({"source": source, "line": lines[i], "id": ids[i], "chrom": chrom, "start": start,
                     "end": end, "strand": strand})
    return seqs, np.asarray(kept, dtype=np.int64), pd.DataFrame(meta), pd.DataFrame(skipped, columns=SKIP_COLUMNS)

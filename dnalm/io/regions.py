"""Genomic regions and work selection: :class:`Region`, ``--region`` / ``--shard I/N`` parsing, and shards balanced by work.

One selection for every command that splits its input (``score-variants``, ``embed``, ``attribute``):

- ``--region CHR[:START-END]`` (1-based inclusive, as samtools; a whole chromosome; or a BED file, 0-based),
  repeatable: :func:`parse_regions`; a record is selected when it overlaps one of the regions (a variant: its
  position lies in one).
- ``--shard I/N``: :func:`parse_shard`; :func:`shard_bounds` cuts the records, in input order, into N contiguous
  runs of about equal *work* (a command says what a record costs: ALT alleles, bases), so N independent processes
  cover the selected records exactly once and their outputs concatenate in input order.
- :class:`Selection` holds both, for a command's records numbered in input order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnalm.errors import InputError


@dataclass
class Region:
    """A genomic interval, 0-based half-open."""

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start + 1}-{self.end}"


def parse_region(text: str) -> Region:
    """``chr:start-end`` (1-based inclusive, as samtools; commas allowed) -> :class:`Region` (0-based half-open)."""
    m = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", str(text))
    if not m:
        raise InputError(
            f"region {text!r}: expected CHROM:START-END (1-based, inclusive), e.g. chrI:1001-1200"
        )
    start, end = int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if start < 1 or end < start:
        raise InputError(f"region {text!r}: need 1 <= START <= END")
    return Region(m.group(1), start - 1, end)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based: ``1/3`` .. ``3/3``) -> ``(I, N)``; anything else is an :class:`InputError`."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise InputError(f"shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/8")
    return int(m.group(1)), int(m.group(2))


def parse_regions(values: Sequence[str] | None) -> tuple[Region, ...]:
    """``--region`` values -> regions (0-based half-open): ``CHR``, ``CHR:START-END`` (1-based inclusive), or a
    BED file (0-based, its first three columns)."""
    regions: list[Region] = []
    for value in values or ():
        value = str(value)
        path = Path(value)
        if path.suffix.lower() in (".bed", ".gz") or (path.is_file() and ":" not in value):
            regions += read_region_bed(path)
        elif ":" in value:
            regions.append(parse_region(value))
        else:
            regions.append(Region(value, 0, 1 << 62))
    return tuple(regions)


def read_region_bed(path: str | os.PathLike) -> list[Region]:
    """The regions of a BED file (its first three columns; comment, track and browser lines skipped)."""
    from dnalm.io.compression import open_maybe_gzip

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: region BED file not found")
    out = []
    with open_maybe_gzip(path, "rt") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.rstrip("\n").split("\t")
            try:
                start, end = int(cols[1]), int(cols[2])
            except (IndexError, ValueError):
                raise InputError(f"{path}, line {n}: expected CHROM<TAB>START<TAB>END") from None
            if start < 0 or end < start:
                raise InputError(f"{path}, line {n}: need 0 <= START <= END, got {start}-{end}")
            out.append(Region(cols[0], start, end))
    if not out:
        raise InputError(f"{path}: no regions")
    return out


def overlaps(regions: Sequence[Region], names: set[str] | Sequence[str], start: int, end: int) -> bool:
    """Whether ``[start, end)`` (0-based) on a chromosome called any of ``names`` overlaps one of ``regions``
    (an empty interval counts at its start)."""
    end = max(end, start + 1)
    return any(r.chrom in names and r.start < end and start < r.end for r in regions)


@dataclass(frozen=True)
class Selection:
    """Which input records a command works on: those in any of ``regions`` (all when empty), then the records
    numbered ``lo <= record < hi`` (a shard; None: all)."""

    regions: tuple[Region, ...] = ()
    records: tuple[int, int] | None = None
    shard: tuple[int, int] | None = None  # (I, N), for messages and the resume fingerprint
    aliases: dict = field(default_factory=dict, compare=False)  # input chrom -> genome name

    def in_regions(self, chrom: str, genome_chrom: str | None, pos: int) -> bool:
        """Whether a record at 1-based ``pos`` on ``chrom`` (or its genome name) lies in one of the regions."""
        if not self.regions:
            return True
        return overlaps(self.regions, {str(chrom), str(genome_chrom) if genome_chrom else str(chrom)}, pos - 1, pos)

    def mask(self, df) -> np.ndarray:
        """Rows of a frame with ``record``, ``chrom``, ``genome_chrom`` and ``pos`` columns (a variant frame of
        :func:`dnalm.io.variants.read_variants`) whose record is selected."""
        keep = np.ones(len(df), dtype=bool)
        if self.records is not None:
            rec = df["record"].to_numpy()
            keep &= (rec >= self.records[0]) & (rec < self.records[1])
        if self.regions:
            keep &= np.array([self.in_regions(c, g, p) for c, g, p in
                              zip(df["chrom"], df["genome_chrom"], df["pos"])], dtype=bool)
        return keep

    def to_json(self) -> dict:
        return {"regions": [str(r) for r in self.regions], "records": self.records, "shard": self.shard}


def shard_bounds(work: np.ndarray, i: int, n: int) -> tuple[int, int]:
    """Records ``[lo, hi)`` of shard ``i`` (1-based) of ``n``: contiguous, cut where the cumulative work crosses
    k/n of the total (records of zero work go with the shard before them)."""
    if not 1 <= i <= n:
        raise InputError(f"shard {i}/{n}: need 1 <= I <= N")
    total = float(work.sum())
    if total <= 0:
        cuts = np.linspace(0, len(work), n + 1).round().astype(int)
    else:
        cum = np.cumsum(work)
        cuts = np.concatenate([[0], np.searchsorted(cum, total * np.arange(1, n) / n, side="left") + 1, [len(work)]])
        cuts = np.maximum.accumulate(np.minimum(cuts, len(work)))
    return int(cuts[i - 1]), int(cuts[i])


def select_records(work: np.ndarray, inside: np.ndarray | None = None,
                   shard: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The records a command runs: those ``inside`` the regions (None: all), then the shard's contiguous run.

    Args:
        work: (n,) what each record costs, in input order (bases, ALT alleles, ...).
        inside: (n,) bool, records in the ``--region`` regions (None: no regions).
        shard: ``(I, N)`` or None.

    Returns:
        (bool mask of the selected records, the shard's record bounds ``[lo, hi)`` or None). The N shards of one
        input select every record inside the regions exactly once, and each about 1/N of their work.
    """
    work = np.asarray(work, dtype=float)
    keep = np.ones(len(work), dtype=bool) if inside is None else np.asarray(inside, dtype=bool).copy()
    bounds = None
    if shard is not None and tuple(shard) != (1, 1):
        bounds = shard_bounds(np.where(keep, work, 0.0), *shard)
        span = np.zeros(len(work), dtype=bool)
        span[bounds[0] : bounds[1]] = True
        keep &= span
    return keep, bounds

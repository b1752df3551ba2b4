"""Genomic regions: the one :class:`Region` (0-based half-open) and the samtools-style ``chr:s-e`` parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

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

"""Genome and variant readers: indexed FASTA (:class:`Genome`) and VCF/TSV variants (:func:`read_variants`).

Imported lazily, so that ``from dnalm.io.genome import Genome`` does not load pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Genome": "dnalm.io.genome",
    "read_variants": "dnalm.io.variants",
    "VARIANT_STATUSES": "dnalm.io.variants",
}
__all__ = ["VARIANT_STATUSES", "Genome", "read_variants"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dnalm.io' has no attribute {name!r}")

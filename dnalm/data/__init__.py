"""Datasets over genomes and tables: pretraining windows, labelled intervals, sequence tables, BED reading.

The names are imported lazily, so that the torch-free modules (``bed``, ``fetch``, ``labels``) load without torch.
"""

from __future__ import annotations

from dnalm.utils import lazy_exports

_EXPORTS: dict[str, str] = {
    "Collator": "dnalm.data.collate",
    "GenomeWindows": "dnalm.data.windows",
    "IntervalDataset": "dnalm.data.intervals",
    "LabelSpec": "dnalm.data.labels",
    "OffsetGenome": "dnalm.data.fetch",
    "SequenceTable": "dnalm.data.tables",
    "collate": "dnalm.data.collate",
    "fetch_intervals": "dnalm.data.fetch",
    "read_bed": "dnalm.data.bed",
    "resize_interval": "dnalm.data.bed",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

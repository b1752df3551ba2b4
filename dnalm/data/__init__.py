"""Datasets over genomes and tables: pretraining windows, labelled intervals, sequence tables, BED reading."""

from .bed import read_bed, resize_interval
from .collate import Collator, collate
from .intervals import IntervalDataset
from .labels import LabelSpec
from .tables import SequenceTable
from .windows import GenomeWindows

__all__ = [
    "Collator",
    "GenomeWindows",
    "IntervalDataset",
    "LabelSpec",
    "SequenceTable",
    "collate",
    "read_bed",
    "resize_interval",
]

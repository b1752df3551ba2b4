"""Interval datasets: BED (or BED-like) regions + a genome -> fixed-length, strand-aware token windows.

The eager counterpart, :func:`dnalm.data.fetch.fetch_intervals` (the sequences of the intervals inside a genome,
the others reported), resizes with the same :func:`dnalm.data.bed.resize_interval`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dnalm.errors import ConfigError
from dnalm.io.genome import Genome
from dnalm.tokenizer import DNATokenizer

from ._common import CollateMixin, LabelledMixin, default_tokenizer, item_rng, to_input_ids
from .bed import read_bed, resize_interval
from .labels import LabelSpec, auto_label_columns, encode_labels

AUTO = "auto"


class IntervalDataset(CollateMixin, LabelledMixin, Dataset):
    """Genomic intervals with labels, fetched from a genome and resized to a fixed length around their centre.

    Args:
        intervals: BED/BED-like file (see :func:`read_bed`) or a DataFrame with ``chrom``, ``start``, ``end``
            (and optionally ``strand`` and label columns).
        genome: a :class:`Genome` or a FASTA path.
        length: output length in bp; each interval is resized around its centre (:func:`resize_interval`)
            and N-padded where it runs past a chromosome end. None keeps each interval's own length.
        label_columns: label column(s); ``"auto"`` takes ``label`` or the single unnamed extra column
            (e.g. BEND's 7th column), None for no labels. Numbers stay numbers (int -> class id, float ->
            regression), class names are mapped to ids (``label_to_id``), comma-separated lists become
            multi-hot vectors.
        tokenizer: a :class:`DNATokenizer` (default: a plain one).
        strand_aware: reverse complement intervals on the ``-`` strand (needs a ``strand`` column).
        rc_augment: probability of reverse complementing an item on top of that (labels unchanged).
        seed: seed of the augmentation stream (items depend only on (seed, epoch, index)).
        num_classes, multi_label, classes: see :func:`dnalm.data.labels.encode_labels`.
        add_special_tokens: wrap each window as ``[BOS] seq [EOS]``.

    Items: ``{"input_ids": LongTensor (length,), "labels": tensor, "index", "chrom", "start", "end",
    "strand"}`` where start/end are the resized window (0-based half-open) and strand the one fetched.
    """

    def __init__(
        self,
        intervals: str | os.PathLike | pd.DataFrame,
        genome: Genome | str | os.PathLike,
        length: int | None = None,
        label_columns: str | Sequence[str] | None = AUTO,
        tokenizer: DNATokenizer | None = None,
        strand_aware: bool = True,
        rc_augment: float = 0.0,
        seed: int = 0,
        num_classes: int | None = None,
        multi_label: bool | None = None,
        classes: Sequence | None = None,
        add_special_tokens: bool = False,
    ):
        if length is not None and int(length) < 1:
            raise ConfigError(f"length must be a positive number of bp, got {length}")
        if not 0.0 <= rc_augment <= 1.0:
            raise ConfigError(f"rc_augment is a probability in [0, 1], got {rc_augment}")
        self.genome = genome if isinstance(genome, Genome) else Genome(genome)
        self.tokenizer = default_tokenizer(tokenizer)
        self.length = None if length is None else int(length)
        self.strand_aware = strand_aware
        self.rc_augment = float(rc_augment)
        self.seed = seed
        self.epoch = 0
        self.add_special_tokens = add_special_tokens
        self.source = "<DataFrame>" if isinstance(intervals, pd.DataFrame) else str(intervals)
        df = read_bed(intervals, genome=self.genome)
        if label_columns == AUTO:
            label_columns = auto_label_columns(df)
        elif isinstance(label_columns, str):
            label_columns = [label_columns]
        label_columns = list(label_columns or [])
        self.intervals = df
        self.labels: np.ndarray | None = None
        self.label_spec: LabelSpec | None = None
        if label_columns:
            row_word = "row" if self.source == "<DataFrame>" else "line"
            self.labels, self.label_spec = encode_labels(
                df,
                label_columns,
                self.source,
                df["line"].tolist(),
                num_classes,
                multi_label,
                classes,
                row_word,
            )
        self._chroms = [self.genome.resolve(c) for c in df["chrom"].tolist()]
        self._starts = df["start"].to_numpy(np.int64)
        self._ends = df["end"].to_numpy(np.int64)
        if "strand" in df.columns and strand_aware:
            self._strands = ["-" if s == "-" else "+" for s in df["strand"].astype(str)]
        else:
            self._strands = ["+"] * len(df)

    def __len__(self) -> int:
        return len(self._starts)

    def window(self, index: int) -> tuple[str, int, int, str]:
        """(chrom, start, end, strand) fetched for item ``index`` (after resizing; before augmentation)."""
        start, end, strand = int(self._starts[index]), int(self._ends[index]), self._strands[index]
        if self.length is not None:
            start, end = resize_interval(start, end, self.length, strand)
        return self._chroms[index], start, end, strand

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} intervals")
        chrom, start, end, strand = self.window(index)
        if self.rc_augment > 0 and item_rng(self.seed, self.epoch, index).random() < self.rc_augment:
            strand = "-" if strand == "+" else "+"
        seq = self.genome.fetch(chrom, start, end, strand=strand, pad=True)
        ids = self.tokenizer.encode_np(seq)
        item = {
            "input_ids": to_input_ids(ids, self.tokenizer, self.add_special_tokens),
            "index": index,
            "chrom": chrom,
            "start": start,
            "end": end,
            "strand": strand,
        }
        if self.labels is not None:
            item["labels"] = torch.as_tensor(self.labels[index])
        return item

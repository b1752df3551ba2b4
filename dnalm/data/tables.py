"""Sequence tables: CSV/TSV with a sequence column and label columns (GUE's ``sequence,label``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dnalm.errors import InputError
from dnalm.tokenizer import DNATokenizer

from ._common import CollateMixin, LabelledMixin, default_tokenizer, item_rng, to_input_ids
from .labels import LabelSpec, encode_labels


def guess_sep(path: Path) -> str:
    """Tab for .tsv/.txt/.tab, comma for .csv; otherwise whichever the first line contains."""
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    from dnalm.io.compression import open_maybe_gzip

    with open_maybe_gzip(path, "rt") as fh:
        first = fh.readline()
    return "\t" if "\t" in first else ","


class SequenceTable(CollateMixin, LabelledMixin, Dataset):
    """Sequences and labels from a CSV/TSV table (or DataFrame), tokenized and validated up front.

    Args:
        path: CSV/TSV file (gzip ok) with a header row, or a DataFrame.
        sequence_column: column holding the DNA sequences.
        label_columns: label column(s); numbers, class names (mapped to ids, see ``label_spec``) or
            comma-separated multi-label lists. ``()`` or None for an unlabelled table.
        tokenizer: a :class:`DNATokenizer` (default: a plain one).
        sep: field separator; None guesses from the file name (.csv -> ",", .tsv/.txt -> tab) or first line.
        add_special_tokens: wrap each sequence as ``[BOS] seq [EOS]``.
        num_classes, multi_label, classes: see :func:`dnalm.data.labels.encode_labels`.
        rc_augment: probability of reverse complementing an item (labels unchanged), drawn per
            (seed, epoch, index).
        seed: seed of the augmentation stream.

    Items: ``{"input_ids": LongTensor (L,), "labels": tensor, "index": int}``.

    Raises:
        InputError: a missing column (naming the file and the columns it has), an empty sequence, or an
            invalid character (naming the file, the line and the character's position).
    """

    def __init__(
        self,
        path: str | os.PathLike | pd.DataFrame,
        sequence_column: str = "sequence",
        label_columns: str | Sequence[str] | None = ("label",),
        tokenizer: DNATokenizer | None = None,
        sep: str | None = None,
        add_special_tokens: bool = False,
        num_classes: int | None = None,
        multi_label: bool | None = None,
        classes: Sequence | None = None,
        rc_augment: float = 0.0,
        seed: int = 0,
    ):
        self.tokenizer = default_tokenizer(tokenizer)
        self.add_special_tokens = add_special_tokens
        self.rc_augment = float(rc_augment)
        self.seed = seed
        self.epoch = 0
        if isinstance(path, pd.DataFrame):
            self.source = "<DataFrame>"
            df = path.reset_index(drop=True)
            first_row = 1
            self.row_word = "row"
        else:
            path = Path(path)
            self.source = str(path)
            if not path.exists():
                raise InputError(f"{path}: no such file")
            sep = sep or guess_sep(path)
            try:
                df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
            except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
                raise InputError(
                    f"{path}: cannot read as a {'TSV' if sep == chr(9) else 'CSV'} table: {exc}"
                ) from None
            first_row = 2  # line 1 is the header
            self.row_word = "line"
        self.frame = df
        self.rows = list(range(first_row, first_row + len(df)))
        if sequence_column not in df.columns:
            raise InputError(
                f"{self.source}: no column {sequence_column!r}; the table has columns {list(df.columns)}"
            )
        if isinstance(label_columns, str):
            label_columns = [label_columns]
        label_columns = list(label_columns or [])
        missing = [c for c in label_columns if c not in df.columns]
        if missing:
            raise InputError(
                f"{self.source}: no label column(s) {missing}; the table has columns {list(df.columns)}"
            )
        self._ids, self._offsets = self._encode_all(df[sequence_column].astype(str).tolist())
        self.labels: np.ndarray | None = None
        self.label_spec: LabelSpec | None = None
        if label_columns:
            self.labels, self.label_spec = encode_labels(
                df, label_columns, self.source, self.rows, num_classes, multi_label, classes, self.row_word
            )

    def _encode_all(self, seqs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All sequences as one flat uint8 id array plus offsets (a fast single pass; the slow per-row pass
        runs only to name the row of an error)."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        empty = np.flatnonzero(lengths == 0)
        if len(empty):
            raise InputError(f"{self.source}: {self.row_word} {self.rows[int(empty[0])]}: empty sequence")
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        try:
            flat = self.tokenizer.encode_np("".join(seqs))
        except InputError:
            for i, s in enumerate(seqs):
                try:
                    self.tokenizer.encode_np(s)
                except InputError as exc:
                    raise InputError(f"{self.source}: {self.row_word} {self.rows[i]}: {exc}") from None
            raise
        return flat.astype(np.uint8), offsets


    def __len__(self) -> int:
        return len(self._offsets) - 1

    def sequence(self, index: int) -> str:
        """The (upper-case, IUPAC->N) sequence of row ``index`` as stored."""
        return self.tokenizer.decode(self._ids[self._offsets[index] : self._offsets[index + 1]])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sequences")
        ids = self._ids[self._offsets[index] : self._offsets[index + 1]].astype(np.int64)
        if self.rc_augment > 0 and item_rng(self.seed, self.epoch, index).random() < self.rc_augment:
            ids = self.tokenizer.reverse_complement(ids)
        item = {"input_ids": to_input_ids(ids, self.tokenizer, self.add_special_tokens), "index": index}
        if self.labels is not None:
            item["labels"] = torch.as_tensor(self.labels[index])
        return item

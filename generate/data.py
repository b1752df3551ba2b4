"""Property tables for CRE work: a sequence column plus numeric property columns (CSV/TSV, gzip ok).

Tables with a header name their columns; headerless tables (such as de Boer's random 80-mer file, which has two
metadata lines and then ``sequence<TAB>EL``) are read with ``header=False`` and 1-based column numbers ("1", "2").
Rows whose property value is missing or not a number, and rows with an invalid sequence, are skipped and listed in
the returned report, never dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnalm.errors import InputError


@dataclass
class PropertyTable:
    """Sequences (upper case) with their numeric properties and the rows that were skipped."""

    source: str  # file name (for messages)
    sequences: list[str]  # kept sequences, upper case
    values: np.ndarray  # (N, P) float64 property values of the kept rows
    columns: list[str]  # property names, one per column of ``values``
    lines: list[int]  # 1-based file line of each kept row
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason) of every skipped row
    labels: dict[str, list[str]] = field(default_factory=dict)  # text columns asked for (e.g. a split column), kept rows

    def __len__(self) -> int:
        return len(self.sequences)

    def skip_summary(self, limit: int = 5) -> str:
        """One line naming how many rows were skipped and the first few reasons."""
        if not self.skipped:
            return f"{self.source}: all {len(self)} rows used"
        head = "; ".join(f"line {ln}: {why}" for ln, why in self.skipped[:limit])
        more = f" (and {len(self.skipped) - limit} more)" if len(self.skipped) > limit else ""
        return f"{self.source}: skipped {len(self.skipped)} row(s): {head}{more}"


def read_property_table(
    path: str | os.PathLike,
    sequence_column: str,
    value_columns: Sequence[str] = (),
    header: bool = True,
    skip_rows: int = 0,
    sep: str | None = None,
    column_names: Sequence[str] | None = None,
    label_columns: Sequence[str] = (),
) -> PropertyTable:
    """Read a table of sequences and numeric properties.

    Args:
        path: CSV/TSV file (optionally gzip-compressed).
        sequence_column: name of the sequence column (a 1-based column number when ``header`` is False).
        value_columns: numeric property columns (names, or 1-based numbers without a header).
        header: whether the first (non-skipped) line names the columns.
        skip_rows: leading lines to ignore (metadata lines).
        sep: field separator; None: tab for .tsv/.txt, comma for .csv, else sniffed from the first line.
        column_names: names for the columns of a headerless table (default "1", "2", ...).
        label_columns: text columns to carry along (``PropertyTable.labels``), e.g. a train/dev/test split column.

    Returns:
        A :class:`PropertyTable`; rows with a missing/non-numeric value or an invalid sequence are listed in
        ``skipped`` with their line number.

    Raises:
        InputError: the file is missing or unreadable, a column is missing (the message lists the columns the
            table has), or no row is usable.
    """
    import pandas as pd

    from dnalm.data.tables import guess_sep
    from dnalm.tokenizer import DNATokenizer

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    sep = sep or guess_sep(path)
    try:
        df = pd.read_csv(
            path, sep=sep, dtype=str, header=0 if header else None, skiprows=skip_rows, keep_default_na=False,
            na_filter=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as a table: {exc}") from None
    if not header:
        if column_names:
            if len(column_names) != df.shape[1]:
                raise InputError(
                    f"{path}: {len(column_names)} column names {list(column_names)} given for a table with "
                    f"{df.shape[1]} columns"
                )
            df.columns = [str(c) for c in column_names]
        else:
            df.columns = [str(i + 1) for i in range(df.shape[1])]
    elif column_names:
        raise InputError(f"{path}: column names can only be given for a table without a header (--no-header)")
    first_line = skip_rows + (2 if header else 1)
    wanted = [sequence_column, *value_columns, *label_columns]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        hint = "" if header else " (headerless table: columns are numbered from 1)"
        raise InputError(
            f"{path}: no column(s) {missing}; the table has columns {list(df.columns)}{hint}. For a table without "
            "a header (e.g. de Boer's random 80-mers) use --no-header --skip-rows N and --column-names NAME,NAME"
        )
    tok = DNATokenizer()
    seqs_raw = df[sequence_column].astype(str).str.strip().str.upper().tolist()
    values = np.full((len(df), len(value_columns)), np.nan)
    for j, col in enumerate(value_columns):
        values[:, j] = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=float)
    keep, skipped = [], []
    for i, s in enumerate(seqs_raw):
        line = first_line + i
        if not s:
            skipped.append((line, "empty sequence"))
            continue
        bad_val = [value_columns[j] for j in np.flatnonzero(~np.isfinite(values[i]))]
        if bad_val:
            raw = [df[c].iloc[i] for c in bad_val]
            skipped.append((line, f"column {bad_val[0]!r} is not a number ({raw[0]!r})"))
            continue
        try:
            tok.encode_np(s)
        except InputError as exc:
            skipped.append((line, f"sequence: {exc}"))
            continue
        keep.append(i)
    if not keep:
        first = f"; first problem: line {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise InputError(f"{path}: no usable rows{first}")
    return PropertyTable(
        source=str(path),
        sequences=[seqs_raw[i] for i in keep],
        values=values[keep],
        columns=[str(c) for c in value_columns],
        lines=[first_line + i for i in keep],
        skipped=skipped,
        labels={c: [str(df[c].iloc[i]).strip() for i in keep] for c in label_columns},
    )


SPLIT_NAMES = {"train": 0, "dev": 1, "validation": 1, "val": 1, "test": 2}


def split_indices_from_column(values: Sequence[str], source: str = "split column") -> list[np.ndarray]:
    """(train, validation, test) row indices from a column of split names (train; dev/validation/val; test).

    Raises:
        InputError: an unknown split name (naming it and the row), or an empty train or test set.
    """
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v.lower() not in SPLIT_NAMES:
            raise InputError(f"{source}, row {i + 1}: split {v!r} is not one of train, dev (validation), test")
        codes[i] = SPLIT_NAMES[v.lower()]
    out = [np.flatnonzero(codes == k) for k in range(3)]
    if not len(out[0]) or not len(out[2]):
        raise InputError(f"{source}: needs train and test rows (found {len(out[0])} train, {len(out[2])} test)")
    return out


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Random disjoint index sets of sizes ``round(f * n)`` (the last set takes the rest), seeded.

    Args:
        n: number of items.
        fractions: fractions of all but the first set, e.g. (0.1, 0.1) -> train, validation, test.
        seed: permutation seed.

    Returns:
        ``len(fractions) + 1`` sorted index arrays: the first gets what the others leave.
    """
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise InputError(f"split fractions {list(fractions)} must be >= 0 and sum to < 1")
    perm = np.random.default_rng(seed).permutation(n)
    sizes = [max(1, int(round(f * n))) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= n:
        raise InputError(f"{n} rows are too few for a split with fractions {list(fractions)}")
    out, start = [], n - sum(sizes)
    first = np.sort(perm[:start])
    for s in sizes:
        out.append(np.sort(perm[start : start + s]))
        start += s
    return [first, *out]

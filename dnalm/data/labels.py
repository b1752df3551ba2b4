"""Label columns -> numeric arrays: numbers, class names, and multi-label lists (multi-hot)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dnalm.errors import ConfigError, InputError

from .bed import parse_label_column


@dataclass
class LabelSpec:
    """How a table's label columns were turned into numbers (kept so predictions can be mapped back)."""

    columns: list[str]
    kind: (
        str  # "class" (int ids), "regression" (float), "multi_label" (multi-hot), "multi_task" (float vector)
    )
    classes: list = field(default_factory=list)  # class names/indices in id order ("class", "multi_label")
    num_classes: int | None = None

    @property
    def label_to_id(self) -> dict:
        """Mapping from class name (or raw integer label) to id."""
        return {c: i for i, c in enumerate(self.classes)}


def encode_labels(
    df: pd.DataFrame,
    columns: Sequence[str],
    source: str,
    rows: Sequence[int],
    num_classes: int | None = None,
    multi_label: bool | None = None,
    classes: Sequence | None = None,
    row_word: str = "line",
) -> tuple[np.ndarray, LabelSpec]:
    """Turn label columns into a numeric array.

    One column of integers gives class ids (int64, shape (N,)); of floats, regression targets (float32,
    (N,)); of strings, class names mapped to ids in sorted order (or the order of ``classes``); of
    comma-separated lists, multi-hot vectors (float32, (N, num_classes)) over integer indices or names.
    Several numeric columns give a float32 (N, k) multi-task target.

    Args:
        df: the table.
        columns: label column names.
        source: file name for error messages.
        rows: the line/row number of each record, for error messages.
        num_classes: number of classes (inferred as max id + 1 or number of names when None).
        multi_label: force or forbid multi-label parsing; None detects comma-separated values.
        classes: explicit class names in id order (names outside it are an error).
        row_word: "line" or "row" in error messages.

    Returns:
        (labels array, LabelSpec).
    """
    columns = list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{source}: label column(s) {missing} not found; columns are {list(df.columns)}")
    if len(columns) > 1:
        arrays = []
        for col in columns:
            values = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if len(bad):
                i = int(bad[0])
                raise InputError(
                    f"{source}: {row_word} {rows[i]}: label column {col!r} value {df[col].iloc[i]!r} is not "
                    "a number (several label columns are read as a multi-task numeric target)"
                )
            arrays.append(values.to_numpy(dtype=np.float32))
        return np.stack(arrays, axis=1), LabelSpec(columns, "multi_task", num_classes=len(columns))

    col = columns[0]
    column = parse_label_column(df[col], multi_label=multi_label)
    is_list = bool(len(column)) and column.map(lambda v: isinstance(v, list)).all()
    if is_list:
        return _multi_hot(column, col, source, rows, num_classes, classes, row_word)

    raw = column
    for i, v in enumerate(raw):
        if v is None or (not isinstance(v, str) and pd.isna(v)) or (isinstance(v, str) and not v.strip()):
            raise InputError(f"{source}: {row_word} {rows[i]}: label column {col!r} is empty")
    numeric = pd.to_numeric(raw, errors="coerce")
    if classes is None and not numeric.isna().any():
        values = numeric.to_numpy()
        if values.dtype.kind in "iub":  # integers are class ids; "1.0" stays a float (regression) target
            ids = values.astype(np.int64)
            n = num_classes if num_classes is not None else int(ids.max()) + 1 if len(ids) else 0
            bad = np.flatnonzero((ids < 0) | (ids >= n))
            if len(bad):
                i = int(bad[0])
                raise InputError(f"{source}: {row_word} {rows[i]}: class id {ids[i]} is outside 0..{n - 1}")
            return ids, LabelSpec([col], "class", classes=list(range(n)), num_classes=n)
        return values.astype(np.float32), LabelSpec([col], "regression")

    names = [str(v).strip() for v in raw]
    if classes is None:
        classes = sorted(set(names))
    classes = list(classes)
    index = {str(c): i for i, c in enumerate(classes)}
    ids = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        if name not in index:
            raise InputError(f"{source}: {row_word} {rows[i]}: unknown class {name!r}; known: {classes}")
        ids[i] = index[name]
    if num_classes is not None and num_classes != len(classes):
        raise ConfigError(f"num_classes={num_classes} but {len(classes)} class names: {classes}")
    return ids, LabelSpec([col], "class", classes=classes, num_classes=len(classes))


def _multi_hot(column, col, source, rows, num_classes, classes, row_word):
    """Multi-hot float32 (N, num_classes) from a column of label lists (indices or names)."""
    items = [x for v in column for x in v]
    all_int = all(isinstance(x, (int, np.integer)) for x in items)
    if classes is None:
        if all_int:
            classes = list(
                range(num_classes if num_classes is not None else (max(items) + 1 if items else 0))
            )
        else:
            classes = sorted({str(x) for x in items})
    classes = list(classes)
    n = len(classes)
    if num_classes is not None and num_classes != n:
        raise ConfigError(f"num_classes={num_classes} but {n} class names: {classes}")
    index = {str(c): i for i, c in enumerate(classes)}  # str keys: "17" in a list matches class 17
    out = np.zeros((len(column), n), dtype=np.float32)
    for i, labels in enumerate(column):
        for x in labels:
            j = index.get(str(x))
            if j is None:
                known = f"0..{n - 1}" if all_int and classes == list(range(n)) else str(classes)
                raise InputError(
                    f"{source}: {row_word} {rows[i]}: label {x!r} in column {col!r} is outside the {n} "
                    f"classes ({known})"
                )
            out[i, j] = 1.0
    return out, LabelSpec([col], "multi_label", classes=classes, num_classes=n)


def auto_label_columns(df: pd.DataFrame) -> list[str]:
    """``label`` when present, else the single unnamed extra column (``col7``, BEND's layout), else none."""
    if "label" in df.columns:
        return ["label"]
    extra = [c for c in df.columns if isinstance(c, str) and c.startswith("col") and c[3:].isdigit()]
    if len(extra) == 1:
        return extra
    if len(extra) > 1:
        raise ConfigError(
            f"several unnamed extra columns {extra} could hold labels; pass label_columns=[...] (or None)"
        )
    return []

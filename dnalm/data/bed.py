"""BED and BED-like interval tables: reading with line-exact validation.

Coordinates are 0-based half-open throughout, as in BED itself.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dnalm.errors import ConfigError, InputError
from dnalm.io.compression import open_maybe_gzip

if TYPE_CHECKING:  # pragma: no cover
    from dnalm.io.genome import Genome

# Names of BED columns 4..6 when a file has no header (columns beyond these are named "col7", "col8", ...
# after their 1-based field number, as `cut -f7` would).
BED_OPTIONAL = ("name", "score", "strand")

# Header spellings recognised for the three coordinate columns.
_CHROM_NAMES = {"chrom", "chromosome", "chr", "seqname", "seqid", "contig", "#chrom", "#chromosome", "#chr"}
_START_NAMES = {"start", "chromstart", "chrom_start", "begin", "from"}
_END_NAMES = {"end", "chromend", "chrom_end", "stop", "to"}

STRANDS = {"+", "-", "."}


def _is_int(text: str) -> bool:
    text = text.strip()
    if text[:1] in "+-":
        text = text[1:]
    return text.isdigit()


def _looks_like_header(fields: list[str]) -> bool:
    """A header row has non-integer start/end fields named like coordinates."""
    if len(fields) < 3:
        return False
    if _is_int(fields[1]) or _is_int(fields[2]):
        return False
    return fields[1].strip().lower() in _START_NAMES or fields[2].strip().lower() in _END_NAMES


def _normalise_header(fields: list[str]) -> list[str]:
    """Column names for a header row; the first three become chrom, start, end."""
    names = [f.strip().lstrip("#").strip() for f in fields]
    names[:3] = ["chrom", "start", "end"]
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if not name:
            name = f"col{i + 1}"
        if name in seen:  # duplicate header names would make DataFrame columns ambiguous
            name = f"{name}.{i + 1}"
        seen[name] = i
        out.append(name)
    return out


def _split(line: str) -> list[str]:
    # BED is tab-separated; a few tools write spaces. Tabs win when present so that names may contain spaces.
    return line.split("\t") if "\t" in line else line.split()


def _parse_int(text: str, what: str, where: str) -> int:
    text = text.strip()
    if not _is_int(text):
        raise InputError(f"{where}: {what} {text!r} is not an integer")
    value = int(text)
    if value < 0:
        raise InputError(f"{where}: {what} {value} is negative")
    return value


def read_bed(
    path: str | os.PathLike | pd.DataFrame,
    genome: Genome | None = None,
    label_columns: str | Sequence[str] | None = None,
    multi_label: bool | None = None,
) -> pd.DataFrame:
    """Read a BED3+/BED6+ file or a BED-like table, with or without a header, plain or gzip.

    Comment lines (``#``), ``track``/``browser`` lines and blank lines are skipped; a ``#``-prefixed
    line directly before the first record, or a first line whose 2nd/3rd fields are named like
    ``start``/``end``, is taken as the header. Without a header, columns 4-6 are ``name``, ``score``,
    ``strand`` and further columns are ``col7``, ``col8``, ... (1-based field numbers).

    Args:
        path: file path (BED, BED.gz, or a tab/whitespace-separated table), or a DataFrame with
            ``chrom``, ``start``, ``end`` columns (validated the same way; rows are reported by index).
        genome: when given, every chromosome must resolve through ``genome.resolve`` (aliases such as
            ``chrI`` == ``I`` are accepted) and every interval must end within the chromosome.
        label_columns: columns holding labels. A label column containing comma-separated values is
            parsed into Python lists (multi-label, BEND/Basset style); integers become ints.
        multi_label: force (True) or forbid (False) list parsing of label columns; None detects commas.

    Returns:
        DataFrame with ``chrom`` (as written in the file), ``start``, ``end`` (int64), the other columns
        (numeric where every value is numeric), and ``line``: the 1-based line number of each record.

    Raises:
        InputError: naming the file, the line and the problem, for start > end, negative or non-integer
            coordinates, an unknown chromosome, an interval past the chromosome end, a bad strand, or
            a record whose column count differs from the first record's (or the header's).
    """
    if isinstance(path, pd.DataFrame):
        df = _from_frame(path)
        source = "<DataFrame>"
    else:
        source = str(path)
        df = _read_bed_file(Path(path))
    if label_columns is not None:
        cols = [label_columns] if isinstance(label_columns, str) else list(label_columns)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise InputError(
                f"{source}: label column(s) {missing} not found; columns are {[c for c in df.columns]}"
            )
        for col in cols:
            df[col] = parse_label_column(df[col], multi_label=multi_label)
    if genome is not None:
        check_against_genome(df, genome, source)
    return df


def _from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate a caller's DataFrame of intervals; 'line' becomes the row position (1-based)."""
    missing = [c for c in ("chrom", "start", "end") if c not in frame.columns]
    if missing:
        raise InputError(f"<DataFrame>: missing column(s) {missing}; columns are {list(frame.columns)}")
    df = frame.copy().reset_index(drop=True)
    if "line" not in df.columns:
        df["line"] = range(1, len(df) + 1)
    for col in ("start", "end"):
        values = df[col]
        for i, v in enumerate(values):
            where = f"<DataFrame>: row {i + 1}"
            if isinstance(v, str):
                _parse_int(v, col, where)
            elif pd.isna(v) or float(v) != int(v):
                raise InputError(f"{where}: {col} {v!r} is not an integer")
            elif v < 0:
                raise InputError(f"{where}: {col} {int(v)} is negative")
        df[col] = values.astype("int64")
    df["chrom"] = df["chrom"].astype(str)
    bad = (df["start"] > df["end"]).to_numpy().nonzero()[0]
    if len(bad):
        i = int(bad[0])
        raise InputError(f"<DataFrame>: row {i + 1}: start {df['start'][i]} > end {df['end'][i]}")
    if "strand" in df.columns:
        _check_strands(df["strand"].astype(str).tolist(), df["line"].tolist(), "<DataFrame>: row")
    return df


def _check_strands(strands: Iterable[str], lines: Iterable[int], prefix: str) -> None:
    for s, line in zip(strands, lines):
        if s not in STRANDS:
            raise InputError(f"{prefix} {line}: strand {s!r} is not one of '+', '-', '.'")


def _read_bed_file(path: Path) -> pd.DataFrame:
    """Parse a BED-like file line by line so that every error can name its line."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    header: list[str] | None = None
    last_comment: list[str] | None = None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    ncol: int | None = None
    with open_maybe_gzip(path, "rt", encoding="utf-8", newline=None) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                if line.startswith("#"):
                    if ncol is None:
                        last_comment = _split(line)
                    continue
                if line.startswith(("track ", "track\t", "browser ", "browser\t")) and ncol is None:
                    continue
                fields = _split(line)
                if ncol is None:
                    if _looks_like_header(fields):
                        header = _normalise_header(fields)
                        ncol = len(header)
                        continue
                    if (
                        last_comment is not None
                        and len(last_comment) == len(fields)
                        and not _is_int(last_comment[1])
                    ):
                        header = _normalise_header(last_comment)
                    ncol = len(fields)
                    if ncol < 3:
                        raise InputError(
                            f"{path}: line {lineno}: expected at least 3 columns (chrom, start, end), "
                            f"found {ncol}: {line[:80]!r}"
                        )
                if len(fields) != ncol:
                    raise InputError(
                        f"{path}: line {lineno}: expected {ncol} columns like the "
                        f"{'header' if header else 'first record'}, found {len(fields)}: {line[:80]!r}"
                    )
                rows.append(fields)
                line_numbers.append(lineno)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not a text BED file ({exc})") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    if ncol is None:
        raise InputError(f"{path}: no intervals (the file is empty or holds only comments/header)")
    names = header or (
        ["chrom", "start", "end"]
        + list(BED_OPTIONAL[: max(0, ncol - 3)])
        + [f"col{i + 1}" for i in range(6, ncol)]
    )
    columns_text = list(zip(*rows))  # one tuple of strings per column
    starts = _coordinates(columns_text[1], "start", path, line_numbers)
    ends = _coordinates(columns_text[2], "end", path, line_numbers)
    bad = np.flatnonzero(starts > ends)
    if len(bad):
        i = int(bad[0])
        raise InputError(f"{path}: line {line_numbers[i]}: start {starts[i]} > end {ends[i]}")
    columns: dict[str, object] = {"chrom": [c.strip() for c in columns_text[0]], "start": starts, "end": ends}
    for j, name in enumerate(names[3:], start=3):
        values = [v.strip() for v in columns_text[j]]
        columns[name] = _maybe_numeric(values) if name != "strand" else values
    df = pd.DataFrame(columns)
    df["line"] = np.asarray(line_numbers, dtype=np.int64)
    if "strand" in df.columns:
        _check_strands(df["strand"], line_numbers, f"{path}: line")
    return df


def _coordinates(values: tuple[str, ...], what: str, path: Path, line_numbers: list[int]) -> np.ndarray:
    """int64 coordinates from text, vectorised; a per-line pass names the first bad line on failure."""
    try:
        coords = np.asarray(values).astype(np.int64)  # accepts "12", rejects "1.5", "abc", ""
    except (ValueError, OverflowError):
        coords = None
    if coords is None or (coords < 0).any():
        for text, lineno in zip(values, line_numbers):
            _parse_int(text, what, f"{path}: line {lineno}")
    return coords


def _maybe_numeric(values: list[str]) -> pd.Series:
    """Numeric series if every value parses as a number, else the strings unchanged."""
    series = pd.Series(values, dtype=object)
    try:
        return pd.to_numeric(series)
    except (ValueError, TypeError):
        return series


def parse_label_column(column: pd.Series, multi_label: bool | None = None) -> pd.Series:
    """Parse a label column: comma-separated lists become lists (ints where possible).

    Args:
        column: raw label values.
        multi_label: True to split every value on commas, False to keep values whole, None to split when
            any value contains a comma.

    Returns:
        The column unchanged (single-label) or a Series of Python lists (multi-label). Empty values and
        ``.`` give empty lists (no positive class).
    """
    if multi_label is None:
        multi_label = bool(column.map(lambda v: isinstance(v, str) and "," in v).any())
    if not multi_label:
        return column
    if column.map(lambda v: isinstance(v, list)).all():
        return column

    def split(v) -> list:
        if isinstance(v, list):
            return v
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return []
        text = str(v).strip()
        if text in ("", "."):
            return []
        items = [t.strip() for t in text.split(",")]
        try:
            return [int(t) for t in items if t]
        except ValueError:
            return [int(t) if _is_int(t) else t for t in items if t]

    return column.map(split).astype(object)


def check_against_genome(df: pd.DataFrame, genome: Genome, source: str) -> None:
    """Check that each chromosome resolves in ``genome`` and each interval ends within it.

    Raises:
        InputError: naming ``source``, the line and the chromosome.
    """
    sizes = genome.chrom_sizes
    resolved: dict[str, str] = {}
    lines = df["line"].tolist() if "line" in df.columns else list(range(1, len(df) + 1))
    unit = "row" if source == "<DataFrame>" else "line"
    for chrom, end, line in zip(df["chrom"].tolist(), df["end"].tolist(), lines):
        if chrom not in resolved:
            try:
                resolved[chrom] = genome.resolve(chrom)
            except InputError as exc:
                raise InputError(f"{source}: {unit} {line}: unknown chromosome {chrom!r} ({exc})") from None
        size = sizes[resolved[chrom]]
        if end > size:
            raise InputError(
                f"{source}: {unit} {line}: end {end} is past the end of {chrom} ({size:,} bp); "
                "is the BED file for another assembly?"
            )


def resize_interval(start: int, end: int, length: int, strand: str = "+") -> tuple[int, int]:
    """Resize [start, end) to ``length`` bp around its centre (0-based half-open).

    When the centre falls between two bases and the extra base has to go to one side, it goes to the
    5' side of the feature's strand (left on ``+``, right on ``-``), so that a feature and its
    reverse-complemented twin give mirror-image windows.

    Args:
        start: interval start (0-based).
        end: interval end (exclusive).
        length: output length in bp.
        strand: "+", "-" or ".".

    Returns:
        (new_start, new_end) with new_end - new_start == length; new_start may be negative.
    """
    if length < 1:
        raise ConfigError(f"length must be a positive number of bp, got {length}")
    if strand == "-":
        new_end = -((-(start + end + length)) // 2)  # ceil((start + end + length) / 2)
        return new_end - length, new_end
    new_start = (start + end - length) // 2  # floor((start + end - length) / 2)
    return new_start, new_start + length

"""The one reader of sequence inputs (FASTA, CSV/TSV tables, or BED intervals + a genome) and their region/shard selection.

Every command that takes sequences (``embed``, ``predict``, ``ism``, ``attribute``, ``motifs``, ``generate
--prompts``) reads them here, so a file that works for one works for all:

- FASTA (``.fa``/``.fasta``/``.fna``/``.fas``, plain, gzip or bgzip): records in file order, named by their ids.
- BED (``.bed``, ``.narrowPeak``, gzip ok) + ``fasta`` (the genome): each interval's sequence (a ``-`` strand
  interval reverse-complemented unless ``strand_aware=False``), optionally resized around its centre; named by its
  name column, else ``chrom:start-end`` (1-based, ``(-)`` for the minus strand); genome coordinates kept.
- anything else: a CSV/TSV table with a sequence column; named by its ``name`` or ``id`` column, else ``row<N>``.

:func:`select` applies ``--region`` / ``--shard I/N`` (:mod:`dnalm.io.regions`): regions need coordinates (BED
input), a record's work is its length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnalm.errors import InputError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
BED_SUFFIXES = (".bed", ".narrowpeak")


def is_bed(path: str | os.PathLike) -> bool:
    """Whether a file name is a BED file's (``.bed``, ``.narrowPeak``, optionally ``.gz``)."""
    return Path(path).name.lower().removesuffix(".gz").endswith(BED_SUFFIXES)


def is_fasta(path: str | os.PathLike) -> bool:
    """Whether a file name is a FASTA file's (``.fa``, ``.fasta``, ``.fna``, ``.fas``, optionally ``.gz``)."""
    return Path(path).name.lower().removesuffix(".gz").endswith(FASTA_SUFFIXES)


def read_fasta_records(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(names, sequences) of every record of a FASTA file (plain, gzip or bgzip), read with pysam."""
    import pysam

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    names, seqs = [], []
    try:
        with pysam.FastxFile(str(path)) as fh:
            for rec in fh:
                names.append(rec.name)
                seqs.append(rec.sequence.upper())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable FASTA file ({exc})") from None
    if not seqs:
        raise InputError(f"{path}: no FASTA records")
    return names, seqs


@dataclass
class SequenceInput:
    """Sequences read from a file, in file order, with what identifies each."""

    source: str
    sequences: list[str]
    names: list[str]
    labels: np.ndarray | None = None
    # per-row arrays: ``name`` (FASTA; BED with a name column), ``chrom``, ``start``, ``end``, ``strand`` (BED: the
    # fetched windows)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    rows: object = None  # the table's / BED file's rows (a DataFrame) for filters on other columns; None for FASTA
    record: np.ndarray | None = None  # (n,) 0-based input record numbers (after :func:`select`: those kept)

    def __post_init__(self):
        if self.record is None:
            self.record = np.arange(len(self.sequences), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def coords(self) -> dict[str, np.ndarray] | None:
        """``chrom``, ``start``, ``end``, ``strand`` of BED input (0-based half-open), else None."""
        if "chrom" not in self.extra:
            return None
        return {k: self.extra[k] for k in ("chrom", "start", "end", "strand")}  # not the name: names are separate

    def take(self, keep: np.ndarray) -> SequenceInput:
        """The records where ``keep`` (a bool mask or indices), in input order."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return SequenceInput(
            self.source, [self.sequences[i] for i in idx], [self.names[i] for i in idx],
            None if self.labels is None else self.labels[idx], {k: v[idx] for k, v in self.extra.items()},
            None if self.rows is None else self.rows.iloc[idx], self.record[idx])


def read_sequence_input(
    input: str | os.PathLike,
    fasta: str | os.PathLike | None = None,
    sequence_column: str = "sequence",
    label_columns: Sequence[str] | str | None = "auto",
    length: int | None = None,
    strand_aware: bool = True,
) -> SequenceInput:
    """Sequences (labels, names, coordinates) from a FASTA file, a CSV/TSV table or a BED file + genome.

    Args:
        input: FASTA (records in file order, no labels), table with a sequence column, or BED/BED-like
            intervals (needs ``fasta``).
        fasta: genome FASTA for BED input.
        sequence_column: sequence column of a table.
        label_columns: label column(s); ``"auto"`` takes ``label`` (tables) or ``label``/the single extra
            column (BED, e.g. BEND's multi-label lists); None for no labels.
        length: BED only: resize every interval to this many bp around its centre (N-padded at chromosome ends).
        strand_aware: BED only: reverse complement ``-`` strand intervals.
    """
    path = Path(input)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if is_fasta(path):
        names, seqs = read_fasta_records(path)
        return SequenceInput(str(path), seqs, names, extra={"name": np.asarray(names, dtype=str)})
    if is_bed(path):
        from dnalm.data.intervals import IntervalDataset

        if fasta is None:
            raise InputError(f"{path}: a BED input needs --fasta GENOME")
        ds = IntervalDataset(path, fasta, length=length, label_columns=label_columns, strand_aware=strand_aware)
        seqs, chrom, start, end, strand = [], [], [], [], []
        for i in range(len(ds)):
            c, s, e, st = ds.window(i)
            seqs.append(ds.genome.fetch(c, s, e, strand=st, pad=True).upper())
            chrom.append(c)
            start.append(s)
            end.append(e)
            strand.append(st)
        rows = ds.intervals
        extra = {"chrom": np.asarray(chrom, dtype=str), "start": np.asarray(start, dtype=np.int64),
                 "end": np.asarray(end, dtype=np.int64), "strand": np.asarray(strand, dtype=str)}
        if "name" in rows.columns and rows["name"].astype(str).ne(".").all():
            names = rows["name"].astype(str).tolist()
            extra["name"] = np.asarray(names, dtype=str)  # the BED's own ids travel with the rows
        else:
            names = [f"{c}:{s + 1}-{e}{'' if st == '+' else '(-)'}" for c, s, e, st in zip(chrom, start, end, strand)]
        return SequenceInput(str(path), seqs, names, ds.labels, extra, rows.reset_index(drop=True))
    import pandas as pd

    from dnalm.data.tables import SequenceTable, guess_sep

    if label_columns == "auto":
        try:
            header = pd.read_csv(path, sep=guess_sep(path), nrows=0).columns
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: the table is empty (no header line, no rows)") from None
        label_columns = ["label"] if "label" in header else None
    table = SequenceTable(path, sequence_column=sequence_column, label_columns=label_columns)
    frame = table.frame.reset_index(drop=True)
    seqs = frame[sequence_column].astype(str).str.strip().str.upper().tolist()
    names_col = next((c for c in ("name", "id") if c in frame.columns), None)
    names = frame[names_col].astype(str).tolist() if names_col else [f"row{i + 1}" for i in range(len(seqs))]
    return SequenceInput(str(path), seqs, names, table.labels, {}, frame)


def load_sequences(
    input: str | os.PathLike,
    fasta: str | os.PathLike | None = None,
    sequence_column: str = "sequence",
    label_columns: Sequence[str] | str | None = "auto",
    length: int | None = None,
    strand_aware: bool = True,
) -> tuple[list[str], np.ndarray | None, dict[str, np.ndarray]]:
    """(sequences, labels or None, extra per-row arrays) of :func:`read_sequence_input` (same arguments)."""
    r = read_sequence_input(input, fasta, sequence_column, label_columns, length, strand_aware)
    return r.sequences, r.labels, r.extra


def select(records: SequenceInput, regions: Sequence[str] = (), shard: tuple[int, int] | str | None = None,
           genome=None) -> SequenceInput:
    """The records of ``--region`` values and ``--shard I/N`` (:mod:`dnalm.io.regions`), in input order.

    A record is in a region when its interval overlaps it (BED input only: FASTA and table records have no
    coordinates). Shards are contiguous runs of the selected records balanced by their bases (the work of a
    forward pass grows with length), so the N shards of one input keep every selected record exactly once.

    Args:
        records: from :func:`read_sequence_input`.
        regions: ``--region`` values (``CHR``, ``CHR:START-END`` 1-based inclusive, or a BED file).
        shard: ``(I, N)`` or ``"I/N"``.
        genome: the BED input's genome (:class:`dnalm.Genome` or FASTA path), to match region names by alias.
    """
    from dnalm.io.regions import overlaps, parse_regions, parse_shard, select_records

    regions = parse_regions(regions) if regions else ()
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if not regions and shard is None:
        return records
    inside = None
    if regions:
        if records.coords is None:
            raise InputError(f"{records.source}: --region needs genome coordinates, i.e. BED input (+ --fasta); "
                             "FASTA and table records have none")
        names_of = _alias_names(regions, genome)
        inside = np.array([overlaps(regions, names_of(c), int(s), int(e)) for c, s, e in
                           zip(records.extra["chrom"], records.extra["start"], records.extra["end"])], dtype=bool)
    work = np.asarray([len(s) for s in records.sequences], dtype=float) + 2.0  # + [BOS]/[EOS]
    keep, _ = select_records(work, inside, shard)
    return records.take(keep)


def _alias_names(regions, genome):
    """chrom -> the set of names a region may use for it (the name itself, and its genome name's aliases)."""
    if genome is None:
        return lambda c: {str(c)}
    from dnalm.io.genome import Genome

    genome = genome if isinstance(genome, Genome) else Genome(genome)
    resolved: dict[str, str | None] = {}
    for r in regions:
        try:
            resolved[r.chrom] = genome.resolve(r.chrom)
        except InputError:
            resolved[r.chrom] = None
    return lambda c: {str(c)} | {name for name, g in resolved.items() if g is not None and g == str(c)}

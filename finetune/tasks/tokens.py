"""Per-nucleotide classification tasks: per-base labels in a table, or a BED track painted onto windows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dnalm.data.fetch import fetch_intervals
from dnalm.errors import InputError
from finetune.tasks.base import SKIP_COLUMNS, Task, TaskSplit, assign_splits, find_split_column
from finetune.tasks.spec import TaskSpec, parse_genome, parse_task_spec


# --------------------------------------------------------------------------------------------- per-nucleotide
def parse_base_labels(text: str, length: int, index: dict[str, int] | None, where: str) -> np.ndarray:
    """Per-base labels of one sequence: a string with one character per base (``"0011100"``, ``"eeiiinn"``)
    or comma-separated values (``"0,0,1,1"``); ``index`` maps names to ids (None: integers)."""
    text = str(text).strip()
    items = [t.strip() for t in text.split(",")] if "," in text else list(text)
    if len(items) != length:
        raise InputError(f"{where}: {len(items)} per-base labels for a sequence of {length} bases")
    if index is None:
        try:
            return np.asarray([int(t) for t in items], dtype=np.int64)
        except ValueError:
            raise InputError(f"{where}: per-base labels are not integers (give classes=...)") from None
    try:
        return np.asarray([index[t] for t in items], dtype=np.int64)
    except KeyError as exc:
        raise InputError(f"{where}: unknown per-base label {exc.args[0]!r}; classes are {list(index)}") from None


def pad_labels(rows: list[np.ndarray]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def load_token_task(spec: TaskSpec | str) -> Task:
    """A per-nucleotide classification task (metric: MCC over all labelled bases).

    Two layouts:

    - a table whose ``label`` column holds per-base labels (one character per base, or comma-separated
      values; names mapped through ``classes`` or their sorted set);
    - a BED of windows + ``genome`` + ``track``: a BED of labelled features (class name in column
      ``track_label``) painted onto each window; bases outside every feature are class ``background``
      (id 0); later track rows win where features overlap; ``-`` strand windows are reverse complemented
      and their labels reversed.
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"tokens:{spec}")
    path = spec.resolve_path(spec.path)
    notes: list[str] = []
    skipped = pd.DataFrame(columns=SKIP_COLUMNS)
    if spec.track:
        from dnalm.data.bed import read_bed

        windows = read_bed(path)
        track = read_bed(spec.resolve_path(spec.track))
        if spec.track_label not in track.columns:
            raise InputError(f"{spec.track}: no column {spec.track_label!r}; columns are {list(track.columns)}")
        names = sorted({str(v) for v in track[spec.track_label]} - {spec.background})
        classes = [spec.background] + (list(spec.classes) if spec.classes else names)
        index = {c: i for i, c in enumerate(classes)}
        genome = parse_genome(spec.genome, spec) if spec.genome else None
        seqs, kept, meta, skipped = fetch_intervals(windows, genome, "", str(path), spec.strand_aware,
                                                      spec.length, "no genome: none given (genome=FASTA)")
        by_chrom = {c: g for c, g in track.groupby(track["chrom"].astype(str))}
        label_rows = []
        for j, row in meta.iterrows():
            lab = np.zeros(row["end"] - row["start"], dtype=np.int64)
            feats = by_chrom.get(row["chrom"])
            if feats is not None:
                hit = feats[(feats["start"] < row["end"]) & (feats["end"] > row["start"])]
                for s, e, name in zip(hit["start"], hit["end"], hit[spec.track_label].astype(str)):
                    if name not in index:
                        raise InputError(f"{spec.track}: class {name!r} not in classes {classes}")
                    lab[max(s, row["start"]) - row["start"]: min(e, row["end"]) - row["start"]] = index[name]
            label_rows.append(lab[::-1] if row["strand"] == "-" else lab)
        labels = pad_labels(label_rows)
        split_col = find_split_column(windows, spec)
        split_values = [windows[split_col].tolist()[i] for i in kept] if split_col else None
        rows = TaskSplit(seqs, labels, meta)
    else:
        from dnalm.data.tables import SequenceTable

        sep = {"": None, "tab": "\t", "\\t": "\t", "comma": ","}.get(spec.sep, spec.sep)
        table = SequenceTable(path, sequence_column=spec.sequence, label_columns=None, sep=sep)
        col = spec.label if isinstance(spec.label, str) else spec.label[0]
        if col not in table.frame.columns:
            raise InputError(f"{path}: no label column {col!r}; columns are {list(table.frame.columns)}")
        seqs = table.frame[spec.sequence].astype(str).str.strip().str.upper().tolist()
        raw = table.frame[col].astype(str).tolist()
        if spec.classes:
            classes = [str(c) for c in spec.classes]
        else:
            values = {t.strip() for r in raw for t in (r.split(",") if "," in r else list(r.strip()))}
            classes = sorted(values, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
        ints = all(c.lstrip("-").isdigit() for c in classes)
        index = None if ints and not spec.classes else {c: i for i, c in enumerate(classes)}
        label_rows = [parse_base_labels(r, len(s), index, f"{path}: line {table.rows[i]}")
                      for i, (r, s) in enumerate(zip(raw, seqs))]
        if index is None:
            top = max((int(r.max()) for r in label_rows if len(r)), default=0)
            classes = list(range(max(top + 1, spec.num_classes)))
        labels = pad_labels(label_rows)
        split_col = spec.split or ("split" if "split" in table.frame.columns else "")
        split_values = table.frame[split_col].tolist() if split_col else None
        rows = TaskSplit(seqs, labels, pd.DataFrame({"source": str(path), "line": table.rows}))
    if len(rows) == 0:
        raise InputError(f"{path}: no windows could be resolved to a sequence")
    n_classes = max(len(classes), spec.num_classes or 0)
    if n_classes < 2:
        raise InputError(f"{path}: per-base labels have only {n_classes} class(es)")
    strat = np.zeros(len(rows), dtype=np.int64)  # no stratification for per-base labels
    idx, notes2 = assign_splits(len(rows), strat, split_values, spec, "token_classification", str(path))
    notes += notes2
    if len(skipped):
        notes.append(f"{len(skipped):,} window(s) not inside the genome were skipped (see skipped)")
    return Task(
        name=spec.name or path.name.split(".")[0], kind="token_classification", num_outputs=n_classes,
        metric=spec.metric or "mcc", train=rows.take(idx["train"]), dev=rows.take(idx["dev"]),
        test=rows.take(idx["test"]), classes=classes, source=str(path), notes=notes, skipped=skipped,
    )

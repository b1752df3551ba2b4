"""Tasks from any CSV/TSV of sequences and labels (one file with a split column, or one file per split)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from dnalm.errors import InputError
from finetune.tasks.base import (
    SPLITS,
    Task,
    TaskSplit,
    assign_splits,
    carve_split,
    class_names,
    kind_from_spec,
    task_metric,
)
from finetune.tasks.spec import TaskSpec, parse_task_spec


def read_table(path: Path, spec: TaskSpec, label_columns, classes=None, num_classes=None):
    from dnalm.data.tables import SequenceTable

    sep = {"": None, "tab": "\t", "\\t": "\t", "comma": ","}.get(spec.sep, spec.sep)
    return SequenceTable(
        path,
        sequence_column=spec.sequence,
        label_columns=label_columns,
        sep=sep,
        num_classes=num_classes,
        multi_label=spec.multi_label,
        classes=classes,
    )


def tables_to_splits(tables: dict, spec: TaskSpec, source: str) -> tuple[dict, object]:
    """Class ids consistent across split tables: ``num_classes`` is the largest over the splits."""
    specs = {k: t.label_spec for k, t in tables.items()}
    first = next(iter(specs.values()))
    if first.kind == "class" or first.kind == "multi_label":
        n = max(s.num_classes for s in specs.values())
        for s in specs.values():
            if s.kind != first.kind:
                raise InputError(f"{source}: splits disagree on the label kind ({s.kind} vs {first.kind})")
        if first.kind == "multi_label":  # multi-hot widths must agree
            for k, t in tables.items():
                if t.labels.shape[1] < n:
                    t.labels = np.pad(t.labels, ((0, 0), (0, n - t.labels.shape[1])))
        first = dataclasses.replace(first, num_classes=n, classes=list(range(n)) if all(
            isinstance(c, (int, np.integer)) for c in first.classes) else first.classes)
    splits = {}
    for k, t in tables.items():
        seqs = t.frame[spec.sequence].astype(str).str.strip().str.upper().tolist()
        meta = pd.DataFrame({"source": t.source, "line": t.rows})
        splits[k] = TaskSplit(seqs, t.labels, meta)
    return splits, first


# --------------------------------------------------------------------------------------------- any table
def load_table_task(spec: TaskSpec | str) -> Task:
    """Any CSV/TSV with a sequence column and label column(s): class ids or names (binary/multiclass),
    numbers (regression; several columns = several outputs), comma-separated lists (multi-label).

    ``path`` is one file (with a ``split`` column, or test/dev carved from it) or a pattern with ``{split}``
    (``{split}`` = train, dev, test; a missing dev file is carved from train).
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"csv:{spec}")
    label_cols = spec.label if isinstance(spec.label, list) else [spec.label]
    pattern = str(spec.resolve_path(spec.path))
    classes = spec.classes or None
    notes: list[str] = []
    if "{split}" in pattern:
        tables = {}
        for s in SPLITS:
            p = Path(pattern.replace("{split}", s))
            if not p.exists() and s == "dev":
                for alt in ("valid", "validation", "val"):
                    if Path(pattern.replace("{split}", alt)).exists():
                        p = Path(pattern.replace("{split}", alt))
                        break
            if not p.exists():
                if s == "dev":
                    continue
                raise InputError(f"{p}: no such file (from the pattern {pattern})")
            tables[s] = read_table(p, spec, label_cols, classes, spec.num_classes or None)
            if classes is None and tables[s].label_spec.kind == "class" and not all(
                    isinstance(c, (int, np.integer)) for c in tables[s].label_spec.classes):
                classes = tables[s].label_spec.classes
        splits, label_spec = tables_to_splits(tables, spec, pattern)
        kind, n_out = kind_from_spec(label_spec, spec.kind, pattern)
        if "dev" not in splits:
            kept, carved = carve_split(splits["train"].labels, spec.dev_fraction, spec.seed, kind)
            splits["dev"], splits["train"] = splits["train"].take(carved), splits["train"].take(kept)
            notes.append(f"no dev file: dev carved from train ({spec.dev_fraction:.0%}, seed {spec.seed})")
        name = spec.name or Path(pattern).parent.name
    else:
        table = read_table(Path(pattern), spec, label_cols, classes, spec.num_classes or None)
        (splits0, label_spec) = tables_to_splits({"all": table}, spec, pattern)
        kind, n_out = kind_from_spec(label_spec, spec.kind, pattern)
        split_values = None
        if spec.split or "split" in table.frame.columns:
            col = spec.split or "split"
            if col not in table.frame.columns:
                raise InputError(f"{pattern}: no split column {col!r}; columns are {list(table.frame.columns)}")
            split_values = table.frame[col].tolist()
        all_rows = splits0["all"]
        idx, notes = assign_splits(len(all_rows), all_rows.labels, split_values, spec, kind, pattern)
        splits = {s: all_rows.take(idx[s]) for s in SPLITS}
        name = spec.name or Path(pattern).name.split(".")[0]
    return Task(
        name=name, kind=kind, num_outputs=n_out, metric=task_metric(spec, kind), train=splits["train"],
        dev=splits["dev"], test=splits["test"], classes=class_names(label_spec), source=pattern, notes=notes,
    )

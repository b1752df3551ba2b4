"""BED (BEND-style) tasks: intervals + genome + a label column; intervals outside the genome are reported."""

from __future__ import annotations

import numpy as np

from dnalm.data.fetch import fetch_intervals
from dnalm.errors import InputError
from finetune.tasks.base import (
    SPLIT_NAMES,
    Task,
    TaskSplit,
    assign_splits,
    class_names,
    find_split_column,
    kind_from_spec,
    task_metric,
)
from finetune.tasks.spec import TaskSpec, parse_genome, parse_task_spec


def load_bed_task(spec: TaskSpec | str) -> Task:
    """A BEND-style BED + genome with a label column (an integer/class name, a number, or a comma-separated
    list of label indices for multi-label tasks such as BEND's Basset chromatin accessibility).

    The label column is ``label``, or with ``label=auto`` (default for headerless BED) the single extra
    column after BED6 (``col7``). A split column (values train/valid/test; found automatically, or
    ``split=COLUMN``) defines the splits, else test and dev are carved (seeded). Intervals not inside the
    genome are skipped and reported. Metric: AUROC for multi-label, MCC for classes, Spearman for numbers.
    """
    from dnalm.data.bed import read_bed
    from dnalm.data.labels import encode_labels

    spec = parse_task_spec(spec if not isinstance(spec, str) else f"bed:{spec}")
    path = spec.resolve_path(spec.path)
    df = read_bed(path)
    label = spec.label
    if label in ("auto", "label") and "label" not in df.columns:
        from dnalm.data.labels import auto_label_columns

        cols = auto_label_columns(df)
        if not cols:
            raise InputError(f"{path}: no label column (columns {list(df.columns)}); give label=COLUMN")
    else:
        cols = label if isinstance(label, list) else [label]
    labels, label_spec = encode_labels(
        df, cols, str(path), df["line"].tolist(), spec.num_classes or None, spec.multi_label, spec.classes or None
    )
    kind, n_out = kind_from_spec(label_spec, spec.kind, str(path))
    split_col = find_split_column(df, spec)
    genome = parse_genome(spec.genome, spec) if spec.genome else None
    seqs, kept, meta, skipped = fetch_intervals(
        df, genome, "", str(path), spec.strand_aware, spec.length,
        no_genome_reason="no genome: none given (genome=FASTA)",
    )
    if len(kept) == 0:
        raise InputError(f"{path}: none of the {len(df):,} intervals could be resolved to a sequence; first "
                         f"reason: {skipped['reason'].iloc[0]}")
    all_split = df[split_col].tolist() if split_col else None
    if split_col and len(skipped):
        skipped["split"] = [SPLIT_NAMES.get(str(all_split[i]).lower(), "") for i in
                            np.setdiff1d(np.arange(len(df)), kept)]
    split_values = [all_split[i] for i in kept] if split_col else None
    labels = labels[kept]
    idx, notes = assign_splits(len(kept), labels, split_values, spec, kind, str(path))
    rows = TaskSplit(seqs, labels, meta)
    if len(skipped):
        notes.append(f"{len(skipped):,} interval(s) not inside the genome were skipped (see skipped)")
    return Task(
        name=spec.name or path.name.split(".")[0], kind=kind, num_outputs=n_out, metric=task_metric(spec, kind),
        train=rows.take(idx["train"]), dev=rows.take(idx["dev"]), test=rows.take(idx["test"]),
        classes=class_names(label_spec), source=str(path), notes=notes, skipped=skipped,
    )

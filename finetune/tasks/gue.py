"""GUE tasks: a folder with ``train.csv``, ``dev.csv``, ``test.csv`` of ``sequence,label`` (metric MCC)."""

from __future__ import annotations

import numpy as np

from dnalm.errors import InputError
from finetune.tasks.base import SPLITS, Task, carve_split, class_names, kind_from_spec, task_metric
from finetune.tasks.spec import TaskSpec, parse_task_spec
from finetune.tasks.tables import read_table, tables_to_splits


def load_gue(spec: TaskSpec | str) -> Task:
    """A GUE task folder: ``train.csv``, ``dev.csv``, ``test.csv`` with ``sequence,label`` (metric MCC).

    A missing ``dev.csv`` is carved from train (``dev_fraction``, stratified, seeded); a missing ``train.csv``
    or ``test.csv`` is an :class:`InputError`.
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"gue:{spec}")
    folder = spec.resolve_path(spec.path)
    if not folder.is_dir():
        raise InputError(f"{folder}: GUE task folder not found")
    for need in ("train", "test"):
        if not (folder / f"{need}.csv").exists():
            have = sorted(p.name for p in folder.glob("*.csv"))
            raise InputError(f"{folder}: no {need}.csv (GUE tasks need train.csv and test.csv; found {have})")
    label_cols = spec.label if isinstance(spec.label, list) else [spec.label]
    names = [s for s in SPLITS if (folder / f"{s}.csv").exists()]
    tables = {}
    classes = spec.classes or None
    for s in names:
        tables[s] = read_table(folder / f"{s}.csv", spec, label_cols, classes=classes,
                                num_classes=spec.num_classes or None)
        if classes is None and tables[s].label_spec.kind == "class" and not all(
                isinstance(c, (int, np.integer)) for c in tables[s].label_spec.classes):
            classes = tables[s].label_spec.classes  # class names: same ids in every split
    splits, label_spec = tables_to_splits(tables, spec, str(folder))
    kind, n_out = kind_from_spec(label_spec, spec.kind, str(folder))
    notes = []
    if "dev" not in splits:
        kept, carved = carve_split(splits["train"].labels, spec.dev_fraction, spec.seed, kind)
        splits["dev"] = splits["train"].take(carved)
        splits["train"] = splits["train"].take(kept)
        notes.append(f"no dev.csv: dev carved from train ({spec.dev_fraction:.0%}, stratified, seed {spec.seed})")
    return Task(
        name=spec.name or folder.name, kind=kind, num_outputs=n_out, metric=task_metric(spec, kind, "mcc"),
        train=splits["train"], dev=splits["dev"], test=splits["test"], classes=class_names(label_spec),
        source=str(folder), notes=notes,
    )

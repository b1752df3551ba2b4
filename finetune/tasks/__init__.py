"""Task registry by source: GUE folders, GenomicBenchmarks data sets, BEND-style BED files, per-nucleotide
label tracks and any CSV/TSV, each loaded into a :class:`Task` with train/dev/test splits and its metric.

- :mod:`finetune.tasks.spec`: TASK SPEC parsing (see there), :func:`load_task`, suite discovery.
- :mod:`finetune.tasks.base`: :class:`Task`, :class:`TaskSplit` and the split/label helpers of every loader.
- :mod:`finetune.tasks.gue`, :mod:`~finetune.tasks.genomic_benchmarks`, :mod:`~finetune.tasks.bed`,
  :mod:`~finetune.tasks.tables`, :mod:`~finetune.tasks.tokens`: one loader per source.

Intervals are fetched through :func:`dnalm.data.fetch.fetch_intervals`; those that cannot be resolved to a
sequence (unknown chromosome, outside the FASTA, no genome for the class) are never dropped silently:
:attr:`Task.skipped` lists each with its file, line and reason, and :meth:`Task.report` summarises them.
"""

from __future__ import annotations

from finetune.tasks.base import SKIP_COLUMNS, SPLITS, Task, TaskSplit, carve_split, subsample_indices
from finetune.tasks.bed import load_bed_task
from finetune.tasks.genomic_benchmarks import load_genomic_benchmark
from finetune.tasks.gue import load_gue
from finetune.tasks.spec import (
    SUITES,
    TASK_TYPES,
    TaskSpec,
    discover_suite,
    guess_task_type,
    load_task,
    parse_genome,
    parse_task_spec,
    select_tasks,
)
from finetune.tasks.tables import load_table_task
from finetune.tasks.tokens import load_token_task, parse_base_labels

__all__ = [
    "SKIP_COLUMNS",
    "SPLITS",
    "SUITES",
    "TASK_TYPES",
    "Task",
    "TaskSpec",
    "TaskSplit",
    "carve_split",
    "discover_suite",
    "guess_task_type",
    "load_bed_task",
    "load_genomic_benchmark",
    "load_gue",
    "load_table_task",
    "load_task",
    "load_token_task",
    "parse_base_labels",
    "parse_genome",
    "parse_task_spec",
    "select_tasks",
    "subsample_indices",
]

"""Fine-tuning and benchmarks on dnalm models: heads with mean/last/echo/rc_echo pooling, a task registry
(GUE, GenomicBenchmarks, BEND-style BED, CSV/TSV, per-base labels), a Lightning fine-tuning module,
frozen-embedding probes, a k-mer baseline and a benchmark runner.

Names are imported lazily: ``import finetune`` does not import torch or lightning.
"""

from __future__ import annotations

from dnalm.utils import lazy_exports

_EXPORTS: dict[str, str] = {
    "HeadConfig": "finetune.heads",
    "SequenceModel": "finetune.heads",
    "build_inputs": "finetune.heads",
    "Task": "finetune.tasks",
    "TaskSplit": "finetune.tasks",
    "TaskSpec": "finetune.tasks",
    "load_task": "finetune.tasks",
    "compute_metrics": "finetune.metrics",
    "FinetuneConfig": "finetune.config",
    "finetune": "finetune.lightning",
    "embed_sequences": "finetune.probes",
    "run_probe": "finetune.probes",
    "fit_probe": "finetune.probes",
    "kmer_features": "finetune.baselines",
    "kmer_baseline": "finetune.baselines",
    "BenchmarkConfig": "finetune.benchmark",
    "run_benchmark": "finetune.benchmark",
    "embed_file": "finetune.embed",
}

__all__ = [
    "BenchmarkConfig",
    "FinetuneConfig",
    "HeadConfig",
    "SequenceModel",
    "Task",
    "TaskSpec",
    "TaskSplit",
    "build_inputs",
    "compute_metrics",
    "embed_file",
    "embed_sequences",
    "finetune",
    "fit_probe",
    "kmer_baseline",
    "kmer_features",
    "load_task",
    "run_benchmark",
    "run_probe",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

"""Conditional CRE generation: condition tokens, generator fine-tuning, sampling, oracles and evaluation.

The public names are imported lazily so that ``import generate`` stays cheap (no Lightning until training).
"""

from __future__ import annotations

from dnalm.utils import lazy_exports

_EXPORTS: dict[str, str] = {
    "ConditionSpec": "generate.conditioning",
    "PropertyBins": "generate.conditioning",
    "quantile_edges": "generate.conditioning",
    "assign_bins": "generate.conditioning",
    "add_condition_tokens": "generate.conditioning",
    "save_generator": "generate.conditioning",
    "load_generator": "generate.conditioning",
    "read_property_table": "generate.data",
    "PropertyTable": "generate.data",
    "GeneratorTrainConfig": "generate.training",
    "finetune_generator": "generate.training",
    "sample": "generate.sampling",
    "beam_search": "generate.sampling",
    "Constraints": "generate.sampling",
    "GenerationReport": "generate.sampling",
    "write_fasta": "generate.sampling",
    "generate_to_fasta": "generate.batch",
    "read_fasta": "generate.sampling",
    "OracleCNN": "generate.oracle",
    "OracleConfig": "generate.oracle",
    "OracleTrainConfig": "generate.oracle",
    "train_oracle": "generate.oracle",
    "load_oracle": "generate.oracle",
    "evaluate_cre": "generate.evaluate",
    "EvalConfig": "generate.evaluate",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

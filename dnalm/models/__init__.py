"""Model stack: one causal LM over Hyena, Mamba2 and attention mixers (imports only torch)."""

from dnalm.models.cache import InferenceCache
from dnalm.models.lm import (
    DNALM,
    PRESETS,
    LMConfig,
    LMOutput,
    build_model,
    load_model,
    preset_config,
    read_model_config,
    sample_next,
)


def import_hyenadna(*args, **kwargs):
    """Convert a HyenaDNA checkpoint into a dnalm model (see :mod:`dnalm.models.hyenadna_import`)."""
    from dnalm.models.hyenadna_import import import_hyenadna as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "DNALM",
    "PRESETS",
    "InferenceCache",
    "LMConfig",
    "LMOutput",
    "build_model",
    "import_hyenadna",
    "load_model",
    "preset_config",
    "read_model_config",
    "sample_next",
]

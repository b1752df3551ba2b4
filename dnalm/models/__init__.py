"""Model stack: one LM over Hyena, Mamba, Mamba2 and attention mixers, causal or bidirectional (imports only torch)."""

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


def __getattr__(name):
    # mixer modules are imported on first use (hyena/mamba2 pull in nothing heavy, but keep import cheap)
    lazy = {
        "Mamba2": "dnalm.models.mamba2", "Mamba2Config": "dnalm.models.mamba2",
        "ssd_chunked": "dnalm.models.mamba2", "ssd_recurrent": "dnalm.models.mamba2",
        "HyenaOperator": "dnalm.models.hyena", "HyenaConfig": "dnalm.models.hyena", "fftconv": "dnalm.models.hyena",
        "Attention": "dnalm.models.attention", "AttentionConfig": "dnalm.models.attention",
        "Mamba": "dnalm.models.mamba", "MambaConfig": "dnalm.models.mamba",
        "import_model": "dnalm.models.importers", "detect_format": "dnalm.models.importers",
        "export_mamba_ssm": "dnalm.models.mamba_ssm_format",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'dnalm.models' has no attribute {name!r}")


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

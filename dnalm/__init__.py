"""dnalm: long-range single-nucleotide DNA language models.

The public names are imported lazily so that ``import dnalm`` (and ``dnalm --help``) stays fast.
"""

from __future__ import annotations

from dnalm.utils import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "DNATokenizer": "dnalm.tokenizer",
    "reverse_complement": "dnalm.tokenizer",
    "Genome": "dnalm.io.genome",
    "read_variants": "dnalm.io.variants",
    "GenomeWindows": "dnalm.data",
    "IntervalDataset": "dnalm.data",
    "SequenceTable": "dnalm.data",
    "read_bed": "dnalm.data",
    "build_model": "dnalm.models",
    "load_model": "dnalm.models",
    "LMConfig": "dnalm.models",
    "import_model": "dnalm.models.importers",
    "DnalmError": "dnalm.errors",
    "InputError": "dnalm.errors",
    "ConfigError": "dnalm.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

"""Explain predictions: attribution maps of fine-tuned heads and LM likelihoods, motif scanning and discovery.

- :mod:`dnalm.explain.onehot`: one-hot arrays (N, 4, L) and dinucleotide-shuffled baselines.
- :mod:`dnalm.explain.targets`: differentiable targets f(x) of a one-hot batch (head outputs, LM log-likelihood).
- :mod:`dnalm.explain.attribution`: saliency, integrated gradients, DeepLIFT-SHAP (Captum) and ISM.
- :mod:`dnalm.explain.motifs`: motif files, FIMO-style scanning with exact p-values (the project's one scanner).

Captum, tangermeme, memelite and modisco-lite come with the ``explain`` extra (``pip install dnalm[explain]``).
"""

from __future__ import annotations

_EXPORTS = {
    "attribute": "dnalm.explain.attribution",
    "Attributions": "dnalm.explain.attribution",
    "HeadTarget": "dnalm.explain.targets",
    "LogLikelihoodTarget": "dnalm.explain.targets",
    "one_hot": "dnalm.explain.onehot",
    "dinucleotide_shuffles": "dnalm.explain.onehot",
    "read_motifs": "dnalm.explain.motifs",
    "scan": "dnalm.explain.motifs",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dnalm.explain' has no attribute {name!r}")


def __dir__():
    return sorted(_EXPORTS)

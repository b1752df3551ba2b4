"""Explain predictions: attribution maps of fine-tuned heads and LM likelihoods, motif scanning and discovery.

- :mod:`dnalm.explain.onehot`: one-hot arrays (N, 4, L) and dinucleotide-shuffled baselines.
- :mod:`dnalm.explain.targets`: differentiable targets f(x) of a one-hot batch (head outputs, LM log-likelihood).
- :mod:`dnalm.explain.attribution`: saliency, integrated gradients, DeepLIFT-SHAP (Captum) and ISM.
- :mod:`dnalm.explain.motifs`: motif files, FIMO-style scanning with exact p-values (the project's one scanner).
- :mod:`dnalm.explain.discover`: TF-MoDISco patterns matched to a motif database (TOMTOM q-values).
- :mod:`dnalm.explain.files`, :mod:`dnalm.explain.plots`, :mod:`dnalm.explain.run`: outputs, logos, file-level entry points.

Captum, tangermeme, memelite and modisco-lite come with the ``explain`` extra (``pip install dnalm[explain]``).
"""

from __future__ import annotations

from dnalm.utils import lazy_exports

_EXPORTS = {
    "attribute": "dnalm.explain.attribution",
    "Attributions": "dnalm.explain.attribution",
    "HeadTarget": "dnalm.explain.targets",
    "LogLikelihoodTarget": "dnalm.explain.targets",
    "one_hot": "dnalm.explain.onehot",
    "dinucleotide_shuffles": "dnalm.explain.onehot",
    "read_motifs": "dnalm.explain.motifs",
    "scan": "dnalm.explain.motifs",
    "discover": "dnalm.explain.discover",
}
__all__ = ["Attributions", "HeadTarget", "LogLikelihoodTarget", "attribute", "dinucleotide_shuffles", "discover",
           "one_hot", "read_motifs", "scan"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

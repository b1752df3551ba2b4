"""Zero-shot scores of bidirectional (masked) DNA language models: the masked marginal, for variants and ISM.

A masked LM (Caduceus) has no left-to-right likelihood, so the windowed LLR of causal models does not apply. The
convention for such models (Meier et al. 2021 for proteins; used for Caduceus, GPN and the Nucleotide
Transformer) is the *masked marginal*: put [MASK] at the variant's position(s) in the REF window, read the model's
distribution there, and score ``log p(ALT) - log p(REF)`` (summed over the substituted positions; negative = ALT
less likely). It is defined for substitutions (SNVs, MNVs); an indel gets NaN with a message. ``embedding_cosine``
is computed as for causal models, from the mean-pooled hidden states of the unmasked REF and ALT windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dnalm.errors import ConfigError
from dnalm.tokenizer import MASK_ID, DNATokenizer

MASKED_SCORES = ("masked_marginal", "embedding_cosine")
INDEL_MESSAGE = "masked_marginal is defined for substitutions only"


def check_masked_scores(scores: Sequence[str]) -> None:
    """Refuse scores a masked model cannot give (the LLRs need a causal model)."""
    bad = [s for s in scores if s not in MASKED_SCORES]
    if bad:
        raise ConfigError(f"score(s) {', '.join(bad)} need a causal language model; this model is bidirectional "
                          f"(masked LM): choose from {', '.join(MASKED_SCORES)}")


def masked_marginal(model, ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """Masked-marginal scores of REF/ALT id rows (n, W): REF with [MASK] where ALT differs -> (n,) float64.

    Rows that do not differ score 0.
    """
    import torch

    device = model.device
    ref_t = torch.from_numpy(ref).to(device)
    alt_t = torch.from_numpy(alt).to(device)
    diff = ref_t != alt_t  # (n, W)
    masked = ref_t.masked_fill(diff, MASK_ID)
    logp = torch.log_softmax(model(masked).logits.float(), -1).double()  # (n, W, V)
    delta = logp.gather(-1, alt_t[..., None])[..., 0] - logp.gather(-1, ref_t[..., None])[..., 0]  # (n, W)
    return (delta * diff).sum(1).cpu().numpy()


def mean_embeddings(model, ids: np.ndarray) -> np.ndarray:
    """Mean-pooled hidden states (n, hidden_size) of id rows (n, W), float64."""
    import torch

    return model.embed(torch.from_numpy(ids).to(model.device)).double().mean(1).cpu().numpy()


def score_pairs_masked(model, pairs, scores: Sequence[str], batch_size: int, bar=None) -> dict[str, np.ndarray]:
    """Scores of REF/ALT window pairs (``WindowPair``) with a masked model, in input order."""
    check_masked_scores(scores)
    n = len(pairs)
    out = {name: np.full(n, np.nan) for name in scores}
    for b0 in range(0, n, batch_size):
        batch = pairs[b0 : b0 + batch_size]
        ref = np.stack([p.ref for p in batch])
        alt = np.stack([p.alt for p in batch])
        part = slice(b0, b0 + len(batch))
        if "masked_marginal" in out:
            out["masked_marginal"][part] = masked_marginal(model, ref, alt)
        if "embedding_cosine" in out:
            a, b = mean_embeddings(model, ref), mean_embeddings(model, alt)
            num = (a * b).sum(-1)
            den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
            out["embedding_cosine"][part] = 1.0 - num / np.maximum(den, 1e-300)
        if bar is not None:
            bar.update(len(batch))
    return out


def ism_masked_one_strand(model, ctx: np.ndarray, a: int, b: int, batch_size: int, bar) -> np.ndarray:
    """Masked-marginal ISM at positions [a, b) of ``ctx`` (T,) ids: (b - a, 4) = log p(base) - log p(ref base).

    One forward pass per position (that position masked) scores all four bases; the reference base scores 0.
    """
    import torch

    device = model.device
    base_ids = torch.as_tensor(DNATokenizer.base_ids, dtype=torch.long, device=device)
    seq = torch.from_numpy(ctx).to(device)
    result = np.zeros((b - a, 4))
    for p0 in range(a, b, batch_size):
        pos = torch.arange(p0, min(b, p0 + batch_size), device=device)  # (n,)
        rows = seq.repeat(len(pos), 1)  # (n, T)
        rows[torch.arange(len(pos), device=device), pos] = MASK_ID
        logp = torch.log_softmax(model(rows).logits.float(), -1).double()  # (n, T, V)
        at = logp[torch.arange(len(pos), device=device), pos]  # (n, V)
        scores = at[:, base_ids] - at.gather(-1, seq[pos][:, None])  # (n, 4)
        result[p0 - a : p0 - a + len(pos)] = scores.cpu().numpy()
        bar.update(len(pos))
    return result

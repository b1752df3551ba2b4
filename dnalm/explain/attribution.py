"""Attribution maps (N, 4, L) of a target f(x) -> (N,): saliency, integrated gradients, DeepLIFT-SHAP and ISM.

Convention (every method returns the same two arrays, channels A, C, G, T):

- ``hypothetical[n, c, i]``: what base ``c`` at position ``i`` would contribute to f, given the rest of x.
- ``contributions = x * hypothetical``: nonzero only on the observed base (the one-hot projection); the value is
  the position's attribution. N bases and padding get 0.

Per method (``m`` the multipliers: gradients for saliency, path-averaged gradients for IG, DeepLIFT multipliers;
``b`` a baseline):

- ``saliency``: gradient x input with the mean-centred gradient, ``hyp[c, i] = g[c, i] - mean_c' g[c', i]``
  (centring removes the component off the one-hot simplex, Majdandzic et al. 2023).
- ``ig`` (Captum ``IntegratedGradients``) and ``deeplift`` (Captum ``DeepLift`` per baseline = DeepLIFT-SHAP):
  ``hyp[c, i] = m[c, i] - sum_c' b[c', i] m[c', i]`` averaged over baselines, so that ``contributions.sum() ==
  f(x) - mean_b f(b)`` up to the path integral's error (IG's completeness; exact for DeepLIFT on models built from
  the ReLU-like modules it has rules for).
- ``ism``: ``delta[c, i] = f(x with base c at i) - f(x)``; ``hyp = delta - mean_c delta``, so the contribution of
  the observed base is ``f(x) - mean of f over the 4 bases at i``.

Baselines: ``dinucleotide`` (``n_shuffles`` dinucleotide-preserving shuffles of each sequence, the default),
``uniform`` (0.25 in every real column), ``zeros`` (all-zero columns, i.e. N), or an array (N, K, 4, L) / (N, 4, L).

Libraries: Captum (``IntegratedGradients``, ``DeepLift``, ``Saliency``) does the gradient bookkeeping; it is the
PyTorch reference implementation of these methods (Meta, BSD), works on any ``nn.Module``, and adds 2.7 s to an
install (measured, loaded machine). DeepLIFT caveat: Captum's DeepLIFT rules apply to nonlinearities that are
``nn.Module`` instances of the types it lists (ReLU, ELU, Sigmoid, Tanh, Softmax, ...). dnalm's mixers use
functional SiLU/GELU/softplus, ``exp`` inside the SSD scan, multiplicative gating and FFT convolutions, none of
which have a rule, so Captum falls back to the plain gradient there: on dnalm models ``deeplift`` is the gradient
at x times ``(x - b)`` averaged over the shuffled baselines, not the rescale rule, and completeness does not
hold. ISM needs no gradients and runs on any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

METHODS = ("saliency", "ig", "deeplift", "ism")
BASELINES = ("dinucleotide", "uniform", "zeros")


@dataclass
class Attributions:
    """Attribution arrays of a batch (see the module docstring for the convention)."""

    contributions: np.ndarray  # (N, 4, L) x * hypothetical
    hypothetical: np.ndarray  # (N, 4, L)
    scores: np.ndarray  # (N,) f(x)
    baseline_scores: np.ndarray | None  # (N,) mean f(b) over baselines (ig, deeplift), else None
    method: str
    info: dict = field(default_factory=dict)

    def info_public(self) -> dict:
        """The JSON-able settings in ``info`` (arrays such as ISM's raw deltas left out)."""
        return {k: v for k, v in self.info.items() if not isinstance(v, np.ndarray)}


class _Target(nn.Module):
    """A callable target as a module (Captum's DeepLift hooks modules)."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, x, mask):
        return self.fn(x, mask)


def make_baselines(x: np.ndarray, mask: np.ndarray, baseline: str | np.ndarray, n_shuffles: int, seed: int,
                   index: np.ndarray | None = None) -> np.ndarray:
    """Baselines (N, K, 4, L) for IG / DeepLIFT-SHAP (see the module docstring)."""
    N, _, L = x.shape
    if isinstance(baseline, np.ndarray):
        b = baseline.astype(np.float32)
        if b.shape == x.shape:
            b = b[:, None]
        if b.ndim != 4 or b.shape[0] != N or b.shape[2:] != x.shape[1:]:
            raise ValueError(f"baselines must be (N, K, 4, L) or (N, 4, L) for x {x.shape}, got {b.shape}")
        return b
    if baseline == "dinucleotide":
        from dnalm.explain.onehot import dinucleotide_shuffles

        return dinucleotide_shuffles(x, mask, n=n_shuffles, seed=seed, index=index)
    if baseline == "uniform":
        return np.broadcast_to((0.25 * mask[:, None, None, :]).astype(np.float32), (N, 1, 4, L)).copy()
    if baseline == "zeros":
        return np.zeros((N, 1, 4, L), dtype=np.float32)
    raise ValueError(f"baseline {baseline!r} is not one of {', '.join(BASELINES)} or an array")


def attribute(
    target: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: np.ndarray,
    mask: np.ndarray | None = None,
    method: str = "ig",
    baseline: str | np.ndarray = "dinucleotide",
    n_shuffles: int = 8,
    steps: int = 32,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    index: np.ndarray | None = None,
) -> Attributions:
    """Attributions of ``target`` for a one-hot batch.

    Args:
        target: f(x, mask) -> (N,), differentiable in x for the gradient methods (``dnalm.explain.targets``).
        x: (N, 4, L) one-hot (A, C, G, T; all-zero columns = N or padding).
        mask: (N, L) real columns (default: all).
        method: saliency | ig | deeplift | ism.
        baseline: ig/deeplift reference: dinucleotide | uniform | zeros | an array (N, K, 4, L).
        n_shuffles: dinucleotide shuffles per sequence (the baselines averaged over).
        steps: integration steps of IG (Gauss-Legendre, Captum's default rule).
        batch_size: sequences per forward pass (IG: interpolation points per pass).
        seed: seed of the shuffles.
        device: where the target runs.
        progress: show a progress bar.
        index: (N,) the sequences' input record numbers (default 0..N-1): a sequence's shuffles depend on the seed
            and its number, so a shard of an input gets the baselines the whole input gets.

    Returns:
        :class:`Attributions` (numpy arrays on the CPU).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"x must be one-hot (N, 4, L), got shape {x.shape}")
    N, _, L = x.shape
    mask = np.ones((N, L), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    module = target if isinstance(target, nn.Module) else _Target(target)
    was_training = module.training
    module.eval()
    try:
        if method == "ism":
            return _ism(module, x, mask, batch_size, device, progress)
        return _gradient_method(module, x, mask, method, baseline, n_shuffles, steps, batch_size, seed, device, progress,
                                index)
    finally:
        module.train(was_training)


def _scores(module, x, mask, batch_size, device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[s : s + batch_size]).to(device)
            mb = torch.from_numpy(mask[s : s + batch_size]).to(device)
            out.append(module(xb, mb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _gradient_method(module, x, mask, method, baseline, n_shuffles, steps, batch_size, seed, device, progress,
                     index=None):
    from captum.attr import DeepLift, IntegratedGradients, Saliency
    from tqdm.auto import tqdm

    N = len(x)
    if method == "saliency":
        bases = None
    else:
        bases = make_baselines(x, mask, baseline, n_shuffles, seed, index)  # (N, K, 4, L)
    K = 1 if bases is None else bases.shape[1]
    hyp = np.zeros_like(x)
    bscore = np.zeros(N, dtype=np.float64)
    chunk = max(1, batch_size if method != "ig" else max(1, batch_size // max(1, steps)))
    bar = tqdm(total=N * K, desc=f"{method} attributions", unit="seq", disable=not progress)
    for s in range(0, N, chunk):
        xb = torch.from_numpy(x[s : s + chunk]).to(device)
        mb = torch.from_numpy(mask[s : s + chunk]).to(device)
        if method == "saliency":
            g = Saliency(module).attribute(xb, additional_forward_args=(mb,), abs=False)  # (B, 4, L)
            hyp[s : s + chunk] = (g - g.mean(1, keepdim=True)).detach().cpu().numpy()
            bar.update(len(xb))
            continue
        acc = torch.zeros_like(xb)
        for k in range(K):
            bb = torch.from_numpy(np.ascontiguousarray(bases[s : s + chunk, k])).to(device)
            if method == "ig":
                explainer = IntegratedGradients(module, multiply_by_inputs=False)
                m = explainer.attribute(xb, baselines=bb, additional_forward_args=(mb,), n_steps=steps,
                                        internal_batch_size=max(batch_size, len(xb)))
            else:
                m = DeepLift(module, multiply_by_inputs=False).attribute(xb, baselines=bb, additional_forward_args=(mb,))
            m = m.detach()  # (B, 4, L) multipliers
            acc += m - (bb * m).sum(1, keepdim=True)  # hypothetical contribution relative to this baseline
            with torch.no_grad():
                bscore[s : s + len(xb)] += module(bb, mb).double().cpu().numpy()
            bar.update(len(xb))
        hyp[s : s + chunk] = (acc / K).cpu().numpy()
    bar.close()
    hyp *= mask[:, None, :]
    scores = _scores(module, x, mask, batch_size, device)
    info = {"baseline": baseline if isinstance(baseline, str) else "given", "n_baselines": K}
    if method == "ig":
        info["steps"] = steps
    return Attributions(x * hyp, hyp, scores, None if method == "saliency" else (bscore / K).astype(np.float32),
                        method, info)


def _ism(module, x, mask, batch_size, device, progress) -> Attributions:
    """Every single-base substitution of every real column, batched across positions and sequences."""
    from tqdm.auto import tqdm

    N = len(x)
    ref = _scores(module, x, mask, batch_size, device)  # (N,)
    delta = np.zeros_like(x)
    bar = tqdm(total=N, desc="ism", unit="seq", disable=not progress)
    for n in range(N):
        pos = np.flatnonzero(mask[n] & (x[n].sum(0) > 0))  # mutate real ACGT columns only
        muts = [(i, c) for i in pos for c in range(4) if x[n, c, i] == 0]
        for s in range(0, len(muts), batch_size):
            part = muts[s : s + batch_size]
            xb = np.repeat(x[n : n + 1], len(part), axis=0)  # (B, 4, L)
            for j, (i, c) in enumerate(part):
                xb[j, :, i] = 0.0
                xb[j, c, i] = 1.0
            out = _scores(module, xb, np.repeat(mask[n : n + 1], len(part), axis=0), len(part), device)
            for j, (i, c) in enumerate(part):
                delta[n, c, i] = out[j] - ref[n]
        bar.update(1)
    bar.close()
    real = (mask & (x.sum(1) > 0))[:, None, :]  # (N, 1, L)
    hyp = (delta - delta.mean(1, keepdims=True)) * real
    return Attributions(x * hyp, hyp.astype(np.float32), ref, None, "ism", {"ism_delta": delta})

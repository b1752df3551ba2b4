"""Attribution targets: differentiable functions of a one-hot batch (N, 4, L) -> (N,) for a model's output.

Gradient methods need the model's output as a function of a *float* one-hot input, but dnalm models read token
ids. The one-hot path used here: the embedding of a base column is ``x[:, i] @ E[A, C, G, T] + (1 - sum(x[:, i]))
* E[N]`` (``E`` the token embedding table), which equals the token embedding for a one-hot column (and for an
all-zero N column) and is linear in ``x`` in between, so integrated-gradient paths and shuffled baselines are
well defined. The ids still set the layout (special tokens, lengths); a forward hook on the model's embedding
module swaps in the one-hot embeddings. Anything with ``backbone.embeddings.word_embeddings`` works.

Targets:

- :class:`LogLikelihoodTarget`: a causal LM's log-likelihood (nats) of the bases in ``[start, end)`` given
  ``[BOS]`` and everything before them: ``sum_t sum_c x[c, t] * log p(base c at t | x_<t)``.
- :class:`HeadTarget`: a fine-tuned model's output before the link function (a binary logit, a class logit, a
  standardised regression output, or a per-base class logit at one position); any model with
  ``forward_onehot(x, mask)`` (``finetune.heads.SequenceModel``) fits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from dnalm.tokenizer import A_ID, BOS_ID, N_ID, T_ID


def base_ids(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token ids of one-hot columns (argmax; all-zero columns -> N); padding -> N (callers mask it).

    x: (N, 4, L) float; mask: (N, L). Returns (N, L) long.
    """
    ids = x.argmax(1) + A_ID  # (N, L)
    return torch.where(x.sum(1) > 0, ids, torch.full_like(ids, N_ID))


def base_embeddings(lm: nn.Module, x: torch.Tensor, complement: bool = False) -> torch.Tensor:
    """Differentiable embeddings of one-hot columns (see the module docstring).

    Args:
        lm: a dnalm language model (``lm.backbone.embeddings.word_embeddings``).
        x: (N, 4, L) one-hot or interpolated columns.
        complement: embed the complement of each column (A<->T, C<->G: channel flip).

    Returns:
        (N, L, d) embeddings.
    """
    table = embedding_table(lm)
    E = table[A_ID : T_ID + 1]  # (4, d) rows of A, C, G, T
    if complement:
        x = x.flip(1)
    xt = x.transpose(1, 2).to(E.dtype)  # (N, L, 4)
    return xt @ E + (1.0 - xt.sum(-1, keepdim=True)) * table[N_ID]  # (N, L, d)


def embedding_table(lm: nn.Module) -> torch.Tensor:
    """The token embedding matrix (V, d) of a dnalm model; a clear error for other models."""
    try:
        return lm.backbone.embeddings.word_embeddings.weight
    except AttributeError:
        raise TypeError(
            f"{type(lm).__name__} has no backbone.embeddings.word_embeddings: gradient attributions need a dnalm "
            "model (use method='ism' for other models)"
        ) from None


@contextlib.contextmanager
def embeddings_replaced(lm: nn.Module, embeddings: torch.Tensor) -> Iterator[None]:
    """Within the block, the model's embedding module returns ``embeddings`` (B, T, d) instead of its lookup."""
    module = lm.backbone.embeddings

    def hook(_module, inputs, _output):
        if inputs[0].shape != embeddings.shape[:2]:
            raise RuntimeError(f"embedding override for shape {tuple(embeddings.shape[:2])} met ids {tuple(inputs[0].shape)}")
        return embeddings

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def scatter_bases(emb: torch.Tensor, index: torch.Tensor, base_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put per-base embeddings into token rows: ``emb[b, index[b, i]] = base_emb[b, i]`` where ``mask[b, i]``.

    emb: (B, T, d); index: (B, L) long; base_emb: (B, L, d); mask: (B, L). Returns a new (B, T, d) tensor.
    """
    d = emb.shape[-1]
    idx = index[..., None].expand(-1, -1, d)  # (B, L, d)
    keep = emb.gather(1, idx)  # padding rows keep what is there
    src = torch.where(mask.bool()[..., None], base_emb.to(emb.dtype), keep)
    return emb.scatter(1, idx, src)


class LogLikelihoodTarget(nn.Module):
    """Log-likelihood (nats) of the bases in ``[start, end)`` under a causal dnalm LM, as a function of one-hot x."""

    def __init__(self, lm: nn.Module, start: int = 0, end: int | None = None):
        super().__init__()
        if hasattr(lm, "require_causal"):
            lm.require_causal("give the next-base log-likelihood this target attributes")
        self.lm = lm
        self.start, self.end = int(start), end

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, 4, L); mask: (N, L) real columns. Returns (N,)."""
        N, _, L = x.shape
        mask = torch.ones(N, L, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        ids = base_ids(x, mask)
        inp = torch.cat([torch.full((N, 1), BOS_ID, dtype=torch.long, device=x.device), ids], 1)  # (N, L+1)
        emb = torch.cat([embedding_table(self.lm)[BOS_ID].expand(N, 1, -1), base_embeddings(self.lm, x)], 1)
        logits = self._logits(inp, emb)  # (N, L, V)
        logp = torch.log_softmax(logits.float(), -1)[..., A_ID : T_ID + 1]  # (N, L, 4): token t predicts base t
        per_base = (logp * x.transpose(1, 2)).sum(-1)  # (N, L)
        end = L if self.end is None else min(self.end, L)
        region = torch.zeros(L, dtype=torch.bool, device=x.device)
        region[self.start : end] = True
        return (per_base * (mask & region[None])).sum(1)

    def _logits(self, inp: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        ids, e = inp[:, :-1], emb[:, :-1]  # the last base predicts nothing that is scored
        with embeddings_replaced(self.lm, e):
            return self.lm(ids).logits  # (N, L, V)


class HeadTarget(nn.Module):
    """One output of a fine-tuned model (logit scale), for a one-hot batch.

    Args:
        model: a model with ``forward_onehot(x, mask) -> (N, k)`` or ``(N, L, C)`` (per-base heads).
        output: output column (class of a multiclass head, target of a regression head; 0 for binary).
        position: base position of a per-base head's output (required for per-base heads).
    """

    def __init__(self, model: nn.Module, output: int = 0, position: int | None = None):
        super().__init__()
        if not hasattr(model, "forward_onehot"):
            raise TypeError(f"{type(model).__name__} has no forward_onehot(x, mask): not a fine-tuned dnalm model")
        self.model, self.output, self.position = model, int(output), position

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, 4, L); mask: (N, L). Returns (N,)."""
        if mask is None:
            mask = torch.ones(x.shape[0], x.shape[2], dtype=torch.bool, device=x.device)
        out = self.model.forward_onehot(x, mask)
        if out.dim() == 3:  # (N, L, C) per-base head
            if self.position is None:
                raise ValueError("a per-base head needs a position to attribute (position=...)")
            out = out[:, self.position]
        if not 0 <= self.output < out.shape[-1]:
            raise ValueError(f"output {self.output} is out of range: the model has {out.shape[-1]} outputs")
        return out[:, self.output]

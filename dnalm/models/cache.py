"""Inference cache shared by every mixer: one mutable state dict per layer.

A mixer's ``forward(x, state=None)`` runs the whole sequence when ``state`` is None. When a state dict is
given, ``x`` (any length T >= 1) *continues* the sequence the state has seen so far, and the mixer updates the
state in place (assigning new tensors to its keys is fine). A mixer creates its empty state with
``allocate_state(batch_size, max_length, device, dtype)``.

Conventions inside a state dict: every tensor value has the batch as its first dimension (so that
:class:`InferenceCache` can select, repeat or clone rows generically); non-tensor values (ints such as the
number of tokens seen) are shared by the whole batch and copied as they are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch


@dataclass
class InferenceCache:
    """Per-layer states plus the number of tokens already consumed."""

    states: list[dict] = field(default_factory=list)
    seqlen_offset: int = 0
    max_length: int = 0

    @property
    def batch_size(self) -> int:
        for st in self.states:
            for v in st.values():
                if torch.is_tensor(v):
                    return v.shape[0]
        return 0

    def _map(self, fn) -> "InferenceCache":
        new_states = []
        for st in self.states:
            new_states.append({k: (fn(v) if torch.is_tensor(v) else copy.deepcopy(v)) for k, v in st.items()})
        return InferenceCache(new_states, self.seqlen_offset, self.max_length)

    def clone(self) -> "InferenceCache":
        """A deep copy (independent tensors)."""
        return self._map(lambda t: t.clone())

    def index_select(self, index: torch.Tensor) -> "InferenceCache":
        """Rows ``index`` of the batch (beam search, dropping finished rows)."""
        return self._map(lambda t: t.index_select(0, index.to(t.device)))

    def repeat_interleave(self, n: int) -> "InferenceCache":
        """Each row repeated ``n`` times (one prompt -> n samples; one prefix -> ref and alt)."""
        return self._map(lambda t: t.repeat_interleave(n, dim=0))

    @staticmethod
    def cat(caches: list["InferenceCache"]) -> "InferenceCache":
        """Concatenate caches of equal offset along the batch."""
        first = caches[0]
        if any(c.seqlen_offset != first.seqlen_offset for c in caches):
            raise ValueError("can only concatenate caches at the same sequence offset")
        states = []
        for i, st in enumerate(first.states):
            states.append(
                {
                    k: (torch.cat([c.states[i][k] for c in caches], 0) if torch.is_tensor(v) else copy.deepcopy(v))
                    for k, v in st.items()
                }
            )
        return InferenceCache(states, first.seqlen_offset, first.max_length)

"""The mixer state protocol: one typed inference state per mixer, and the cache that holds one per layer.

Every token mixer (Mamba2, Hyena, attention, and any new one) follows the same protocol:

- ``allocate_state(batch_size, max_length, device=None, dtype=None) -> <Mixer>State``: an empty state for
  ``batch_size`` rows and up to ``max_length`` tokens; ``device`` defaults to the parameters' device and ``dtype``
  to the parameters' dtype (a mixer may keep an accumulator in float32 at least; its docstring says so).
- ``forward(x, state=None)``: with ``state=None`` the whole sequence ``x`` (B, T, d) is mixed; with a state, ``x``
  (any T >= 1) *continues* the sequence the state has seen, and the mixer updates the state in place (assigning new
  tensors to its fields is fine) and advances ``state.pos`` by T.
- Configuration problems raise :class:`dnalm.errors.ConfigError`; misuse at run time (too long, wrong batch)
  raises ``ValueError``.

A state is a dataclass deriving from :class:`MixerState`. Its tensor fields have the batch as their first
dimension, so :class:`InferenceCache` can select, repeat, clone or concatenate rows of any mixer's state without
knowing its type; a field that is shared by the whole batch (e.g. Hyena's memo of its generated filter) is declared
with ``field(metadata={"shared": True})`` and is carried by reference. ``pos`` (tokens consumed) is the one
position counter: :attr:`InferenceCache.seqlen_offset` reads it from the states instead of keeping a second count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


def shared(default=None):
    """A state field shared by every row of the batch (carried by reference, never indexed by row)."""
    return field(default=default, metadata={"shared": True})


@dataclass(kw_only=True)
class MixerState:
    """Base of every mixer's inference state: batch-first tensor fields plus the position counter."""

    pos: int = 0  # tokens this state has consumed

    def map_rows(self, fn) -> MixerState:
        """A new state of the same type with ``fn`` applied to every batch-first tensor field."""
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = fn(v) if torch.is_tensor(v) and not f.metadata.get("shared") else v
        return type(self)(**values)

    def row_tensors(self) -> dict[str, torch.Tensor]:
        """The batch-first tensor fields by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if torch.is_tensor(getattr(self, f.name)) and not f.metadata.get("shared")
        }

    @property
    def batch_size(self) -> int:
        for v in self.row_tensors().values():
            return v.shape[0]
        return 0


@dataclass
class InferenceCache:
    """Per-layer mixer states; the number of tokens consumed is read from them."""

    states: list[MixerState] = field(default_factory=list)
    max_length: int = 0

    @property
    def seqlen_offset(self) -> int:
        """Tokens consumed so far (every layer's ``pos``; they move together)."""
        positions = {st.pos for st in self.states}
        if len(positions) > 1:
            raise RuntimeError(f"inference cache layers disagree on the position: {sorted(positions)}")
        return positions.pop() if positions else 0

    @property
    def batch_size(self) -> int:
        for st in self.states:
            if st.row_tensors():
                return st.batch_size
        return 0

    def _map(self, fn) -> InferenceCache:
        return InferenceCache([st.map_rows(fn) for st in self.states], self.max_length)

    def clone(self) -> InferenceCache:
        """A deep copy (independent tensors)."""
        return self._map(lambda t: t.clone())

    def index_select(self, index: torch.Tensor) -> InferenceCache:
        """Rows ``index`` of the batch (beam search, dropping finished rows)."""
        return self._map(lambda t: t.index_select(0, index.to(t.device)))

    def repeat_interleave(self, n: int) -> InferenceCache:
        """Each row repeated ``n`` times (one prompt -> n samples; one prefix -> ref and alt)."""
        return self._map(lambda t: t.repeat_interleave(n, dim=0))

    @staticmethod
    def cat(caches: list[InferenceCache]) -> InferenceCache:
        """Concatenate caches of equal offset along the batch."""
        first = caches[0]
        if any(c.seqlen_offset != first.seqlen_offset for c in caches):
            raise ValueError("can only concatenate caches at the same sequence offset")
        states = [
            replace(st, **{name: torch.cat([getattr(c.states[i], name) for c in caches], 0) for name in st.row_tensors()})
            for i, st in enumerate(first.states)
        ]
        return InferenceCache(states, first.max_length)

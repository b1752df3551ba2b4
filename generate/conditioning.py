"""Condition tokens for conditional generation: property binning, token names and the saved spec.

Each measured property is cut into classes (quantile bins by default, or given edges); class ``k`` of property
``expression`` becomes the token ``<expression=k>`` with its own id above the base vocabulary (regLM reused base
ids; we do not). A training example is laid out as ``[BOS] <cond tokens> sequence [EOS]``. The
:class:`ConditionSpec` (properties, edges, token names) is stored in the model directory's ``config.json`` under
``extra["conditioning"]`` so that a saved generator needs no other file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dnalm.errors import ConfigError, DnalmError, InputError

SPEC_KEY = "conditioning"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges at the quantiles 1/n, ..., (n-1)/n of ``values`` (numpy's linear interpolation).

    Args:
        values: 1-D array of property values.
        n_bins: number of classes (>= 2).

    Returns:
        (n_bins - 1,) edges; class ``k`` holds ``edges[k-1] <= v < edges[k]``.
    """
    if n_bins < 2:
        raise ConfigError(f"bins: need at least 2 classes, got {n_bins}")
    values = np.asarray(values, dtype=float)
    return np.quantile(values, np.arange(1, n_bins) / n_bins)


def assign_bins(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Class of each value: the number of edges ``<= v`` (so values equal to an edge go to the upper class).

    Args:
        values: property values, any shape.
        edges: increasing inner edges.

    Returns:
        int64 array of the same shape with classes ``0 .. len(edges)``.
    """
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right").astype(
        np.int64
    )


@dataclass
class PropertyBins:
    """One binned property: its name, inner edges and per-class statistics of the training data."""

    name: str  # property (column) name
    edges: list[float]  # increasing inner edges; len(edges) + 1 classes
    counts: list[int] = field(default_factory=list)  # training rows per class
    ranges: list[list[float]] = field(default_factory=list)  # [min, max] training value per class

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def token(self, k: int) -> str:
        """Token name of class ``k`` (``<name=k>``)."""
        return f"<{self.name}={k}>"

    @property
    def tokens(self) -> list[str]:
        return [self.token(k) for k in range(self.n_bins)]

    def bounds(self, k: int) -> tuple[float, float]:
        """Value interval ``[lo, hi)`` of class ``k`` (open ends are +-inf)."""
        lo = -np.inf if k == 0 else self.edges[k - 1]
        hi = np.inf if k == self.n_bins - 1 else self.edges[k]
        return float(lo), float(hi)


@dataclass
class ConditionSpec:
    """All conditioned properties of a generator, serialisable into the model directory."""

    properties: list[PropertyBins]
    sequence_lengths: list[int] = field(default_factory=lambda: [0, 0])  # [min, max] length of training sequences

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        names: Sequence[str],
        n_bins: int | Mapping[str, int] = 5,
        edges: Mapping[str, Sequence[float]] | None = None,
    ) -> tuple[ConditionSpec, list[str]]:
        """Bin each property column of ``values`` (N, P) by quantiles (or by the given edges).

        Args:
            values: (N, P) property values.
            names: P property names (letters, digits, ``_ . -``).
            n_bins: classes per property (one number or per name).
            edges: given inner edges per property name (override quantile binning for that property).

        Returns:
            The spec and a list of warnings (e.g. tied quantiles merged into fewer classes).
        """
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ConfigError(f"values have shape {values.shape}, expected (N, {len(names)})")
        edges = dict(edges or {})
        unknown = sorted(set(edges) - set(names))
        if unknown:
            raise ConfigError(f"bin edges given for unknown propert(ies) {unknown}; properties: {list(names)}")
        props, warnings = [], []
        for j, name in enumerate(names):
            if not _NAME_RE.match(name):
                raise ConfigError(f"property name {name!r}: use letters, digits, '_', '.', '-' only")
            if name in edges:
                e = np.asarray(sorted(float(x) for x in edges[name]))
                if len(e) == 0 or len(np.unique(e)) != len(e):
                    raise ConfigError(f"bin edges of {name!r} must be at least one distinct number, got {list(e)}")
            else:
                k = n_bins[name] if isinstance(n_bins, Mapping) else n_bins
                e = quantile_edges(values[:, j], int(k))
                if len(np.unique(e)) < len(e):
                    warnings.append(
                        f"{name}: tied quantiles ({list(np.round(e, 4))}); merged into {len(np.unique(e)) + 1} classes"
                    )
                    e = np.unique(e)
            bins = assign_bins(values[:, j], e)
            counts = np.bincount(bins, minlength=len(e) + 1)
            ranges = [
                [float(values[bins == k, j].min()), float(values[bins == k, j].max())] if counts[k] else [np.nan, np.nan]
                for k in range(len(e) + 1)
            ]
            empty = [k for k in range(len(e) + 1) if counts[k] == 0]
            if empty:
                warnings.append(f"{name}: class(es) {empty} have no training rows")
            props.append(PropertyBins(name=name, edges=[float(x) for x in e], counts=counts.tolist(), ranges=ranges))
        return cls(properties=props), warnings

    # ------------------------------------------------------------------ names and tokens
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    def property_bins(self, name: str) -> PropertyBins:
        for p in self.properties:
            if p.name == name:
                return p
        raise DnalmError(f"the generator was not trained with property {name!r}; it knows {self.names}")

    @property
    def token_names(self) -> list[str]:
        """Every condition token, property by property."""
        return [t for p in self.properties for t in p.tokens]

    def bins(self, values: np.ndarray) -> np.ndarray:
        """(N, P) classes of (N, P) property values."""
        values = np.asarray(values, dtype=float)
        return np.stack([assign_bins(values[:, j], p.edges) for j, p in enumerate(self.properties)], axis=1)

    # ------------------------------------------------------------------ conditions
    def parse(self, condition: str | Mapping[str, int] | None) -> dict[str, int]:
        """Validate a condition (``"A=4,B=0"`` or a dict) against the spec; every property must be given.

        Raises:
            DnalmError: a property the model was not trained with, a class out of range, or a missing property.
        """
        if condition is None or condition == "" or condition == {}:
            if self.properties:
                raise DnalmError(
                    f"the generator is conditioned on {self.names}; give a condition such as "
                    f"{','.join(f'{p.name}={p.n_bins - 1}' for p in self.properties)}"
                )
            return {}
        if isinstance(condition, str):
            parsed = {}
            for part in condition.split(","):
                part = part.strip()
                if "=" not in part:
                    raise DnalmError(f"condition {condition!r}: {part!r} is not NAME=CLASS")
                k, v = part.split("=", 1)
                try:
                    parsed[k.strip()] = int(v)
                except ValueError:
                    raise DnalmError(f"condition {condition!r}: class {v!r} of {k.strip()!r} is not an integer") from None
            condition = parsed
        out = {}
        for name, k in condition.items():
            p = self.property_bins(name)
            if not isinstance(k, (int, np.integer)) or not 0 <= int(k) < p.n_bins:
                raise DnalmError(
                    f"condition {name}={k}: the model was trained with classes 0..{p.n_bins - 1} of {name!r}"
                )
            out[name] = int(k)
        missing = [n for n in self.names if n not in out]
        if missing:
            raise DnalmError(f"condition {format_condition(out)!r} does not set {missing}; the generator needs all of {self.names}")
        return {n: out[n] for n in self.names}

    def condition_tokens(self, condition: Mapping[str, int]) -> list[str]:
        """Token names of a validated condition, in property order."""
        return [self.property_bins(n).token(condition[n]) for n in self.names]

    def prefix_ids(self, tokenizer, condition: str | Mapping[str, int] | None) -> list[int]:
        """Ids of the condition tokens that follow [BOS] for ``condition``."""
        cond = self.parse(condition)
        vocab = tokenizer.vocab
        names = self.condition_tokens(cond)
        missing = [t for t in names if t not in vocab]
        if missing:
            raise DnalmError(f"the tokenizer lacks condition token(s) {missing}; was the model fine-tuned with this spec?")
        return [vocab[t] for t in names]

    def all_conditions(self) -> list[dict[str, int]]:
        """Every combination of classes (the product over properties)."""
        import itertools

        return [dict(zip(self.names, combo)) for combo in itertools.product(*[range(p.n_bins) for p in self.properties])]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "layout": "[BOS] <cond tokens> sequence [EOS]",
            "properties": [
                {"name": p.name, "edges": p.edges, "counts": p.counts, "ranges": p.ranges, "tokens": p.tokens}
                for p in self.properties
            ],
            "sequence_lengths": list(self.sequence_lengths),
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "conditioning spec") -> ConditionSpec:
        try:
            props = [
                PropertyBins(name=p["name"], edges=[float(x) for x in p["edges"]], counts=list(p.get("counts", [])),
                             ranges=list(p.get("ranges", [])))
                for p in d["properties"]
            ]
        except (KeyError, TypeError) as exc:
            raise InputError(f"{source}: malformed conditioning spec ({exc})") from None
        return cls(properties=props, sequence_lengths=list(d.get("sequence_lengths", [0, 0])))


def format_condition(condition: Mapping[str, int]) -> str:
    """``{"A": 4, "B": 0}`` -> ``"A=4,B=0"``."""
    return ",".join(f"{k}={v}" for k, v in condition.items())


def parse_condition_string(text: str) -> dict[str, int]:
    """``"A=4,B=0"`` -> dict without validation against a spec (for FASTA headers)."""
    out = {}
    for part in text.split(","):
        if not part:
            continue
        k, _, v = part.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            raise InputError(f"condition {text!r}: {part!r} is not NAME=CLASS") from None
    return out


def add_condition_tokens(model, spec: ConditionSpec, broadcast: bool = False) -> list[int]:
    """Register the spec's tokens in ``model.tokenizer`` and grow the embedding to match.

    Args:
        model: a :class:`dnalm.models.DNALM` with a tokenizer attached.
        spec: the conditioning spec.
        broadcast: also add the condition tokens' embeddings to every later position
            (``LMConfig.condition_min_id``), so the condition reaches each base directly.

    Returns:
        The ids of the condition tokens (all >= 12, never a base id).
    """
    from dnalm.tokenizer import NUM_BASE_TOKENS, DNATokenizer

    if model.tokenizer is None:
        model.tokenizer = DNATokenizer()
    ids = model.tokenizer.add_condition_tokens(spec.token_names)
    assert min(ids) >= NUM_BASE_TOKENS, "condition tokens must not reuse base ids"
    if len(model.tokenizer) > model.config.vocab_size:
        model.resize_token_embeddings(len(model.tokenizer))
    if broadcast:
        model.require_causal("condition broadcasting")
        model.config.condition_min_id = NUM_BASE_TOKENS
    model.conditioning = spec
    return ids


def save_generator(model, directory: str | os.PathLike, spec: ConditionSpec | None = None, extra: dict | None = None):
    """Save a generator: weights, tokenizer (with condition tokens) and the spec in ``config.json``."""
    spec = spec or getattr(model, "conditioning", None)
    payload = dict(extra or {})
    if spec is not None:
        payload[SPEC_KEY] = spec.to_dict()
    return model.save_pretrained(directory, extra=payload)


def load_generator(directory: str | os.PathLike, device="cpu"):
    """Load a model directory and attach its :class:`ConditionSpec` as ``model.conditioning`` (None if absent).

    Args:
        directory: a model directory, or a preset name for an unconditioned random-init model.

    Returns:
        The model (in eval mode).
    """
    from pathlib import Path

    from dnalm.models import PRESETS, build_model, load_model, read_model_config

    if not Path(directory).is_dir():
        if str(directory) in PRESETS:
            model = build_model(str(directory)).to(device)
            model.conditioning = None
            return model.eval()
        raise InputError(f"{directory}: not a model directory (and not a preset: {', '.join(PRESETS)})")
    model = load_model(directory, device=device)
    model.require_causal("be a sequence generator")
    _, extra = read_model_config(directory)
    spec = extra.get(SPEC_KEY)
    model.conditioning = ConditionSpec.from_dict(spec, source=f"{directory}/config.json") if spec else None
    if model.conditioning is not None:
        missing = [t for t in model.conditioning.token_names if t not in model.tokenizer.vocab]
        if missing:
            raise InputError(f"{directory}: tokenizer.json lacks condition tokens {missing} listed in config.json")
    return model

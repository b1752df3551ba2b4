"""Bidirectional and reverse-complement-equivariant model parts (Caduceus): BiMamba wrapper, RCPS layers, MLM head.

Caduceus (Schiff et al. 2024, kuleshov-group/caduceus) is a masked DNA language model built from Mamba (v1) mixers
run forward and on the reversed sequence (:class:`BidirectionalMixer`), optionally made reverse-complement (RC)
equivariant by parameter sharing ("RCPS"): the hidden state has 2 * d_model channels, the first half for the strand
as read and the second half for its reverse complement, flipped back so that RC(h) = h.flip(length, channels)
(:func:`rc`). Every RCPS layer applies one set of weights to the first half and to the RC of the second half.

These parts are used by :class:`dnalm.models.lm.DNALM` when ``kind == "masked"`` (bidirectional) and ``rcps``. The
maths follows the published ``modeling_caduceus.py`` / ``modeling_rcps.py``; the module tree follows dnalm's (the
importer maps the names). One published detail is kept on purpose: with ``fused_add_norm`` (the setting of the
released checkpoints) the published RCPS block feeds the *second* half to the forward stream and the first to the
RC stream, i.e. it exchanges the two halves before each block; ``half_swap=True`` reproduces that (it commutes with
RC, so equivariance holds either way).

Notation: B batch, L length, d d_model, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError

STRATEGIES = ("add", "ew_multiply")


@dataclass
class BidirectionalConfig:
    """How a masked (bidirectional) model combines its passes and strands (Caduceus's settings)."""

    strategy: str = "add"  # combine forward and reversed mixer outputs: add | ew_multiply
    weight_tie: bool = True  # the reversed mixer shares in_proj and out_proj with the forward one
    rcps: bool = False  # reverse-complement parameter sharing: hidden width 2 * d_model, RC-equivariant
    half_swap: bool = False  # RCPS blocks exchange the halves first (published fused_add_norm path)
    complement_map: list[int] = field(default_factory=list)  # token id -> complement id; [] = DNA tokenizer's

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"bidirectional.strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        self.complement_map = [int(i) for i in self.complement_map]


def default_complement_map(vocab_size: int) -> list[int]:
    """HyenaDNA/Caduceus ids: A=7 <-> T=10, C=8 <-> G=9 (the tokenizer's ``COMPLEMENT_IDS``); every other id maps
    to itself."""
    from dnalm.tokenizer import COMPLEMENT_IDS

    cmap = list(range(vocab_size))
    for i, c in enumerate(COMPLEMENT_IDS[:vocab_size].tolist()):
        cmap[i] = c if c < vocab_size else i
    return cmap


def rc(h: torch.Tensor) -> torch.Tensor:
    """Reverse complement of a hidden state (B, L, C): flip length and channels."""
    return h.flip(dims=(-2, -1))


def rcps_apply(fn, h: torch.Tensor) -> torch.Tensor:
    """``cat(fn(h1), rc(fn(rc(h2))))`` for h = cat(h1, h2) (B, L, 2d), both halves through ``fn`` in one batch."""
    d = h.shape[-1] // 2
    both = torch.cat([h[..., :d], rc(h[..., d:])], dim=0)  # (2B, L, d)
    out = fn(both)
    fwd, rev = out.chunk(2, dim=0)
    return torch.cat([fwd, rc(rev)], dim=-1)


def swap_halves(h: torch.Tensor) -> torch.Tensor:
    """cat(h2, h1) for h = cat(h1, h2)."""
    d = h.shape[-1] // 2
    return torch.cat([h[..., d:], h[..., :d]], dim=-1)


class BidirectionalMixer(nn.Module):
    """A mixer run on the sequence and on its reversal (flipped back), combined by ``add`` or ``ew_multiply``."""

    def __init__(self, make_mixer, strategy: str = "add", weight_tie: bool = True):
        super().__init__()
        self.strategy = strategy
        self.fwd = make_mixer()
        self.rev = make_mixer()
        if weight_tie:  # the projections hold most of the parameters (as Caduceus's BiMambaWrapper)
            for name in ("in_proj", "out_proj"):
                mine, theirs = getattr(self.rev, name), getattr(self.fwd, name)
                mine.weight = theirs.weight
                mine.bias = theirs.bias

    def allocate_state(self, *args, **kwargs):
        raise ValueError("a bidirectional mixer reads the whole sequence; it has no inference state")

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        """x: (B, L, d) -> (B, L, d)."""
        if state is not None:
            raise ValueError("a bidirectional mixer cannot continue a sequence from a state")
        out = self.fwd(x)
        out_rev = self.rev(x.flip(dims=(1,))).flip(dims=(1,))
        return out + out_rev if self.strategy == "add" else out * out_rev


class RCPSEmbedding(nn.Module):
    """Token embedding made RC-equivariant: cat(E(ids), rc(E(rc(ids)))) -> (B, L, 2d).

    The weight lives in ``word_embeddings`` (an ``nn.Embedding``) like the plain one, so the LM head can tie to it.
    """

    def __init__(self, vocab: int, d_model: int, complement_map: list[int]):
        super().__init__()
        if len(complement_map) < vocab:
            complement_map = list(complement_map) + list(range(len(complement_map), vocab))
        self.word_embeddings = nn.Embedding(vocab, d_model)
        self.register_buffer("complement_map", torch.tensor(complement_map[:vocab]), persistent=False)

    def rc_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement of token ids (B, L)."""
        return self.complement_map[input_ids.flip(dims=(-1,))]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        fwd = self.word_embeddings(input_ids)  # (B, L, d)
        rev = rc(self.word_embeddings(self.rc_ids(input_ids)))  # (B, L, d)
        return torch.cat([fwd, rev], dim=-1)  # (B, L, 2d)


def rcps_logits(h: torch.Tensor, weight: torch.Tensor, complement_map: torch.Tensor) -> torch.Tensor:
    """RCPS LM head (published RCPSLMHead): W h1 + W[complement] flip_channels(h2); h (B, L, 2d) -> (B, L, V)."""
    d = h.shape[-1] // 2
    return F.linear(h[..., :d], weight) + F.linear(h[..., d:].flip(dims=(-1,)), weight[complement_map])


def hidden_by_length(hidden, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden(ids)`` of a right-padded batch run one length group at a time, each row at its own length, so that
    a bidirectional model's reversed pass never reads padding; padded positions are zeros. Batches without
    padding, or whose mask is not right padding (1s then 0s), run as they are.

    Args:
        hidden: (b, n) ids -> (b, n, C) states.
        input_ids, attention_mask: (B, L).
    """
    mask = attention_mask.bool()
    lengths = mask.sum(1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None] < lengths[:, None]
    if bool(mask.all()) or not torch.equal(mask, prefix):
        return hidden(input_ids)
    out = None
    for n in lengths.unique().tolist():
        if n == 0:
            continue  # an empty row stays zeros
        rows = (lengths == n).nonzero()[:, 0]
        h = hidden(input_ids[rows, :n])  # (b, n, C)
        if out is None:
            out = h.new_zeros(*input_ids.shape, h.shape[-1])
        out[rows, :n] = h
    return out if out is not None else hidden(input_ids)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100 (the masked ones); no shift."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)

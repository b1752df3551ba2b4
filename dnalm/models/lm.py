"""One causal DNA language model over per-layer token mixers (Hyena, Mamba2, attention).

Every model family is configuration of :class:`DNALM`: HyenaDNA is ``mixer="hyena"`` with a plain MLP and
LayerNorm; HybriDNA is ``mixer="mamba2"`` with ``attn_layer_idx=[4, 12, 20, ...]``, gated MLPs and RMSNorm; a pure
Transformer or pure Mamba2 is another pattern. Module names follow HyenaDNA's (``backbone.embeddings.
word_embeddings``, ``backbone.layers.{i}.norm1/mixer/norm2/mlp``, ``backbone.ln_f``) so its checkpoints map 1:1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dnalm.config import ConfigError
from dnalm.config import from_dict as _strict_from_dict
from dnalm.config import to_dict as _plain_dict
from dnalm.models.attention import Attention, AttentionConfig
from dnalm.models.cache import InferenceCache, MixerState
from dnalm.models.caduceus import BidirectionalConfig
from dnalm.models.hyena import HyenaConfig, HyenaOperator
from dnalm.models.layers import GatedMlp, Mlp, make_norm
from dnalm.models.mamba import Mamba, MambaConfig
from dnalm.models.mamba2 import Mamba2, Mamba2Config

MIXERS = ("hyena", "mamba2", "mamba", "attention")
KINDS = ("causal", "masked")  # next-token LMs; bidirectional masked LMs (Caduceus)
CONFIG_FORMAT_VERSION = 1


@dataclass(kw_only=True)
class ConditionState(MixerState):
    """Inference state of the condition broadcast (``LMConfig.condition_min_id``): the running embedding sum."""

    total: torch.Tensor | None = None  # (B, d_model) sum of the condition-token embeddings seen so far


@dataclass
class LMConfig:
    """Configuration of a :class:`DNALM`; serialised as ``config.json`` beside the weights."""

    d_model: int = 128  # residual stream width
    n_layer: int = 8  # number of blocks (mixer + MLP)
    vocab_size: int = 12  # tokenizer size (12 base tokens + condition tokens)
    pad_vocab_size_multiple: int = 8  # embedding rows rounded up to a multiple of this (HyenaDNA: 8)
    kind: str = "causal"  # causal (next-token LM) | masked (bidirectional masked LM, e.g. Caduceus)
    mixer: str = "mamba2"  # mixer of every layer not listed in attn_layer_idx: hyena | mamba2 | mamba | attention
    attn_layer_idx: list[int] = field(default_factory=list)  # layers that use attention (HybriDNA: 4, 12, 20, ...)
    mlp: str = "gated"  # gated (SwiGLU) | plain (fc1-GELU-fc2, HyenaDNA) | none
    d_intermediate: int = 0  # MLP hidden width; 0 = 4*d_model (plain) or 2*d_model (gated)
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    norm_eps: float = 1e-5  # epsilon of every norm
    max_length: int = 131072  # longest sequence the model is built for (tokens)
    tie_embeddings: bool = True  # lm_head shares the embedding matrix
    dropout: float = 0.0  # dropout on mixer/MLP outputs
    embed_dropout: float = 0.0  # dropout on the embeddings
    initializer_range: float = 0.02  # std of the embedding init
    rescale_prenorm_residual: bool = True  # scale out_proj/fc2 init by 1/sqrt(2 n_layer) (GPT-2 style)
    gradient_checkpointing: bool = False  # recompute blocks in backward to save memory
    # conditional generators: ids >= this are condition tokens, and the running sum of their embeddings is added to
    # every later position's embedding (global conditioning, as in conditional PixelCNN); 0 = off
    condition_min_id: int = 0
    hyena: HyenaConfig = field(default_factory=HyenaConfig)  # Hyena mixer settings (dnalm.models.hyena)
    mamba2: Mamba2Config = field(default_factory=Mamba2Config)  # Mamba2 mixer settings (dnalm.models.mamba2)
    mamba: MambaConfig = field(default_factory=MambaConfig)  # Mamba v1 mixer settings (dnalm.models.mamba)
    bidirectional: BidirectionalConfig = field(default_factory=BidirectionalConfig)  # masked kind (models.caduceus)
    attention: AttentionConfig = field(default_factory=AttentionConfig)  # attention settings (dnalm.models.attention)

    # typed sub-configs: a mapping given for one (preset, Python caller, config.json) goes through the strict loader
    _SUB_CONFIGS: ClassVar[dict[str, type]] = {
        "hyena": HyenaConfig, "mamba2": Mamba2Config, "mamba": MambaConfig, "bidirectional": BidirectionalConfig,
        "attention": AttentionConfig,
    }

    def __post_init__(self):
        for name, cls in self._SUB_CONFIGS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _strict_from_dict(cls, value, prefix=name))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name}: expected a mapping of {cls.__name__} fields, got {type(value).__name__}")
        if self.mixer not in MIXERS:
            raise ConfigError(f"mixer: {self.mixer!r} is not one of {', '.join(MIXERS)}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "causal" and self.bidirectional != BidirectionalConfig():
            raise ConfigError("bidirectional: settings only apply to kind 'masked'")
        if self.mlp not in ("gated", "plain", "none"):
            raise ConfigError(f"mlp: {self.mlp!r} is not one of gated, plain, none")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ConfigError(f"norm: {self.norm!r} is not one of rmsnorm, layernorm")
        for name in ("d_model", "n_layer", "vocab_size", "max_length", "pad_vocab_size_multiple"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.condition_min_id, int) or self.condition_min_id < 0:
            raise ConfigError(f"condition_min_id: must be an integer >= 0, got {self.condition_min_id!r}")
        if self.condition_min_id and self.kind != "causal":
            raise ConfigError("condition_min_id: condition broadcasting is for causal (generating) models only")
        self.attn_layer_idx = sorted(int(i) for i in self.attn_layer_idx)
        bad = [i for i in self.attn_layer_idx if not 0 <= i < self.n_layer]
        if bad:
            raise ConfigError(f"attn_layer_idx: {bad} outside 0..{self.n_layer - 1}")
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Cross-field checks of the mixers in use (what building them would find), without building anything."""
        kinds = set(self.layer_pattern)
        if "attention" in kinds:
            a = self.attention
            n_kv = a.n_kv_heads or a.n_heads
            if a.n_heads < 1 or self.d_model % a.n_heads:
                raise ConfigError(f"attention.n_heads: d_model={self.d_model} is not divisible by n_heads={a.n_heads}")
            if n_kv < 1 or a.n_heads % n_kv:
                raise ConfigError(f"attention.n_kv_heads: n_heads={a.n_heads} is not divisible by n_kv_heads={n_kv}")
        if "mamba2" in kinds:
            m = self.mamba2
            d_inner = m.expand * self.d_model
            if d_inner % m.headdim:
                raise ConfigError(f"mamba2.headdim: d_inner {d_inner} (expand x d_model) is not a multiple of "
                                  f"headdim {m.headdim}")
            if (d_inner // m.headdim) % m.ngroups:
                raise ConfigError(f"mamba2.ngroups: {d_inner // m.headdim} heads are not divisible into "
                                  f"ngroups={m.ngroups}")

    @property
    def layer_pattern(self) -> list[str]:
        """Mixer name of each layer."""
        return ["attention" if i in self.attn_layer_idx else self.mixer for i in range(self.n_layer)]

    @property
    def bidi(self) -> BidirectionalConfig | None:
        """The :class:`~dnalm.models.caduceus.BidirectionalConfig` of a masked model (None if causal)."""
        return self.bidirectional if self.kind == "masked" else None

    def require_causal(self, what: str) -> None:
        """Raise a clear :class:`DnalmError` when ``what`` needs next-token probabilities and the model is
        bidirectional (a masked LM's logits at a position see that position's token)."""
        if self.kind != "causal":
            from dnalm.errors import DnalmError

            raise DnalmError(
                f"this is a bidirectional masked language model (e.g. Caduceus); it cannot {what}. Use a causal "
                "model (HyenaDNA, Mamba, Mamba2, hybrids), or a command that takes bidirectional models "
                "(embed, finetune, benchmark, score-variants, ism)."
            )

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states: d_model, or 2 * d_model for an RC-equivariant (RCPS) model."""
        bidi = self.bidi
        return 2 * self.d_model if bidi is not None and bidi.rcps else self.d_model

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return int(math.ceil(self.vocab_size / m) * m)

    def to_dict(self) -> dict:
        """Plain JSON-ready mapping, sub-configs included (what ``config.json`` holds)."""
        return _plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> LMConfig:
        """Strict (:mod:`dnalm.config`): an unknown or wrongly typed key, sub-configs included, is a ConfigError
        naming ``source`` and the dotted key (``mamba2.chunk_sise: unknown key; did you mean 'mamba2.chunk_size'?``)."""
        try:
            return _strict_from_dict(cls, d)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _hybrid_attn_idx(n_layer: int, every: int = 8, offset: int = 4) -> list[int]:
    return [i for i in range(n_layer) if i % every == offset]


PRESETS: dict[str, dict[str, Any]] = {
    # HyenaDNA tiny (1k context): d_model 128, 2 layers, plain MLP 512, LayerNorm
    "hyenadna-tiny": dict(
        mixer="hyena", d_model=128, n_layer=2, d_intermediate=512, mlp="plain", norm="layernorm",
        max_length=1026, hyena=dict(activation_freq=10),
    ),
    # HyenaDNA small (32k context): d_model 256, 4 layers
    "hyenadna-small": dict(
        mixer="hyena", d_model=256, n_layer=4, d_intermediate=1024, mlp="plain", norm="layernorm",
        max_length=32770, hyena=dict(activation_freq=10),
    ),
    # HybriDNA-style hybrid at laptop size: 8 layers, attention at layer 4, gated MLP, RMSNorm, 131k context
    "hybridna-tiny": dict(
        mixer="mamba2", d_model=128, n_layer=8, attn_layer_idx=[4], d_intermediate=256, mlp="gated",
        norm="rmsnorm", max_length=131072, mamba2=dict(d_state=64, headdim=32, expand=2, chunk_size=256),
        attention=dict(n_heads=4, n_kv_heads=4),
    ),
    # HybriDNA-300M-like: 24 layers of width 1024, attention at 4, 12, 20
    "hybridna-300m": dict(
        mixer="mamba2", d_model=1024, n_layer=24, attn_layer_idx=_hybrid_attn_idx(24), d_intermediate=2048,
        mlp="gated", norm="rmsnorm", max_length=131072,
        mamba2=dict(d_state=128, headdim=64, expand=2, chunk_size=256), attention=dict(n_heads=16, n_kv_heads=8),
    ),
    # a pure Transformer and a pure Mamba2 are the same class with another pattern
    "transformer-tiny": dict(
        mixer="attention", d_model=128, n_layer=4, d_intermediate=256, mlp="gated", norm="rmsnorm",
        max_length=8192, attention=dict(n_heads=4, rotary=True),
    ),
    "mamba2-tiny": dict(
        mixer="mamba2", d_model=128, n_layer=4, d_intermediate=256, mlp="gated", norm="rmsnorm",
        max_length=131072, mamba2=dict(d_state=64, headdim=32, expand=2, chunk_size=256),
    ),
}


def preset_config(name: str, **overrides) -> LMConfig:
    """The :class:`LMConfig` of a named preset, with field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; presets: {', '.join(PRESETS)}")
    d = json.loads(json.dumps(PRESETS[name]))  # deep copy
    d.update(overrides)
    return LMConfig.from_dict(d, source=f"preset {name}")


@dataclass
class LMOutput:
    """Output of :meth:`DNALM.forward`; field names as Hugging Face's ``CausalLMOutput``."""

    logits: torch.Tensor  # (B, L or num_last_tokens, vocab_size)
    loss: torch.Tensor | None = None  # mean next-token cross-entropy (nats) when labels were given
    # output_hidden_states=True: a tuple of n_layer + 1 (B, L, d_model) tensors as in HF (the embeddings, then
    # each block's output; the last one after the final norm); return_hidden=True: the final normed states alone
    hidden_states: torch.Tensor | tuple[torch.Tensor, ...] | None = None


def make_mixer(kind: str, cfg: LMConfig, layer_idx: int) -> nn.Module:
    """The token mixer of layer ``layer_idx`` for a mixer ``kind`` (hyena, mamba2, mamba, attention) of ``cfg``."""
    if cfg.kind == "masked":  # forward + reversed pass of the same mixer
        from dnalm.models.caduceus import BidirectionalMixer

        bidi = cfg.bidi
        return BidirectionalMixer(lambda: _causal_mixer(kind, cfg, layer_idx), bidi.strategy, bidi.weight_tie)
    return _causal_mixer(kind, cfg, layer_idx)


def _causal_mixer(kind: str, cfg: LMConfig, layer_idx: int) -> nn.Module:
    if kind == "attention":
        return Attention(cfg.d_model, layer_idx, cfg.attention)
    if kind == "mamba2":
        return Mamba2(cfg.d_model, layer_idx=layer_idx, config=cfg.mamba2)
    if kind == "mamba":
        return Mamba(cfg.d_model, layer_idx=layer_idx, config=cfg.mamba)
    if kind == "hyena":
        return HyenaOperator(cfg.d_model, layer_idx=layer_idx, config=cfg.hyena, max_length=cfg.max_length)
    raise ConfigError(f"unknown mixer {kind!r}")


class Block(nn.Module):
    """Pre-norm residual block: h + mixer(norm1(h)), then h + mlp(norm2(h))."""

    def __init__(self, cfg: LMConfig, layer_idx: int, kind: str):
        super().__init__()
        self.kind = kind
        self.norm1 = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.mixer = make_mixer(kind, cfg, layer_idx)
        if cfg.mlp == "none":
            self.norm2, self.mlp = None, None
        else:
            self.norm2 = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
            hidden = cfg.d_intermediate or (4 * cfg.d_model if cfg.mlp == "plain" else 2 * cfg.d_model)
            self.mlp = Mlp(cfg.d_model, hidden) if cfg.mlp == "plain" else GatedMlp(cfg.d_model, hidden)
        self.drop = nn.Dropout(cfg.dropout)
        bidi = cfg.bidi
        self.rcps = bool(bidi and bidi.rcps)  # RC-equivariant: the same block on both strands' halves
        self.half_swap = bool(bidi and bidi.half_swap)

    def forward(self, h: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        if self.rcps:
            from dnalm.models.caduceus import rcps_apply, swap_halves

            return rcps_apply(self._residual, swap_halves(h) if self.half_swap else h)
        return self._residual(h, state)

    def _residual(self, h: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        h = h + self.drop(self.mixer(self.norm1(h), state))
        if self.mlp is not None:
            h = h + self.drop(self.mlp(self.norm2(h)))
        return h


class Embeddings(nn.Module):
    """Token embeddings (HyenaDNA's module name: ``embeddings.word_embeddings``)."""

    def __init__(self, vocab: int, d_model: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d_model)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class Backbone(nn.Module):
    """Embeddings, blocks and the final norm."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        bidi = cfg.bidi
        self.rcps = bool(bidi and bidi.rcps)
        if self.rcps:
            from dnalm.models.caduceus import RCPSEmbedding, default_complement_map

            cmap = bidi.complement_map or default_complement_map(cfg.padded_vocab_size)
            self.embeddings = RCPSEmbedding(cfg.padded_vocab_size, cfg.d_model, cmap)
        else:
            self.embeddings = Embeddings(cfg.padded_vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.embed_dropout)
        self.layers = nn.ModuleList(Block(cfg, i, kind) for i, kind in enumerate(cfg.layer_pattern))
        self.ln_f = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)

    def final_norm(self, h: torch.Tensor) -> torch.Tensor:
        """ln_f, on each strand's half for an RCPS model."""
        if self.rcps:
            from dnalm.models.caduceus import rcps_apply

            return rcps_apply(self.ln_f, h)
        return self.ln_f(h)


class DNALM(nn.Module):
    """Causal single-nucleotide language model over a configurable stack of mixers."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight
        self.tokenizer = None  # attached by load_model / build_model
        self._init_weights()

    # ------------------------------------------------------------------ init
    def _init_weights(self) -> None:
        cfg = self.config
        nn.init.normal_(self.backbone.embeddings.word_embeddings.weight, std=cfg.initializer_range)
        for module in self.modules():
            # mixers mark biases with a special init (e.g. Hyena's filter MLP) by setting ``bias._no_reinit``
            if isinstance(module, nn.Linear) and module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        if cfg.rescale_prenorm_residual:
            n_res = 2 if cfg.mlp != "none" else 1
            for name, p in self.named_parameters():
                if name.endswith(("out_proj.weight", "fc2.weight")) and "filter" not in name:
                    with torch.no_grad():
                        p /= math.sqrt(n_res * cfg.n_layer)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def is_bidirectional(self) -> bool:
        """A masked (bidirectional) LM: no next-token logits, no generation, masked-marginal variant scores."""
        return self.config.kind == "masked"

    @property
    def hidden_size(self) -> int:
        """Width of :meth:`embed`'s features (2 * d_model for an RC-equivariant model)."""
        return self.config.hidden_size

    def require_causal(self, what: str) -> None:
        """See :meth:`LMConfig.require_causal`."""
        self.config.require_causal(what)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (tied weights counted once)."""
        seen, n = set(), 0
        for p in self.parameters():
            if id(p) in seen or (trainable_only and not p.requires_grad):
                continue
            seen.add(id(p))
            n += p.numel()
        return n

    def set_scan_chunk_size(self, chunk_size: int) -> int:
        """Set the SSD chunk length of every Mamba2 mixer (and the config, so a saved model records it).

        The chunked scan gives the same outputs for any chunk length; short sequences run faster with short
        chunks (the intra-chunk work is quadratic in the chunk length). Returns the number of mixers changed.
        """
        if chunk_size < 1:
            raise ConfigError(f"scan_chunk_size must be positive, got {chunk_size}")
        changed = 0
        for layer in self.backbone.layers:
            if getattr(layer, "kind", "") == "mamba2" and hasattr(layer.mixer, "chunk_size"):
                layer.mixer.chunk_size = int(chunk_size)
                changed += 1
        if changed:
            self.config.mamba2 = dataclasses.replace(self.config.mamba2, chunk_size=int(chunk_size))
        return changed

    # ------------------------------------------------------------------ forward
    def hidden(self, input_ids: torch.Tensor, cache: InferenceCache | None = None,
               all_states: list | None = None) -> torch.Tensor:
        """Final normed hidden states (B, T, d_model); with ``cache`` the ids continue the cached sequence.

        ``all_states``, when given, receives the embeddings and every block's input, then the final states (the
        ``hidden_states`` tuple of Hugging Face models: n_layer + 1 tensors).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        if cache is not None and self.is_bidirectional:
            raise ValueError("a bidirectional (masked) model reads whole sequences; it has no inference cache")
        T = input_ids.shape[1]
        offset = cache.seqlen_offset if cache is not None else 0
        if offset + T > self.config.max_length:
            from dnalm.errors import DnalmError

            raise DnalmError(
                f"sequence of {offset + T} tokens is longer than the model's maximum length {self.config.max_length}"
            )
        if int(input_ids.max()) >= self.config.padded_vocab_size or int(input_ids.min()) < 0:
            raise ValueError(f"token id outside the vocabulary (size {self.config.vocab_size})")
        h = self.backbone.embeddings(input_ids)  # (B, T, d)
        if self.config.condition_min_id:
            h = h + self._condition_context(input_ids, h, cache)
        h = self.backbone.drop(h)
        for i, layer in enumerate(self.backbone.layers):
            if all_states is not None:
                all_states.append(h)
            state = cache.states[i] if cache is not None else None
            if self.config.gradient_checkpointing and self.training and state is None:
                h = checkpoint(layer, h, use_reentrant=False)
            else:
                h = layer(h, state)  # a mixer with a state advances its ``pos`` (the cache's offset)
        h = self.backbone.final_norm(h)
        if all_states is not None:
            all_states.append(h)
        return h

    def _condition_context(self, input_ids: torch.Tensor, h: torch.Tensor, cache: InferenceCache | None) -> torch.Tensor:
        """(B, T, d) sum of the condition-token embeddings at positions <= t, continued from the cache's running sum.

        Global conditioning: a condition token at the start reaches every later position directly, instead of only
        through the mixers' memory of the prefix. The reference is a loop over positions (tests); this is its cumsum.
        """
        is_cond = (input_ids >= self.config.condition_min_id).to(h.dtype)  # (B, T)
        ctx = (h * is_cond[..., None]).cumsum(1)  # (B, T, d)
        if cache is not None:
            state = cache.states[len(self.backbone.layers)]  # the ConditionState after the layers' states
            ctx = ctx + state.total[:, None].to(ctx.dtype)  # allocated as zeros
            state.total = ctx[:, -1]  # (B, d)
            state.pos += input_ids.shape[1]
        return ctx

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        cache: InferenceCache | None = None,
        num_last_tokens: int = 0,
        return_hidden: bool = False,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> LMOutput:
        """Next-token logits (and loss); for a masked model, the token logits at every position.

        Args:
            input_ids: (B, T) token ids.
            labels: (B, T) targets aligned with ``input_ids`` (shifted inside: position t predicts t+1);
                -100 and [PAD] are ignored. Masked model: no shift, loss over the positions not -100.
            cache: inference cache to continue from (updated in place).
            num_last_tokens: if > 0, logits only for the last positions (saves memory in decoding).
            return_hidden: also return the final hidden states (``hidden_states``, one tensor).
            attention_mask: (B, T), 1 on real tokens, 0 on right padding (as a Hugging Face tokenizer gives it).
                A causal model's real tokens never see the padding after them; padded positions are left out
                of the loss. Left padding, and padding for a bidirectional model (whose tokens would see it),
                are refused.
            output_hidden_states: ``hidden_states`` is the tuple of the embeddings and every block's output
                (n_layer + 1 tensors, the last after the final norm), as in Hugging Face transformers.
        """
        if attention_mask is not None:
            labels = self._apply_attention_mask(input_ids, attention_mask, labels)
        states: list | None = [] if output_hidden_states else None
        h = self.hidden(input_ids, cache, all_states=states)
        hh = h[:, -num_last_tokens:] if num_last_tokens > 0 else h
        if self.backbone.rcps:
            from dnalm.models.caduceus import rcps_logits

            logits = rcps_logits(hh, self.lm_head.weight, self.backbone.embeddings.complement_map)
        else:
            logits = self.lm_head(hh)
        logits = logits[..., : self.config.vocab_size]
        loss = None
        if labels is not None and self.is_bidirectional:
            from dnalm.models.caduceus import masked_lm_loss

            loss = masked_lm_loss(logits, labels)
        elif labels is not None:
            from dnalm.training import next_token_loss

            if num_last_tokens:
                raise ValueError("labels need logits for every position (num_last_tokens=0)")
            loss = next_token_loss(logits, labels)
        hidden = tuple(states) if output_hidden_states else (h if return_hidden else None)
        return LMOutput(logits=logits, loss=loss, hidden_states=hidden)

    def _apply_attention_mask(self, input_ids, attention_mask, labels):
        """Check a right-padding mask and drop padded positions from ``labels`` (-100)."""
        mask = attention_mask.to(device=input_ids.device).bool()
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(mask.shape)} does not match input_ids {tuple(input_ids.shape)}")
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("attention_mask: only right padding is supported (1s, then 0s in every row)")
        if self.is_bidirectional and not bool(mask.all()):
            raise ValueError("a bidirectional model's tokens see padding: pass rows of equal length (no padding)")
        if labels is not None:
            labels = labels.masked_fill(~mask, -100)
        return labels

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, L, hidden_size) for heads.

        A causal model's real tokens never see right padding, so the batch runs as it is. A bidirectional model's
        would (its reversed pass reads the padding first), so with a right-padding ``attention_mask`` (1s then 0s)
        the rows run grouped by length, each at its own length, and padded positions are zeros.
        """
        if not self.is_bidirectional or attention_mask is None:
            return self.hidden(input_ids)
        from dnalm.models.caduceus import hidden_by_length

        return hidden_by_length(self.hidden, input_ids, attention_mask)

    # ------------------------------------------------------------------ cache + generation
    def allocate_cache(self, batch_size: int, max_length: int | None = None, device=None, dtype=None) -> InferenceCache:
        """Empty inference cache for ``batch_size`` rows and up to ``max_length`` tokens."""
        max_length = max_length or self.config.max_length
        device = device or self.device
        dtype = dtype or self.dtype
        states = [layer.mixer.allocate_state(batch_size, max_length, device=device, dtype=dtype) for layer in self.backbone.layers]
        if self.config.condition_min_id:
            states.append(ConditionState(total=torch.zeros(batch_size, self.config.d_model, device=device, dtype=dtype)))
        return InferenceCache(states=states, max_length=max_length)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        allowed_token_ids: list[int] | None = None,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        return_logprobs: bool = False,
    ):
        """Sample a continuation of ``input_ids`` (B, T).

        Args:
            max_new_tokens: tokens to add (exactly that many unless ``eos_token_id`` is hit; finished rows are
                padded with [PAD]).
            temperature: 0 means greedy.
            top_k / top_p: nucleus / top-k filtering.
            seed / generator: reproducible sampling.
            allowed_token_ids: restrict sampling to these ids (e.g. the four bases for exact-length DNA).
            use_cache: decode with the inference cache (O(1) per token for Mamba2); False recomputes the whole
                forward for each token (reference path and benchmark baseline).
            return_logprobs: also return the (B, max_new_tokens) log-probabilities of the chosen tokens.

        Returns:
            (B, T + max_new_tokens) ids, and the log-probabilities if asked.
        """
        from dnalm.tokenizer import PAD_ID

        self.require_causal("generate sequences left to right")
        if generator is None and seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(seed)
        was_training = self.training
        self.eval()
        B, T = input_ids.shape
        total = T + max_new_tokens
        if total > self.config.max_length:
            from dnalm.errors import DnalmError

            raise DnalmError(f"prompt ({T}) + new tokens ({max_new_tokens}) exceed the maximum length {self.config.max_length}")
        allowed = None
        if allowed_token_ids is not None:
            allowed = torch.full((self.config.vocab_size,), float("-inf"), device=self.device)
            allowed[torch.as_tensor(list(allowed_token_ids), device=self.device)] = 0.0
        ids = input_ids.to(self.device)
        out_lp = []
        finished = torch.zeros(B, dtype=torch.bool, device=self.device)
        cache = self.allocate_cache(B, total) if use_cache else None
        logits = self(ids, cache=cache, num_last_tokens=1).logits[:, -1] if use_cache else None
        for step in range(max_new_tokens):
            if not use_cache:
                logits = self(ids, num_last_tokens=1).logits[:, -1]
            logits = logits.float()
            if allowed is not None:
                logits = logits + allowed
            logp = torch.log_softmax(logits, -1)
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            if eos_token_id is not None:
                nxt = torch.where(finished, torch.full_like(nxt, PAD_ID), nxt)
                finished |= nxt == eos_token_id
            out_lp.append(logp.gather(-1, nxt[:, None])[:, 0])
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if eos_token_id is not None and bool(finished.all()):
                pad = torch.full((B, max_new_tokens - step - 1), PAD_ID, dtype=ids.dtype, device=ids.device)
                ids = torch.cat([ids, pad], 1)
                break
            if use_cache and step < max_new_tokens - 1:
                logits = self(nxt[:, None], cache=cache).logits[:, -1]
        self.train(was_training)
        if return_logprobs:
            return ids, torch.stack(out_lp, 1) if out_lp else torch.zeros(B, 0)
        return ids

    # ------------------------------------------------------------------ vocabulary
    def resize_token_embeddings(self, vocab_size: int) -> None:
        """Grow the vocabulary (e.g. after adding condition tokens); new rows are initialised like the rest."""
        old = self.config.padded_vocab_size
        self.config.vocab_size = vocab_size
        new = self.config.padded_vocab_size
        if new <= old:
            return
        emb = self.backbone.embeddings.word_embeddings
        w = torch.empty(new, self.config.d_model, device=emb.weight.device, dtype=emb.weight.dtype)
        nn.init.normal_(w, std=self.config.initializer_range)
        w[:old] = emb.weight.data
        self.backbone.embeddings.word_embeddings = nn.Embedding(new, self.config.d_model, _weight=w)
        if self.config.tie_embeddings:
            self.lm_head = nn.Linear(self.config.d_model, new, bias=False, device=w.device, dtype=w.dtype)
            self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight
        else:
            head = nn.Linear(self.config.d_model, new, bias=False, device=w.device, dtype=w.dtype)
            head.weight.data[:old] = self.lm_head.weight.data
            self.lm_head = head

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> DNALM:
        """A model folder (or a preset name) through :func:`load_model`, as in Hugging Face transformers."""
        return load_model(source, device=device, dtype=dtype)

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` into ``directory`` (atomically)."""
        from safetensors.torch import save_model

        from dnalm.tokenizer import DNATokenizer
        from dnalm.utils import atomic_path, atomic_write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "model.safetensors") as tmp:
            save_model(self, str(tmp), metadata={"format": "pt", "dnalm_config_version": str(CONFIG_FORMAT_VERSION)})
        meta = {"model_type": "dnalm", "format_version": CONFIG_FORMAT_VERSION, "config": self.config.to_dict()}
        if extra:
            meta["extra"] = extra
        with atomic_write(directory / "config.json") as fh:
            json.dump(meta, fh, indent=2)
        (self.tokenizer or DNATokenizer()).save(directory / "tokenizer.json")
        return directory


def build_model(config: str | LMConfig | dict = "hybridna-tiny", tokenizer=None, **overrides) -> DNALM:
    """A freshly initialised model from a preset name, an :class:`LMConfig` or a dict.

    Args:
        config: preset name (see ``PRESETS``), LMConfig or dict of LMConfig fields.
        tokenizer: attached to the model (its size sets ``vocab_size`` when larger).
        **overrides: LMConfig fields that replace the preset's.
    """
    from dnalm.tokenizer import DNATokenizer

    if isinstance(config, str):
        cfg = preset_config(config, **overrides)
    elif isinstance(config, dict):
        cfg = LMConfig.from_dict({**config, **overrides})
    else:
        cfg = dataclasses.replace(config, **overrides) if overrides else config
    tokenizer = tokenizer or DNATokenizer()
    if len(tokenizer) > cfg.vocab_size:
        cfg = dataclasses.replace(cfg, vocab_size=len(tokenizer))
    model = DNALM(cfg)
    model.tokenizer = tokenizer
    return model


def read_model_config(directory: str | os.PathLike) -> tuple[LMConfig, dict]:
    """Config (and the json's ``extra`` dict) of a saved model directory."""
    from dnalm.models.importers import dnalm_folder
    from dnalm.utils import read_model_json

    directory = dnalm_folder(directory)
    path = directory / "config.json"
    meta = read_model_json(path, {"model_type": "dnalm"}, f"{directory}: not a dnalm model directory (no config.json)")
    return LMConfig.from_dict(meta["config"], source=str(path)), meta.get("extra", {})


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype or its name (``"float32"``, ``"bfloat16"``, ``"float16"``, ``"float64"``)."""
    from dnalm.errors import ConfigError

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[str(dtype)]


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | str | None = None) -> DNALM:
    """Load a model saved with :meth:`DNALM.save_pretrained` (safetensors only, never pickle).

    Args:
        directory: a model folder, or a preset name (see ``PRESETS``: a freshly initialised model).
        device: where the model is put (eval mode).
        dtype: a torch dtype or its name (:func:`resolve_dtype`); None keeps the stored float32. With
            ``"bfloat16"`` weights and activations are bfloat16 while the SSD scan, the Hyena FFT convolution, the
            norms and the loss accumulate in float32 (``model.to(torch.bfloat16)`` does the same for a model in
            memory; cached decoding follows the model's dtype). It halves memory; on CPUs without native bfloat16
            arithmetic (AVX2 only) it is slower than float32 (measured 3-5x on this project's machine), so it
            pays on GPUs and on CPUs with AVX512-BF16/AMX.

    The weights file's header is checked against the shapes ``config.json`` implies before the model is built
    (a lying config allocates nothing), and non-finite weights are refused (:mod:`dnalm.models.weights`).
    """
    from dnalm.errors import InputError
    from dnalm.models.weights import check_against, load_checked
    from dnalm.tokenizer import DNATokenizer

    dtype = resolve_dtype(dtype)
    if not Path(directory).exists() and str(directory) in PRESETS:
        return build_model(str(directory)).to(device=device, dtype=dtype).eval()
    if not Path(directory).exists():
        raise InputError(f"model {str(directory)!r}: no such folder, and not a preset ({', '.join(PRESETS)})")
    from dnalm.models.importers import dnalm_folder

    directory = dnalm_folder(directory)  # an importable checkpoint is converted once (cached)
    cfg, _ = read_model_config(directory)
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise InputError(f"{directory}: no model.safetensors")
    check_against(weights, lambda: DNALM(cfg), directory / "config.json")
    model = load_checked(DNALM(cfg), weights)
    tok_path = directory / "tokenizer.json"
    model.tokenizer = DNATokenizer.load(tok_path) if tok_path.exists() else DNATokenizer()
    model.to(device=device, dtype=dtype)
    model.eval()
    return model


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample one id per row from (B, V) logits with temperature, top-k and top-p (nucleus) filtering."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, -1)
        cum = probs.cumsum(-1)
        remove = cum - probs > top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)

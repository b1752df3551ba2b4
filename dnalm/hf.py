"""Hugging Face face of dnalm models (the ``hf`` extra): AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM.

Importing this module registers model_type ``dnalm`` with ``transformers``; a dnalm model folder then loads the
transformers way::

    import dnalm.hf  # noqa: F401  (registers the classes)
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    lm = AutoModelForCausalLM.from_pretrained("my_dnalm_model")        # causal models
    mlm = AutoModelForMaskedLM.from_pretrained("my_imported_caduceus")  # bidirectional models

The wrappers hold a :class:`dnalm.models.DNALM` as ``.dnalm`` and load it with :func:`dnalm.load_model` (the same
safetensors file, the same logits); ``save_pretrained`` writes the dnalm folder layout, which both libraries read.
A dnalm folder's ``config.json`` already has ``model_type: dnalm`` and the model's settings under ``config``, which
is exactly what :class:`DnalmConfig` reads, so no conversion is needed. Token ids are dnalm's (HyenaDNA's).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutput, MaskedLMOutput

from dnalm.errors import InputError


class DnalmConfig(PretrainedConfig):
    """transformers config of a dnalm model: the dnalm ``LMConfig`` fields live in ``config`` (a dict)."""

    model_type = "dnalm"

    def __init__(self, config: dict | None = None, format_version: int = 1, extra: dict | None = None, **kwargs):
        self.config = dict(config or {})
        self.format_version = format_version
        self.extra = dict(extra or {})
        super().__init__(**kwargs)

    def lm_config(self):
        """The typed :class:`dnalm.models.LMConfig`."""
        from dnalm.models import LMConfig

        return LMConfig.from_dict(self.config, source="DnalmConfig.config")


class _DnalmPreTrainedModel(PreTrainedModel):
    """Shared loading and saving: the weights are dnalm's own safetensors file, read by :func:`dnalm.load_model`."""

    config_class = DnalmConfig
    base_model_prefix = "dnalm"
    _kind = "causal"

    def __init__(self, config: DnalmConfig, dnalm_model=None):
        super().__init__(config)
        from dnalm.models import DNALM

        self.dnalm = dnalm_model if dnalm_model is not None else DNALM(config.lm_config())
        if self.dnalm.config.kind != self._kind:
            other = "AutoModelForMaskedLM" if self._kind == "causal" else "AutoModelForCausalLM"
            raise InputError(f"this dnalm model is {self.dnalm.config.kind!r}; load it with {other}")

    def _init_weights(self, module):  # dnalm initialises its own modules
        pass

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, config=None, **kwargs):
        """Load a dnalm model folder (dtype from ``torch_dtype``/``dtype``, device from ``device_map`` if a
        single device)."""
        from dnalm.models import load_model

        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a local dnalm model folder (the hub is not read by dnalm.hf)")
        dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
        dtype = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
        device = kwargs.get("device_map")
        device = device if isinstance(device, (str, torch.device)) and device != "auto" else "cpu"
        lm = load_model(folder, device=device, dtype=None if dtype == "auto" else dtype)
        if not isinstance(config, DnalmConfig):
            config = DnalmConfig.from_pretrained(folder)
        model = cls(config, dnalm_model=lm)
        model.eval()
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Write the dnalm folder layout (config.json, model.safetensors, tokenizer.json)."""
        self.dnalm.save_pretrained(save_directory, extra=self.config.extra or None)

    def get_input_embeddings(self):
        return self.dnalm.backbone.embeddings.word_embeddings

    def get_output_embeddings(self):
        return self.dnalm.lm_head


class DnalmForCausalLM(_DnalmPreTrainedModel):
    """A causal dnalm model behind the transformers API: next-token logits and loss."""

    _kind = "causal"

    def forward(self, input_ids: torch.Tensor, attention_mask=None, labels: torch.Tensor | None = None,
                output_hidden_states: bool = False, return_dict: bool = True, **kwargs) -> CausalLMOutput:
        """input_ids (B, L) -> logits (B, L, vocab_size); ``labels`` as input_ids (shifted inside)."""
        out = self.dnalm(input_ids, labels=labels, return_hidden=output_hidden_states)
        hidden = (out.hidden_states,) if output_hidden_states else None
        return CausalLMOutput(loss=out.loss, logits=out.logits, hidden_states=hidden)


class DnalmForMaskedLM(_DnalmPreTrainedModel):
    """A bidirectional dnalm model (e.g. an imported Caduceus) behind the transformers API: token logits."""

    _kind = "masked"

    def forward(self, input_ids: torch.Tensor, attention_mask=None, labels: torch.Tensor | None = None,
                output_hidden_states: bool = False, return_dict: bool = True, **kwargs) -> MaskedLMOutput:
        """input_ids (B, L) -> logits (B, L, vocab_size); loss over the positions whose label is not -100."""
        out = self.dnalm(input_ids, labels=labels, return_hidden=output_hidden_states)
        hidden = (out.hidden_states,) if output_hidden_states else None
        return MaskedLMOutput(loss=out.loss, logits=out.logits, hidden_states=hidden)


def register() -> None:
    """Register model_type ``dnalm`` with AutoConfig, AutoModelForCausalLM and AutoModelForMaskedLM (idempotent)."""
    for fn in (lambda: AutoConfig.register("dnalm", DnalmConfig),
               lambda: AutoModelForCausalLM.register(DnalmConfig, DnalmForCausalLM),
               lambda: AutoModelForMaskedLM.register(DnalmConfig, DnalmForMaskedLM)):
        try:
            fn()
        except ValueError:  # already registered
            pass


register()

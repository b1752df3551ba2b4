"""Small pieces shared by the datasets: tokenizer default, special tokens, per-item random streams."""

from __future__ import annotations

import numpy as np
import torch

from dnalm.tokenizer import DNATokenizer

from .collate import collate


def default_tokenizer(tokenizer: DNATokenizer | None) -> DNATokenizer:
    """The caller's tokenizer, or a plain :class:`DNATokenizer`."""
    return tokenizer if tokenizer is not None else DNATokenizer()


def to_input_ids(ids: np.ndarray, tokenizer: DNATokenizer, add_special_tokens: bool) -> torch.Tensor:
    """1-D LongTensor of base ids, wrapped as ``[BOS] ids [EOS]`` when asked."""
    if add_special_tokens:
        ids = np.concatenate(
            [np.array([tokenizer.bos_token_id], np.int64), ids, np.array([tokenizer.eos_token_id], np.int64)]
        )
    return torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Random stream of one item: a function of (seed, epoch, index) only, so it is the same in every
    DataLoader worker layout and reproducible across runs."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


class CollateMixin:
    """``dataset.collate(batch)``: pads with the dataset tokenizer's [PAD] id and adds ``attention_mask``."""

    tokenizer: DNATokenizer

    def collate(self, batch: list[dict]) -> dict:
        """Collate items of this dataset (see :func:`dnalm.data.collate.collate`)."""
        return collate(batch, self.tokenizer.pad_token_id)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (augmentation/sampling differ per epoch, same per seed)."""
        self.epoch = int(epoch)


class LabelledMixin:
    """``label_to_id`` and ``num_classes`` of a dataset whose labels were encoded into ``label_spec``."""

    label_spec: object  # dnalm.data.labels.LabelSpec | None

    @property
    def label_to_id(self) -> dict:
        """Class name -> id mapping of the labels (empty for numeric or unlabelled data)."""
        return self.label_spec.label_to_id if self.label_spec is not None else {}

    @property
    def num_classes(self) -> int | None:
        """Number of classes (class or multi-label tasks), else None."""
        return self.label_spec.num_classes if self.label_spec is not None else None

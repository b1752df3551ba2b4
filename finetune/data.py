"""Datasets over task splits: base ids (no special tokens) + labels, batched with [PAD] right padding.

The pooling scheme adds the special tokens (and the echo copy) inside :class:`finetune.heads.SequenceModel`,
so one dataset serves every pooling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dnalm.data.collate import collate
from dnalm.errors import InputError
from dnalm.tokenizer import PAD_ID, DNATokenizer
from finetune.tasks import TaskSplit


def encode_sequences(sequences: list[str], tokenizer: DNATokenizer | None = None, source: str = "") -> tuple[np.ndarray, np.ndarray]:
    """All sequences as one flat uint8 array of base ids plus (N + 1,) offsets.

    Raises:
        InputError: an empty sequence or an invalid character, naming the row (and ``source``).
    """
    tokenizer = tokenizer or DNATokenizer()
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    where = f"{source}: " if source else ""
    if (lengths == 0).any():
        raise InputError(f"{where}row {int(np.flatnonzero(lengths == 0)[0]) + 1}: empty sequence")
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    try:
        flat = tokenizer.encode_np("".join(sequences))
    except InputError:
        for i, s in enumerate(sequences):
            try:
                tokenizer.encode_np(s)
            except InputError as exc:
                raise InputError(f"{where}row {i + 1}: {exc}") from None
        raise
    return flat.astype(np.uint8), offsets


class TaskDataset(Dataset):
    """One split of a :class:`finetune.tasks.Task` as base ids and labels.

    Args:
        split: the split.
        kind: head kind (decides the label dtype and whether labels follow a reverse complement).
        tokenizer: a :class:`DNATokenizer` (default: a plain one).
        rc_augment: probability of reverse complementing an item (per-base labels are reversed with it),
            drawn from (seed, epoch, index) so it is reproducible in any worker layout.
        seed: seed of the augmentation.

    Items: ``{"input_ids": LongTensor (L,), "labels": tensor, "index": int}``.
    """

    def __init__(self, split: TaskSplit, kind: str, tokenizer: DNATokenizer | None = None, rc_augment: float = 0.0,
                 seed: int = 0, source: str = ""):
        self.tokenizer = tokenizer or DNATokenizer()
        self.kind = kind
        self.ids, self.offsets = encode_sequences(split.sequences, self.tokenizer, source)
        labels = np.asarray(split.labels)
        if kind in ("binary", "multiclass", "token_classification"):
            self.labels = torch.from_numpy(labels.astype(np.int64))
        else:
            self.labels = torch.from_numpy(labels.astype(np.float32))
        self.rc_augment = float(rc_augment)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def max_length(self) -> int:
        """Longest sequence (bases)."""
        return int(np.diff(self.offsets).max()) if len(self) else 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of an epoch."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        ids = torch.from_numpy(self.ids[self.offsets[index] : self.offsets[index + 1]].astype(np.int64))
        labels = self.labels[index]
        if self.rc_augment > 0:
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, index])
            if rng.random() < self.rc_augment:
                ids = torch.from_numpy(self.tokenizer.reverse_complement(ids.numpy()).copy())
                if self.kind == "token_classification":
                    n = len(ids)
                    labels = labels.clone()
                    labels[:n] = labels[:n].flip(0)
        return {"input_ids": ids, "labels": labels, "index": index}


def collate_batch(batch: list[dict]) -> dict:
    """Pad base ids with [PAD] (``input_ids`` (B, L), ``attention_mask`` (B, L)); per-base labels (integer
    labels with a length axis; class ids are scalars) are cut to the batch width (B, L)."""
    out = collate(batch, PAD_ID)
    labels = out.get("labels")
    if labels is not None and labels.dtype == torch.long and labels.dim() == 2:
        out["labels"] = labels[:, : out["input_ids"].shape[1]]
    return out

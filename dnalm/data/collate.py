"""Batching of dataset items: right-pad ``input_ids`` with [PAD] and add ``attention_mask``."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from dnalm.tokenizer import PAD_ID


def collate(batch: Sequence[dict[str, Any]], pad_token_id: int = PAD_ID) -> dict[str, Any]:
    """Collate dataset items into a batch.

    Args:
        batch: items as returned by the datasets (each a dict with a 1-D ``input_ids`` LongTensor).
        pad_token_id: id used to right-pad shorter ``input_ids`` ([PAD] = 4).

    Returns:
        ``input_ids`` LongTensor (B, L_max), ``attention_mask`` LongTensor (B, L_max) with 1 on real tokens;
        other tensor fields stacked (B, ...); numbers as a tensor (B,); strings and anything else as lists.
    """
    if not batch:
        raise ValueError("collate: empty batch")
    out: dict[str, Any] = {}
    ids = [item["input_ids"] for item in batch]
    lengths = torch.tensor([int(x.shape[0]) for x in ids], dtype=torch.long)
    if bool((lengths == lengths[0]).all()):  # the common case (fixed-length windows): one stack, no padding
        input_ids = torch.stack(ids).long()
    else:
        input_ids = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_token_id).long()
    width = input_ids.shape[1]
    out["input_ids"] = input_ids  # (B, L_max)
    out["attention_mask"] = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()  # (B, L_max)
    for key in batch[0]:
        if key in ("input_ids", "attention_mask"):
            continue
        values = [item[key] for item in batch]
        first = values[0]
        if torch.is_tensor(first):
            out[key] = torch.stack(values)
        elif isinstance(first, bool):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, numbers.Integral):
            out[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(first, numbers.Real):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = list(values)
    return out


class Collator:
    """Picklable ``collate`` bound to a pad id, for ``DataLoader(collate_fn=...)``."""

    def __init__(self, pad_token_id: int = PAD_ID):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return collate(batch, self.pad_token_id)

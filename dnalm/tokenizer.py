"""Single-nucleotide tokenizer with HyenaDNA's fixed ids, vectorised through a byte lookup table.

Ids (HyenaDNA's CharacterTokenizer, so its checkpoints load):

    [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6  A=7 C=8 G=9 T=10 N=11

[SEP] doubles as end-of-sequence, as in HyenaDNA. Condition tokens for conditional generation get ids from 12 up.
Lower case (soft-masked) maps to upper case, IUPAC ambiguity codes to N, U to T.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dnalm.errors import InputError

SPECIAL_TOKENS = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
BASES = ["A", "C", "G", "T", "N"]
CLS_ID, SEP_ID, BOS_ID, MASK_ID, PAD_ID, RESERVED_ID, UNK_ID = range(7)
A_ID, C_ID, G_ID, T_ID, N_ID = 7, 8, 9, 10, 11
NUM_BASE_TOKENS = 12
IUPAC_AMBIGUOUS = "RYSWKMBDHVN"
_INVALID = -1

# byte -> token id (or _INVALID)
_LUT = np.full(256, _INVALID, dtype=np.int64)
for _ch, _id in {"A": A_ID, "C": C_ID, "G": G_ID, "T": T_ID, "U": T_ID}.items():
    _LUT[ord(_ch)] = _id
    _LUT[ord(_ch.lower())] = _id
for _ch in IUPAC_AMBIGUOUS:
    _LUT[ord(_ch)] = N_ID
    _LUT[ord(_ch.lower())] = N_ID

# token id -> complement token id (specials and N map to themselves)
COMPLEMENT_IDS = np.arange(NUM_BASE_TOKENS, dtype=np.int64)
COMPLEMENT_IDS[[A_ID, C_ID, G_ID, T_ID]] = [T_ID, G_ID, C_ID, A_ID]

_RC_TABLE = str.maketrans("ACGTUNRYSWKMBDHVacgtunryswkmbdhv", "TGCAANYRSWMKVHDBtgcaanyrswmkvhdb")


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (case kept, IUPAC codes complemented, N stays N)."""
    return seq.translate(_RC_TABLE)[::-1]


def reverse_complement_ids(ids, attention_mask=None):
    """Reverse complement of token ids along the last axis (a torch tensor or a numpy array, any leading dims).

    Bases are complemented; N, special and condition tokens are kept. With ``attention_mask`` (right padding)
    only the first ``attention_mask.sum(-1)`` positions of each row are reversed and the padding stays in place.

    Args:
        ids: (..., L) token ids.
        attention_mask: optional (..., L), 1 on real tokens.

    Returns:
        (..., L) ids of the same type as ``ids``.
    """
    import torch

    is_tensor = torch.is_tensor(ids)
    t = ids if is_tensor else torch.as_tensor(np.asarray(ids))
    size = max(NUM_BASE_TOKENS, int(t.max()) + 1 if t.numel() else 0)
    lut = torch.arange(size, device=t.device)
    lut[:NUM_BASE_TOKENS] = torch.as_tensor(COMPLEMENT_IDS, device=t.device)
    comp = lut[t]
    if attention_mask is None:
        out = comp.flip(-1)
    else:
        mask = torch.as_tensor(attention_mask, device=t.device)
        n = mask.sum(-1, keepdim=True)  # (..., 1) real tokens per row
        ar = torch.arange(t.shape[-1], device=t.device)  # (L,)
        src = torch.where(ar < n, n - 1 - ar, ar)  # (..., L) read position of each output position
        out = comp.gather(-1, src)
    return out if is_tensor else out.numpy()


class DNATokenizer:
    """Character-level DNA tokenizer with HyenaDNA ids and optional condition tokens."""

    cls_token_id = CLS_ID
    sep_token_id = SEP_ID
    eos_token_id = SEP_ID
    bos_token_id = BOS_ID
    mask_token_id = MASK_ID
    pad_token_id = PAD_ID
    unk_token_id = UNK_ID
    base_ids = (A_ID, C_ID, G_ID, T_ID)
    n_token_id = N_ID

    def __init__(self, condition_tokens: Sequence[str] = (), lenient: bool = False):
        self.lenient = lenient
        self.condition_tokens: list[str] = []
        self.add_condition_tokens(condition_tokens)

    # ---------------------------------------------------------------- vocabulary
    @property
    def vocab(self) -> dict[str, int]:
        """Token string -> id for every token, condition tokens included."""
        tokens = SPECIAL_TOKENS + BASES + self.condition_tokens
        return {t: i for i, t in enumerate(tokens)}

    @property
    def vocab_size(self) -> int:
        return NUM_BASE_TOKENS + len(self.condition_tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def add_condition_tokens(self, names: Iterable[str]) -> list[int]:
        """Register condition tokens (e.g. ``<expr=4>``); returns their ids (>= 12). Existing names keep their id."""
        ids = []
        vocab = self.vocab
        for name in names:
            name = str(name)
            if not name:
                raise InputError("condition token names must be non-empty")
            if name in vocab:
                if name in SPECIAL_TOKENS or name in BASES:
                    raise InputError(f"condition token {name!r} clashes with a base or special token")
                ids.append(vocab[name])
                continue
            self.condition_tokens.append(name)
            vocab[name] = self.vocab_size - 1
            ids.append(vocab[name])
        return ids

    def token_to_id(self, token: str) -> int:
        try:
            return self.vocab[token]
        except KeyError:
            raise InputError(f"unknown token {token!r}") from None

    def id_to_token(self, idx: int) -> str:
        tokens = SPECIAL_TOKENS + BASES + self.condition_tokens
        if not 0 <= idx < len(tokens):
            raise InputError(f"token id {idx} is outside the vocabulary (size {len(tokens)})")
        return tokens[idx]

    # ---------------------------------------------------------------- encoding
    def encode_np(self, seq: str | bytes, lenient: bool | None = None) -> np.ndarray:
        """Encode a DNA string to an int64 array of base ids (no special tokens), vectorised.

        Raises:
            InputError: naming the first invalid character and its 0-based position (unless lenient,
                in which case it becomes [UNK]).
        """
        lenient = self.lenient if lenient is None else lenient
        raw = seq if isinstance(seq, (bytes, bytearray)) else seq.encode("latin-1", errors="replace")
        ids = _LUT[np.frombuffer(raw, dtype=np.uint8)]
        bad = ids == _INVALID
        if bad.any():
            if not lenient:
                pos = int(np.flatnonzero(bad)[0])
                ch = chr(raw[pos])
                raise InputError(
                    f"invalid character {ch!r} at position {pos} (valid: ACGTUN, IUPAC codes, lower case; "
                    "use lenient mode to map it to [UNK])"
                )
            ids = ids.copy()
            ids[bad] = UNK_ID
        return ids

    def encode(self, seq: str, add_special_tokens: bool = False, lenient: bool | None = None) -> list[int]:
        """Encode a DNA string; with ``add_special_tokens`` the result is ``[BOS] seq [EOS]``."""
        ids = self.encode_np(seq, lenient=lenient).tolist()
        if add_special_tokens:
            ids = [BOS_ID] + ids + [SEP_ID]
        return ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids (list, array or 1-D tensor) back to a string; specials dropped or written as ``[NAME]``."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        tokens = SPECIAL_TOKENS + BASES + self.condition_tokens
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(tokens):
                raise InputError(f"token id {i} is outside the vocabulary (size {len(tokens)})")
            if NUM_BASE_TOKENS - 5 <= i < NUM_BASE_TOKENS:
                out.append(tokens[i])
            elif not skip_special_tokens:
                out.append(tokens[i])
        return "".join(out)

    def batch_encode(
        self,
        seqs: Sequence[str],
        max_length: int | None = None,
        padding: bool | str = True,
        truncation: bool = False,
        add_special_tokens: bool = False,
        prefix_ids: Sequence[int] | None = None,
        lenient: bool | None = None,
    ) -> dict:
        """Encode many sequences into padded tensors.

        Args:
            seqs: DNA strings.
            max_length: total length including special tokens. With ``padding="max_length"`` every row has
                this length; with ``truncation`` longer rows are cut (the [EOS] kept).
            padding: True/"longest" pads to the longest row, "max_length" to ``max_length``, False requires
                equal lengths.
            add_special_tokens: wrap each row as ``[BOS] (prefix_ids) seq [EOS]`` (default False, as in
                :meth:`encode` and :meth:`__call__`: the ids are the bases alone unless asked).
            prefix_ids: extra ids (e.g. condition tokens) placed after [BOS].

        Returns:
            ``{"input_ids": LongTensor (B, L), "attention_mask": LongTensor (B, L)}``, right padded with [PAD].
        """
        import torch

        rows = []
        for k, s in enumerate(seqs):
            try:
                body = self.encode_np(s, lenient=lenient)
            except InputError as exc:
                raise InputError(f"sequence {k}: {exc}") from None
            head = ([BOS_ID] if add_special_tokens else []) + list(prefix_ids or [])
            tail = [SEP_ID] if add_special_tokens else []
            if max_length is not None and len(head) + len(body) + len(tail) > max_length:
                if not truncation:
                    raise InputError(
                        f"sequence {k} has {len(head) + len(body) + len(tail)} tokens, more than max_length="
                        f"{max_length} (pass truncation=True to cut it)"
                    )
                keep = max_length - len(head) - len(tail)
                if keep < 0:
                    raise InputError(f"max_length={max_length} leaves no room for the sequence")
                body = body[:keep]
            rows.append(np.concatenate([np.asarray(head, np.int64), body, np.asarray(tail, np.int64)]))
        lengths = [len(r) for r in rows]
        if padding == "max_length":
            if max_length is None:
                raise InputError("padding='max_length' needs max_length")
            width = max_length
        elif padding:
            width = max(lengths, default=0)
        else:
            if len(set(lengths)) > 1:
                raise InputError("sequences differ in length and padding=False")
            width = lengths[0] if lengths else 0
        ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    def __call__(
        self,
        seqs: str | Sequence[str],
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
        add_special_tokens: bool = False,
        return_attention_mask: bool = True,
        lenient: bool | None = None,
    ) -> dict:
        """Encode one sequence or a batch, as a Hugging Face tokenizer does.

        ``tok(seqs, padding=True, return_tensors="pt")`` gives ``{"input_ids": (B, L), "attention_mask": (B, L)}``
        (right padded with [PAD]). One string gives one row: lists without ``return_tensors``, a (1, L) batch
        with it. The special-token default is the same for one sequence and a batch, and for :meth:`encode` and
        :meth:`batch_encode`: ``add_special_tokens=False`` (bases only); True wraps each row as ``[BOS] seq [EOS]``.

        Args:
            seqs: a DNA string or a list of them.
            padding: False (rows keep their lengths; tensors then need equal lengths), True/"longest", or
                "max_length" (with ``max_length``).
            truncation / max_length: cut rows to ``max_length`` tokens (the [EOS] kept).
            return_tensors: None (Python lists), "pt" (torch) or "np" (numpy).
            add_special_tokens: wrap rows as ``[BOS] seq [EOS]``.
            return_attention_mask: include ``attention_mask``.
            lenient: map invalid characters to [UNK] instead of raising.
        """
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be None, 'pt' or 'np', not {return_tensors!r}")
        single = isinstance(seqs, (str, bytes))
        batch = [seqs] if single else list(seqs)
        if return_tensors is not None or padding:
            enc = self.batch_encode(batch, max_length=max_length, padding=padding or (len(batch) == 1),
                                    truncation=truncation, add_special_tokens=add_special_tokens, lenient=lenient)
            if return_tensors == "np":
                enc = {k: v.numpy() for k, v in enc.items()}
            elif return_tensors is None:
                enc = {k: v.tolist() for k, v in enc.items()}
                if single:
                    enc = {k: v[0] for k, v in enc.items()}
        else:
            rows = []
            for k, s in enumerate(batch):
                try:
                    ids = self.encode(s, add_special_tokens=add_special_tokens, lenient=lenient)
                except InputError as exc:
                    raise InputError(f"sequence {k}: {exc}") from None
                if max_length is not None and len(ids) > max_length:
                    if not truncation:
                        raise InputError(f"sequence {k} has {len(ids)} tokens, more than max_length={max_length} "
                                         "(pass truncation=True to cut it)")
                    ids = ids[: max_length - 1] + [SEP_ID] if add_special_tokens else ids[:max_length]
                rows.append(ids)
            enc = {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}
            if single:
                enc = {k: v[0] for k, v in enc.items()}
        if not return_attention_mask:
            enc.pop("attention_mask")
        return enc

    # ---------------------------------------------------------------- reverse complement
    def reverse_complement(self, x, attention_mask=None):
        """Reverse complement of a string, or of id tensors/arrays along the last axis.

        For ids, bases are complemented and N and special/condition tokens are kept; the order of the whole row
        is reversed. With ``attention_mask`` (right padding) only the unpadded part of each row is reversed.
        Note: a row wrapped as ``[BOS] seq [EOS]`` comes back as ``[EOS] rc [BOS]``; to keep the wrapping,
        reverse complement the sequence before adding special tokens.
        """
        if isinstance(x, str):
            return reverse_complement(x)
        return reverse_complement_ids(x, attention_mask)

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {
            "type": "DNATokenizer",
            "version": 1,
            "special_tokens": SPECIAL_TOKENS,
            "bases": BASES,
            "condition_tokens": list(self.condition_tokens),
            "lenient": self.lenient,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DNATokenizer":
        if d.get("type") != "DNATokenizer":
            raise InputError(f"not a DNATokenizer description (type={d.get('type')!r})")
        if d.get("special_tokens", SPECIAL_TOKENS) != SPECIAL_TOKENS or d.get("bases", BASES) != BASES:
            raise InputError("tokenizer file has a different base vocabulary than DNATokenizer")
        return cls(condition_tokens=d.get("condition_tokens", []), lenient=bool(d.get("lenient", False)))

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (a file path, or a directory -> ``tokenizer.json``)."""
        from dnalm.utils import atomic_write

        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DNATokenizer":
        """Read a tokenizer JSON file (or a directory holding ``tokenizer.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        from dnalm.utils import read_model_json

        return cls.from_dict(read_model_json(path))

    def __repr__(self) -> str:
        return f"DNATokenizer(vocab_size={self.vocab_size}, condition_tokens={self.condition_tokens})"

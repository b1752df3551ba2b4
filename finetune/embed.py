"""Embeddings of a sequence table or a BED file + genome, written to ``.npz`` or ``.safetensors`` for
frozen-probe protocols (BEND style)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dnalm.errors import ConfigError, InputError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")


def _is_bed(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(".bed")


def _is_fasta(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(FASTA_SUFFIXES)


def read_fasta_records(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(names, sequences) of every record of a FASTA file (plain, gzip or bgzip), read with pysam."""
    import pysam

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    names, seqs = [], []
    try:
        with pysam.FastxFile(str(path)) as fh:
            for rec in fh:
                names.append(rec.name)
                seqs.append(rec.sequence.upper())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable FASTA file ({exc})") from None
    if not seqs:
        raise InputError(f"{path}: no FASTA records")
    return names, seqs


def load_sequences(
    input: str | os.PathLike,
    fasta: str | os.PathLike | None = None,
    sequence_column: str = "sequence",
    label_columns: Sequence[str] | str | None = "auto",
    length: int | None = None,
    strand_aware: bool = True,
) -> tuple[list[str], np.ndarray | None, dict[str, np.ndarray]]:
    """Sequences (and labels) from a FASTA file, a CSV/TSV table or a BED file + genome.

    Args:
        input: FASTA (records in file order, no labels), table with a sequence column, or BED/BED-like
            intervals (needs ``fasta``).
        fasta: genome FASTA for BED input.
        sequence_column: sequence column of a table.
        label_columns: label column(s); ``"auto"`` takes ``label`` (tables) or ``label``/the single extra
            column (BED, e.g. BEND's multi-label lists); None for no labels.
        length: BED only: resize every interval to this many bp around its centre (N-padded at chromosome ends).
        strand_aware: BED only: reverse complement ``-`` strand intervals.

    Returns:
        (sequences, labels or None, extra per-row arrays: ``chrom``, ``start``, ``end``, ``strand`` for BED,
        ``name`` for FASTA).
    """
    path = Path(input)
    if _is_fasta(path):
        names, seqs = read_fasta_records(path)
        return seqs, None, {"name": np.asarray(names, dtype=str)}
    if _is_bed(path):
        from dnalm.data.intervals import IntervalDataset

        if fasta is None:
            raise ConfigError(f"{path}: a BED input needs --fasta GENOME")
        ds = IntervalDataset(path, fasta, length=length, label_columns=label_columns, strand_aware=strand_aware)
        seqs, chrom, start, end, strand = [], [], [], [], []
        for i in range(len(ds)):
            c, s, e, st = ds.window(i)
            seqs.append(ds.genome.fetch(c, s, e, strand=st, pad=True))
            chrom.append(c)
            start.append(s)
            end.append(e)
            strand.append(st)
        extra = {"chrom": np.asarray(chrom, dtype=str), "start": np.asarray(start, dtype=np.int64),
                 "end": np.asarray(end, dtype=np.int64), "strand": np.asarray(strand, dtype=str)}
        return seqs, ds.labels, extra
    from dnalm.data.tables import SequenceTable

    if label_columns == "auto":
        import pandas as pd

        from dnalm.data.tables import guess_sep

        if not path.exists():
            raise InputError(f"{path}: no such file")
        try:
            header = pd.read_csv(path, sep=guess_sep(path), nrows=0).columns
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: the table is empty (no header line, no rows)") from None
        label_columns = ["label"] if "label" in header else None
    table = SequenceTable(path, sequence_column=sequence_column, label_columns=label_columns)
    seqs = table.frame[sequence_column].astype(str).str.strip().str.upper().tolist()
    return seqs, table.labels, {}


def _check_lengths(model, seqs: list[str], extra: dict, source) -> None:
    """Refuse, before any work, a sequence longer than the model takes ([BOS] + bases + [EOS]), naming it."""
    config = getattr(model, "config", None) or getattr(getattr(model, "backbone", None), "config", None)
    limit = getattr(config, "max_length", None)
    if not limit:
        return
    longest = max(range(len(seqs)), key=lambda i: len(seqs[i]))
    if len(seqs[longest]) + 2 <= limit:
        return
    too_long = sum(len(s) + 2 > limit for s in seqs)
    if "name" in extra:
        which = f"record {extra['name'][longest]!r}"
    elif "chrom" in extra:
        which = f"interval {extra['chrom'][longest]}:{extra['start'][longest]}-{extra['end'][longest]}"
    else:
        which = f"row {longest + 1}"
    raise InputError(
        f"{source}: {which} has {len(seqs[longest]):,} bases; the model takes at most {limit - 2:,} "
        f"({too_long:,} sequence(s) too long): shorten them (--length for BED) or use a longer-context model"
    )


def embed_file(
    model,
    input: str | os.PathLike,
    out: str | os.PathLike,
    fasta: str | os.PathLike | None = None,
    pooling: str = "mean",
    per_token: bool = False,
    sequence_column: str = "sequence",
    label_columns: Sequence[str] | str | None = "auto",
    length: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    model_name: str | None = None,
) -> dict:
    """Embed every sequence of ``input`` and write ``out`` (``.npz`` or ``.safetensors``).

    The file holds ``embeddings`` — (N, d) pooled, or (N, L_max, d) per base with ``lengths`` (N,) when
    ``per_token`` (zeros past each length) — plus ``labels`` when the input has them and, for BED input,
    the fetched windows (``start``, ``end``; ``chrom`` and ``strand`` as strings in ``.npz``, in the JSON
    metadata of ``.safetensors``); for FASTA input the record names (``name``, likewise).

    Args:
        model: a model directory, a DNALM or a fine-tuned SequenceModel.
        input, fasta, sequence_column, label_columns, length: see :func:`load_sequences`.
        pooling: mean | last | echo | rc_echo.
        per_token: per-base embeddings.
        batch_size: sequences per forward pass.
        model_name: how the model is named in the file's metadata (default ``str(model)``).

    Returns:
        A summary dict (rows, shape, file).
    """
    from finetune.heads import load_backbone
    from finetune.probes import embed_sequences

    out = Path(out)
    suffix = out.name.lower()
    if not suffix.endswith((".npz", ".safetensors")):
        raise ConfigError(f"--out {out}: the file name must end in .npz or .safetensors")
    seqs, labels, extra = load_sequences(input, fasta, sequence_column, label_columns, length)
    if not seqs:
        raise InputError(f"{input}: no sequences")
    m = load_backbone(model)
    _check_lengths(m, seqs, extra, input)
    emb = embed_sequences(m, seqs, pooling, per_token, batch_size, progress)
    arrays: dict[str, np.ndarray] = {}
    if per_token:
        lengths = np.asarray([len(e) for e in emb], dtype=np.int64)
        full = np.zeros((len(emb), int(lengths.max()), emb[0].shape[1]), dtype=np.float32)
        for i, e in enumerate(emb):
            full[i, : len(e)] = e
        arrays["embeddings"] = full
        arrays["lengths"] = lengths
    else:
        arrays["embeddings"] = np.asarray(emb, dtype=np.float32)
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    from dnalm.utils import atomic_path

    meta = {"input": str(input), "pooling": pooling, "per_token": per_token, "model": model_name or str(model), "rows": len(seqs)}
    if suffix.endswith(".npz"):
        arrays.update(extra)
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays, meta=np.asarray(json.dumps(meta)))
    else:
        from safetensors.numpy import save_file

        for k in ("start", "end"):
            if k in extra:
                arrays[k] = extra[k]
        for k in ("chrom", "strand", "name"):
            if k in extra:
                meta[k] = extra[k].tolist()
        with atomic_path(out) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
                      metadata={"dnalm": json.dumps(meta)})
    return {"rows": len(seqs), "shape": list(arrays["embeddings"].shape), "file": str(out)}

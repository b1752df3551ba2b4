"""Embeddings of sequences (FASTA, a table, or a BED file + genome) written to ``.npz`` or ``.safetensors`` for
frozen-probe protocols (BEND style), by region and shard, and the gather of embedding shards into one file."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dnalm.data.sequences import load_sequences, read_sequence_input, select
from dnalm.errors import ConfigError, InputError

__all__ = ["embed_file", "load_sequences", "merge_embeddings"]

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
    regions: Sequence[str] = (),
    shard: tuple[int, int] | str | None = None,
) -> dict:
    """Embed every sequence of ``input`` (or those of ``regions`` / ``shard``) and write ``out``.

    The file holds ``embeddings`` — (N, d) pooled, or (N, L_max, d) per base with ``lengths`` (N,) when
    ``per_token`` (zeros past each length) — plus ``record`` (N,), each row's 0-based record number in the input,
    ``labels`` when the input has them and, for BED input, the fetched windows (``start``, ``end``; ``chrom`` and
    ``strand`` as strings in ``.npz``, in the JSON metadata of ``.safetensors``); for FASTA input the record names
    (``name``, likewise).

    Args:
        model: a model directory, a DNALM or a fine-tuned SequenceModel.
        input, fasta, sequence_column, label_columns, length: see :func:`dnalm.data.sequences.read_sequence_input`.
        pooling: mean | last | echo | rc_echo.
        per_token: per-base embeddings.
        batch_size: sequences per forward pass.
        model_name: how the model is named in the file's metadata (default ``str(model)``).
        regions, shard: ``--region`` values and ``--shard I/N`` (:func:`dnalm.data.sequences.select`); the N
            shards gathered by :func:`merge_embeddings` equal the unsharded file.

    Returns:
        A summary dict (rows, shape, file).
    """
    from finetune.heads import load_backbone
    from finetune.probes import embed_sequences

    out = Path(out)
    suffix = out.name.lower()
    if not suffix.endswith((".npz", ".safetensors")):
        raise ConfigError(f"--out {out}: the file name must end in .npz or .safetensors")
    records = read_sequence_input(input, fasta, sequence_column, label_columns, length)
    if not len(records):
        raise InputError(f"{input}: no sequences")
    records = select(records, regions, shard, genome=fasta)
    if not len(records):
        raise InputError(f"{input}: no sequences in the selected regions/shard")
    seqs, labels, extra = records.sequences, records.labels, records.extra
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
    arrays["record"] = records.record
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    from dnalm.utils import atomic_path

    meta = {"input": str(input), "pooling": pooling, "per_token": per_token, "model": model_name or str(model),
            "rows": len(seqs)}
    if regions or shard:
        meta["selection"] = {"regions": [str(r) for r in regions], "shard": list(shard) if shard else None}
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


def _read_embedding_file(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, metadata) of a file written by :func:`embed_file`."""
    if not path.is_file():
        raise InputError(f"{path}: embedding shard not found")
    try:
        if path.name.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
        else:
            from safetensors import safe_open
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
            with safe_open(str(path), framework="numpy") as fh:
                meta = json.loads((fh.metadata() or {})["dnalm"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not an embedding file of dnalm embed ({exc})") from None
    if "embeddings" not in arrays or "record" not in arrays:
        raise InputError(f"{path}: not an embedding file of dnalm embed (no 'embeddings'/'record' arrays)")
    return arrays, meta


def merge_embeddings(shards: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Gather the shard files of ``embed --shard I/N`` (given in shard order) into the file one process writes.

    Rows are concatenated in shard order (per-base embeddings zero-padded to the longest); the shards must be
    1/N .. N/N of one run (same input, model, pooling, regions), so the records come out once each and in input
    order. ``out`` is ``.npz`` or ``.safetensors`` like the shards.
    """
    from dnalm.utils import atomic_path

    out = Path(out)
    paths = [Path(s) for s in shards]
    if not paths:
        raise InputError("merge: no shard files given")
    kinds = {p.name.lower().endswith(".npz") for p in paths} | {out.name.lower().endswith(".npz")}
    if len(kinds) > 1:
        raise InputError(f"{out}: shards and output must all be .npz or all .safetensors")
    parts = [_read_embedding_file(p) for p in paths]
    first_meta = parts[0][1]
    n = len(paths)
    for k, (p, (arrays, meta)) in enumerate(zip(paths, parts), 1):
        shard = (meta.get("selection") or {}).get("shard")
        if (n > 1 or shard is not None) and shard != [k, n]:
            what = f"shard {shard[0]}/{shard[1]}" if shard else "not a shard (written without --shard)"
            raise InputError(f"{p}: is {what}, expected shard {k}/{n}: give all N shards in order 1/N .. N/N")
        same = {key: v for key, v in meta.items() if key not in ("rows", "selection", "chrom", "strand", "name")}
        want = {key: v for key, v in first_meta.items() if key not in ("rows", "selection", "chrom", "strand", "name")}
        regions = (meta.get("selection") or {}).get("regions")
        if same != want or regions != (first_meta.get("selection") or {}).get("regions"):
            raise InputError(f"{p}: written by another run than {paths[0]} (input, model, pooling or regions differ)")
        if set(arrays) != set(parts[0][0]):
            raise InputError(f"{p}: holds arrays {sorted(arrays)}, {paths[0]} holds {sorted(parts[0][0])}")
    merged: dict[str, np.ndarray] = {}
    for key in parts[0][0]:
        pieces = [a[key] for a, _ in parts]
        if key == "embeddings" and pieces[0].ndim == 3:  # per base: pad to the longest shard
            L = max(x.shape[1] for x in pieces)
            pieces = [np.pad(x, ((0, 0), (0, L - x.shape[1]), (0, 0))) for x in pieces]
        merged[key] = np.concatenate(pieces)
    record = merged["record"]
    if len(record) > 1 and not np.all(np.diff(record) > 0):
        raise InputError(f"{out}: the shards' records are not in input order or overlap (give them 1/N .. N/N)")
    meta = {key: v for key, v in first_meta.items() if key != "selection"}
    meta["rows"] = len(record)
    regions = (first_meta.get("selection") or {}).get("regions")
    if regions:
        meta["selection"] = {"regions": regions, "shard": None}
    for key in ("chrom", "strand", "name"):  # safetensors keeps string columns in its metadata
        if key in first_meta:
            meta[key] = [x for _, m in parts for x in m[key]]
    if out.name.lower().endswith(".npz"):
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **merged, meta=np.asarray(json.dumps(meta)))
    else:
        from safetensors.numpy import save_file

        with atomic_path(out) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in merged.items()}, str(tmp),
                      metadata={"dnalm": json.dumps(meta)})
    return out

"""Predictions of a fine-tuned head on new sequences (FASTA, CSV/TSV, or BED intervals + a genome) as a TSV, and
for per-base heads as a bedGraph or bigWig track.

Track value of a per-base head: the probability that a base is not class 0 (``1 - p(class 0)``; for a two-class
head, the probability of class 1). Coordinates: BED input gives genome coordinates (a ``-`` strand interval's
values are put back on the + strand bases); FASTA and table rows are placed on a contig named after the record
(FASTA name, or ``row<N>``) from 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dnalm.errors import ConfigError, InputError

TRACK_SUFFIXES = (".bedgraph", ".bw", ".bigwig")


def _out_format(out: Path) -> str:
    name = out.name.lower()
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".bedgraph"):
        return "bedgraph"
    if name.endswith((".bw", ".bigwig")):
        return "bigwig"
    raise ConfigError(f"--out {out}: the file name must end in .tsv, .bedGraph, .bw or .bigwig")


@torch.no_grad()
def predict_sequences(model, sequences: list[str], batch_size: int = 64, progress: bool = True) -> list[np.ndarray]:
    """Scores of a fine-tuned :class:`finetune.heads.SequenceModel` for each sequence, in input order.

    Returns:
        One array per sequence: () binary probability, (C,) class/label probabilities or (k,) regression values,
        or (L_i, C) per-base class probabilities.
    """
    from tqdm.auto import tqdm

    tok = model.tokenizer
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in sequences], kind="stable")  # batches of similar length pad little
    out: list[np.ndarray] = [None] * len(sequences)  # type: ignore[list-item]
    model.eval()
    for i in tqdm(range(0, len(order), batch_size), desc="predict", disable=not progress, leave=False):
        idx = order[i : i + batch_size]
        enc = tok.batch_encode([sequences[j] for j in idx], padding=True)
        scores = model.predict(enc["input_ids"].to(device), enc["attention_mask"].to(device)).float().cpu().numpy()
        for k, j in enumerate(idx):
            out[j] = scores[k][: len(sequences[j])] if model.per_token else scores[k]
    return out


def _row_table(model, scores: list[np.ndarray], extra: dict, n: int) -> pd.DataFrame:
    cfg = model.config
    df = pd.DataFrame({k: v for k, v in extra.items()}) if extra else pd.DataFrame({"row": np.arange(1, n + 1)})
    classes = [str(c) for c in cfg.classes] or [str(j) for j in range(cfg.num_outputs)]
    if cfg.kind == "binary":
        df["score"] = np.asarray(scores, dtype=np.float64)
        df["prediction"] = (df["score"] > 0.5).astype(int)
    elif cfg.kind == "multiclass":
        p = np.stack(scores)
        df["prediction"] = [classes[j] for j in p.argmax(-1)]
        for j in range(p.shape[1]):
            df[f"p_{classes[j]}"] = p[:, j]
    elif cfg.kind == "multilabel":
        p = np.stack(scores)
        for j in range(p.shape[1]):
            df[f"p_{classes[j]}"] = p[:, j]
    elif cfg.kind == "regression":
        p = np.stack([np.atleast_1d(s) for s in scores])
        for j in range(p.shape[1]):
            df["prediction" if p.shape[1] == 1 else f"prediction_{j}"] = p[:, j]
    else:  # token_classification: the predicted class of every base, and the track value's mean
        df["predicted"] = [",".join(map(str, s.argmax(-1))) for s in scores]
        df["mean_not_class0"] = [float((1 - s[:, 0]).mean()) for s in scores]
    return df


def _track(scores: list[np.ndarray], extra: dict) -> list[tuple[str, int, np.ndarray]]:
    """(contig, start, per-base values on the + strand) of every row."""
    rows = []
    for i, s in enumerate(scores):
        values = 1.0 - s[:, 0]
        if "chrom" in extra:
            chrom, start = str(extra["chrom"][i]), int(extra["start"][i])
            if str(extra["strand"][i]) == "-":
                values = values[::-1]
        else:
            chrom, start = (str(extra["name"][i]) if "name" in extra else f"row{i + 1}"), 0
        rows.append((chrom, start, values))
    return rows


def predict_file(
    model,
    input: str | os.PathLike,
    out: str | os.PathLike,
    fasta: str | os.PathLike | None = None,
    sequence_column: str = "sequence",
    length: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Predict every sequence of ``input`` with a fine-tuned model and write ``out``.

    Args:
        model: a :class:`finetune.heads.SequenceModel` (``SequenceModel.load(folder)``).
        input, fasta, sequence_column, length: see :func:`dnalm.data.sequences.read_sequence_input`.
        out: ``.tsv`` (one row per sequence: its name or coordinates, then the predictions), or for a per-base
            head ``.bedGraph`` / ``.bw`` (bigWig, needs pyBigWig) with the per-base track.
        batch_size: sequences per forward pass.

    Returns:
        A summary dict (rows, file, format).
    """
    from dnalm.data.sequences import load_sequences
    from dnalm.utils import atomic_path, atomic_write

    out = Path(out)
    fmt = _out_format(out)
    if fmt != "tsv" and not model.per_token:
        raise ConfigError(f"--out {out}: a {model.config.kind} head gives one value per sequence; write .tsv")
    seqs, _, extra = load_sequences(input, fasta, sequence_column, None, length)
    if not seqs:
        raise InputError(f"{input}: no sequences")
    scores = predict_sequences(model, seqs, batch_size, progress)
    if fmt == "tsv":
        with atomic_write(out) as fh:
            _row_table(model, scores, extra, len(seqs)).to_csv(fh, sep="\t", index=False, float_format="%.6g")
    elif fmt == "bedgraph":
        with atomic_write(out) as fh:
            fh.write(f'track type=bedGraph name="{out.stem}" description="1 - p(class 0) per base"\n')
            for chrom, start, values in sorted(_track(scores, extra), key=lambda r: (r[0], r[1])):
                for k, v in enumerate(values):
                    fh.write(f"{chrom}\t{start + k}\t{start + k + 1}\t{v:.6g}\n")
    else:
        try:
            import pyBigWig
        except ImportError:
            raise ConfigError("bigWig output needs pyBigWig (pip install pyBigWig); or write .bedGraph") from None
        rows = sorted(_track(scores, extra), key=lambda r: (r[0], r[1]))
        sizes: dict[str, int] = {}
        if fasta is not None:
            from dnalm.io.genome import Genome

            sizes = dict(Genome(fasta).chrom_sizes)
        for chrom, start, values in rows:
            sizes[chrom] = max(sizes.get(chrom, 0), start + len(values))
        with atomic_path(out) as tmp:
            bw = pyBigWig.open(str(tmp), "w")
            bw.addHeader(sorted(sizes.items()))
            for chrom, start, values in rows:
                bw.addEntries(chrom, start, values=[float(v) for v in values], span=1, step=1)
            bw.close()
    return {"rows": len(seqs), "file": str(out), "format": fmt}

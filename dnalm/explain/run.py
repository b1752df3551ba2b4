"""File-level entry points of ``dnalm attribute`` and ``dnalm motifs``: read inputs, run, write outputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dnalm.errors import InputError


def check_out_dir(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing non-empty output folder unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: output folder exists and is not empty (use --overwrite to replace its files)")
    return out


def read_sequence_records(path: str | os.PathLike, fasta: str | os.PathLike | None = None,
                          sequence_column: str = "sequence", length: int | None = None, label: str | None = None,
                          max_sequences: int | None = None, regions: Sequence[str] = (),
                          shard: tuple[int, int] | None = None):
    """The sequences to attribute, through the one reader (:func:`dnalm.data.sequences.read_sequence_input`).

    Args:
        path: FASTA (gzip ok), a table with ``sequence_column`` (CSV/TSV), or a BED file (needs ``fasta``).
        fasta: genome for BED input.
        sequence_column: the table's sequence column.
        length: BED: resize regions to this many bp around their centre.
        label: tables: keep rows whose ``label`` column equals this (as text).
        max_sequences: keep the first N (after ``label``).
        regions, shard: ``--region`` / ``--shard I/N`` (:func:`dnalm.data.sequences.select`), applied last.

    Returns:
        A :class:`dnalm.data.sequences.SequenceInput` (sequences upper-cased, names, coords for BED, input record
        numbers).
    """
    from dnalm.data.sequences import read_sequence_input, select

    records = read_sequence_input(path, fasta, sequence_column, label_columns=None, length=length)
    keep = np.arange(len(records))
    if label is not None:
        rows = records.rows
        if rows is None or "label" not in rows.columns:
            cols = [] if rows is None else list(rows.columns)
            raise InputError(f"{path}: --label needs a 'label' column; columns are {cols}")
        keep = np.flatnonzero(rows["label"].astype(str).str.strip().to_numpy() == str(label))
    if max_sequences:
        keep = keep[:max_sequences]
    records = select(records.take(keep), regions, shard, genome=fasta)
    if not len(records):
        raise InputError(f"{path}: no sequences")
    bad = next(((i, s) for i, s in enumerate(records.sequences) if not s or set(s) - set("ACGTN")), None)
    if bad is not None:
        i, s = bad
        raise InputError(f"{path}: sequence {records.names[i]!r} is empty or has letters other than ACGTN "
                         f"({sorted(set(s) - set('ACGTN'))[:5]})")
    return records


def read_sequences(path: str | os.PathLike, fasta: str | os.PathLike | None = None, sequence_column: str = "sequence",
                   length: int | None = None, label: str | None = None, max_sequences: int | None = None
                   ) -> tuple[list[str], list[str], dict[str, np.ndarray] | None]:
    """(sequences, names, coords or None) of :func:`read_sequence_records` (coords: ``chrom``, ``start``, ``end``,
    ``strand`` of BED input)."""
    r = read_sequence_records(path, fasta, sequence_column, length, label, max_sequences)
    return r.sequences, r.names, r.coords


def make_target(model, output: int = 0, position: int | None = None, region: tuple[int, int | None] = (0, None)):
    """The attribution target of a loaded model: its head's output (a fine-tuned model with ``forward_onehot``)
    or, for a language model, the log-likelihood of ``region``. Returns (target module, description)."""
    from dnalm.explain.targets import HeadTarget, LogLikelihoodTarget

    if hasattr(model, "forward_onehot"):
        cfg = getattr(model, "config", None)
        kind = getattr(cfg, "kind", "head")
        where = f" at position {position}" if position is not None else ""
        return HeadTarget(model, output=output, position=position), f"{kind} head output {output}{where} (logit scale)"
    start, end = region
    return LogLikelihoodTarget(model, start, end), f"log-likelihood of bases [{start}, {end if end is not None else 'end'})"


def attribute_sequences(target, sequences: Sequence[str], names: Sequence[str], out_dir: str | os.PathLike,
                        coords: dict | None = None, method: str = "ig", baseline: str = "dinucleotide",
                        n_shuffles: int = 8, steps: int = 32, batch_size: int = 32, seed: int = 0, top: int = 10,
                        device: str = "cpu", progress: bool = True, meta: dict | None = None,
                        record: np.ndarray | None = None) -> dict:
    """One-hot encode, attribute and write (see :func:`dnalm.explain.files.write_attributions`).

    ``record``: the sequences' input record numbers (a shard's); shuffled baselines follow them, so the shards of
    an input give the attributions of the whole input.
    """
    from dnalm.explain.attribution import attribute
    from dnalm.explain.files import write_attributions
    from dnalm.explain.onehot import one_hot

    x, mask = one_hot(list(sequences))
    attr = attribute(target, x, mask, method=method, baseline=baseline, n_shuffles=n_shuffles, steps=steps,
                     batch_size=batch_size, seed=seed, device=device, progress=progress, index=record)
    return write_attributions(attr, x, mask, list(names), out_dir, coords=coords, top=top, record=record,
                              meta={**(meta or {}), "seed": seed,
                                    **({"baseline": baseline} if method in ("ig", "deeplift") else {})})


def scan_to_file(out: str | os.PathLike, motifs_path: str | os.PathLike, input: str | None = None, fasta: str | None = None,
                 attributions: str | None = None, sequence_column: str = "sequence", tax_group: str | None = None,
                 pvalue: float = 1e-4, overwrite: bool = False) -> int:
    """Scan sequences (or an attribution set's sequences, with attribution per hit) and write the hits TSV."""
    from dnalm.explain.motifs import read_motifs, scan
    from dnalm.utils import atomic_write

    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: exists (use --overwrite to replace it)")
    motifs = read_motifs(motifs_path, tax_group=tax_group)
    if attributions is not None:
        from dnalm.explain.files import read_attributions

        a = read_attributions(attributions)
        df = scan(a["x"], motifs, pvalue=pvalue, names=list(a["names"]), contributions=a["contributions"], mask=a["mask"])
    else:
        seqs, names, _ = read_sequences(input, fasta=fasta, sequence_column=sequence_column)
        df = scan(seqs, motifs, pvalue=pvalue, names=names)
    with atomic_write(out) as fh:
        df.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    return len(df)


def discover_to_files(attributions: str | os.PathLike, motifs_path: str | os.PathLike | None, out_dir: str | os.PathLike,
                      tax_group: str | None = None, q_threshold: float = 0.05, overwrite: bool = False, **kwargs) -> dict:
    """TF-MoDISco on an attribution set, matched to a database (if ``motifs_path``): ``report.md``, ``patterns.tsv``,
    ``patterns.png``, ``patterns.meme`` (when a pattern was found)."""
    from dnalm.explain.discover import discover, write_report
    from dnalm.explain.files import read_attributions
    from dnalm.explain.motifs import motif_set, read_motifs, write_meme

    out = check_out_dir(out_dir, overwrite)
    a = read_attributions(attributions)
    motifs = read_motifs(motifs_path, tax_group=tax_group) if motifs_path else None
    patterns = discover(a["x"], a["hypothetical"], motifs, **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    note = (f"TF-MoDISco on {len(a['x']):,} sequences of {Path(attributions)}; "
            f"{sum(p.n_seqlets for p in patterns):,} seqlets in {len(patterns)} pattern(s).")
    report = write_report(patterns, motifs, out, q_threshold=q_threshold, note=note)
    if patterns:
        write_meme(motif_set({p.name: np.clip(p.ppm, 0, None) for p in patterns}), out / "patterns.meme")
    sig = sum(1 for p in patterns if p.matches and p.matches[0]["q_value"] < q_threshold)
    return {"report": str(report), "n_patterns": len(patterns), "n_significant": sig,
            "patterns": patterns}

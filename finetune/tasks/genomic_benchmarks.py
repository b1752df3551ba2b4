"""GenomicBenchmarks tasks: ``train|test/<class>.csv.gz`` intervals + reference genome(s) -> sequences.

Intervals that cannot be resolved to a sequence (unknown chromosome, outside the FASTA, no genome for the
class) are never dropped silently: :attr:`Task.skipped` lists each with its file, line and reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from dnalm.data.fetch import fetch_intervals
from dnalm.errors import ConfigError, InputError
from finetune.tasks.base import Task, TaskSplit, carve_split, task_metric
from finetune.tasks.spec import TaskSpec, parse_genome, parse_task_spec


# --------------------------------------------------------------------------------------------- GenomicBenchmarks
def _gb_class_files(folder: Path, split: str) -> dict[str, Path]:
    d = folder / split
    if not d.is_dir():
        raise InputError(f"{folder}: no {split}/ folder (a GenomicBenchmarks data set has train/ and test/)")
    files = {}
    for p in sorted(d.iterdir()):
        m = re.match(r"^(.+?)\.csv(\.gz)?$", p.name)
        if m:
            files[m.group(1)] = p
    if not files:
        raise InputError(f"{d}: no <class>.csv(.gz) files")
    return files


def load_genomic_benchmark(spec: TaskSpec | str) -> Task:
    """A GenomicBenchmarks data set folder (``train/<class>.csv.gz``, ``test/<class>.csv.gz`` with
    ``id,region,start,end,strand``; the class is the file name) + reference genome(s) -> sequences.

    ``genome`` is one FASTA for every class or ``{class: FASTA}``; intervals that do not lie inside their
    class's FASTA are skipped *and reported* in :attr:`Task.skipped`. Strand ``-`` rows are reverse
    complemented. Class ids follow the sorted class names. GenomicBenchmarks has no dev split: it is carved
    from train (``dev_fraction``, stratified, seeded). Metric: accuracy.
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"gb:{spec}")
    folder = spec.resolve_path(spec.path)
    if not folder.is_dir():
        raise InputError(f"{folder}: GenomicBenchmarks data set folder not found")
    files = {s: _gb_class_files(folder, s) for s in ("train", "test")}
    classes = sorted(files["train"])
    if sorted(files["test"]) != classes:
        raise InputError(f"{folder}: train/ has classes {classes} but test/ has {sorted(files['test'])}")
    if spec.classes:
        if sorted(map(str, spec.classes)) != classes:
            raise ConfigError(f"{folder}: classes={spec.classes} but the data set has {classes}")
        classes = [str(c) for c in spec.classes]
    if len(classes) < 2:
        raise InputError(f"{folder}: only one class ({classes}); a classifier needs at least 2")
    if isinstance(spec.genome, dict):
        unknown = sorted(set(spec.genome) - set(classes))
        if unknown:
            raise ConfigError(f"{folder}: genome given for unknown class(es) {unknown}; classes are {classes}")
        genomes = {c: parse_genome(spec.genome[c], spec) if spec.genome.get(c) else None for c in classes}
    elif spec.genome:
        g = parse_genome(spec.genome, spec)
        genomes = {c: g for c in classes}
    else:
        genomes = {c: None for c in classes}
    splits, skipped_all = {}, []
    for split in ("train", "test"):
        seqs, labels, metas = [], [], []
        for cid, cls in enumerate(classes):
            path = files[split][cls]
            try:
                df = pd.read_csv(path, dtype={"region": str, "id": str})
            except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
                raise InputError(f"{path}: cannot read as CSV ({exc})") from None
            missing = [c for c in ("region", "start", "end") if c not in df.columns]
            if missing:
                raise InputError(f"{path}: missing column(s) {missing}; expected id,region,start,end,strand")
            df = df.rename(columns={"region": "chrom"})
            df["line"] = np.arange(2, len(df) + 2)
            for col in ("start", "end"):
                bad = pd.to_numeric(df[col], errors="coerce").isna().to_numpy()
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InputError(f"{path}: line {i + 2}: {col} {df[col].iloc[i]!r} is not an integer")
            if "strand" in df.columns:
                bad = ~df["strand"].astype(str).isin(["+", "-", "."])
                if bad.any():
                    i = int(np.flatnonzero(bad.to_numpy())[0])
                    raise InputError(f"{path}: line {i + 2}: strand {df['strand'].iloc[i]!r} is not +, - or .")
            s, kept, meta, skipped = fetch_intervals(
                df, genomes[cls], split, str(path), spec.strand_aware, spec.length,
                no_genome_reason=f"no genome: none given for class {cls!r}",
            )
            seqs += s
            labels.append(np.full(len(s), cid, dtype=np.int64))
            meta["class"] = cls
            metas.append(meta)
            skipped_all.append(skipped)
        splits[split] = TaskSplit(seqs, np.concatenate(labels), pd.concat(metas, ignore_index=True))
    skipped = pd.concat(skipped_all, ignore_index=True)
    name = spec.name or folder.name
    for split in ("train", "test"):
        if len(splits[split]) == 0:
            raise InputError(
                f"{folder}: none of the {split} intervals could be resolved to a sequence "
                f"({len(skipped[skipped['split'] == split]):,} skipped; first reason: "
                f"{skipped[skipped['split'] == split]['reason'].iloc[0] if len(skipped) else 'none'}); "
                "give genome=FASTA or genome.CLASS=FASTA"
            )
    kind = "binary" if len(classes) == 2 else "multiclass"
    kept, carved = carve_split(splits["train"].labels, spec.dev_fraction, spec.seed, kind)
    notes = [(f"GenomicBenchmarks has no dev split: dev carved from train ({spec.dev_fraction:.0%}, stratified, "
              f"seed {spec.seed})")]
    if len(skipped):
        notes.append(f"{len(skipped):,} interval(s) not inside the given genome(s) were skipped (see skipped)")
    return Task(
        name=name, kind=kind, num_outputs=1 if kind == "binary" else len(classes),
        metric=task_metric(spec, kind, "accuracy"), train=splits["train"].take(kept), dev=splits["train"].take(carved),
        test=splits["test"], classes=classes, source=str(folder), notes=notes, skipped=skipped,
    )

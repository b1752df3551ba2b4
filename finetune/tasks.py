"""Task registry: GUE folders, GenomicBenchmarks data sets, BEND-style BED files, per-nucleotide label tracks
and any CSV/TSV, each loaded into a :class:`Task` with train/dev/test splits and its metric.

TASK SPEC (``dnalm finetune --task SPEC``)::

    [TYPE:]PATH[?KEY=VALUE&KEY=VALUE...]      or      FILE.yaml (the same keys as a mapping)

TYPE is ``gue``, ``gb`` (= ``genomic-benchmarks``), ``bed`` (= ``bend``), ``csv`` or ``tokens``; without it
the type is guessed from PATH (a folder with ``test.csv`` -> gue, a folder with ``metadata.yaml`` or
``train/*.csv.gz`` -> gb, ``*.bed[.gz]`` -> bed, ``*.csv``/``*.tsv`` -> csv). KEYs are the fields of
:class:`TaskSpec` (``sequence=seq&label=y&metric=spearman``). A CSV PATH may contain ``{split}``
(``data/{split}.tsv`` reads train/dev/test files). A genome is ``FASTA`` or, for a FASTA that holds a slice of
a chromosome, ``FASTA@CHROM:OFFSET[,CHROM:OFFSET]`` (the record CHROM starts at OFFSET of the real
chromosome); per-class genomes of a GenomicBenchmarks data set are ``genome.CLASS=FASTA`` (or a ``genome:``
mapping in YAML). Relative paths in a YAML spec are relative to the YAML file.

Intervals that cannot be resolved to a sequence (unknown chromosome, outside the FASTA, no genome for the
class) are never dropped silently: :attr:`Task.skipped` lists each with its file, line and reason, and
:meth:`Task.report` summarises them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnalm.errors import ConfigError, InputError
from finetune.metrics import DEFAULT_METRIC, METRICS

SPLITS = ("train", "dev", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "dev": "dev", "valid": "dev", "val": "dev",
                "validation": "dev", "test": "test", "testing": "test"}
TASK_TYPES = {"gue": "gue", "gb": "gb", "genomic-benchmarks": "gb", "genomic_benchmarks": "gb", "bed": "bed",
              "bend": "bed", "csv": "csv", "tsv": "csv", "table": "csv", "tokens": "tokens"}
SKIP_COLUMNS = ["split", "source", "line", "id", "reason"]


# --------------------------------------------------------------------------------------------- data classes
@dataclass
class TaskSplit:
    """Sequences and labels of one split.

    ``labels`` is (N,) int64 class ids (binary/multiclass), (N,) or (N, k) float32 targets (regression),
    (N, C) float32 multi-hot (multilabel) or (N, L_max) int64 per-base class ids with -100 past each
    sequence's end (token_classification). ``meta`` has one row per sequence (source file, line, id,
    interval...).
    """

    sequences: list[str]
    labels: np.ndarray
    meta: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    def take(self, index: np.ndarray) -> TaskSplit:
        """The rows ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        meta = self.meta.iloc[index].reset_index(drop=True) if self.meta is not None else None
        return TaskSplit([self.sequences[i] for i in index], self.labels[index], meta)


@dataclass
class Task:
    """A supervised task: three splits, a head kind, its metric and a record of skipped input rows."""

    name: str
    kind: str  # binary | multiclass | multilabel | regression | token_classification
    num_outputs: int  # head outputs (1 for binary)
    metric: str  # headline metric (mcc, accuracy, auroc, spearman, ...)
    train: TaskSplit
    dev: TaskSplit
    test: TaskSplit
    classes: list = field(default_factory=list)  # class names in id order
    source: str = ""
    notes: list[str] = field(default_factory=list)  # how the splits were made (carved dev, subsampling, ...)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIP_COLUMNS))

    def split(self, name: str) -> TaskSplit:
        """The split ``train``, ``dev`` or ``test``."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    def report(self, max_examples: int = 5) -> str:
        """A few lines: sizes, kind, metric, notes and the skipped rows (count per reason + examples)."""
        sizes = ", ".join(f"{s} {n:,}" for s, n in self.sizes().items())
        lines = [f"task {self.name}: {self.kind}, {self.num_outputs} output(s), metric {self.metric}; {sizes}"]
        lines += [f"  note: {n}" for n in self.notes]
        if len(self.skipped):
            lines.append(f"  skipped {len(self.skipped):,} input row(s) that could not be resolved to a sequence:")
            for reason, group in self.skipped.groupby(self.skipped["reason"].map(_reason_key), sort=False):
                lines.append(f"    {len(group):,} x {reason}")
            for _, row in self.skipped.head(max_examples).iterrows():
                lines.append(f"    e.g. {row['source']}: line {row['line']} (id {row['id']}): {row['reason']}")
        return "\n".join(lines)

    def subsample(self, max_rows: dict[str, int | None], seed: int = 0) -> Task:
        """A copy with at most ``max_rows[split]`` rows per split (stratified by class, seeded); adds a note."""
        out = dataclasses.replace(self, notes=list(self.notes))
        for name, limit in (max_rows or {}).items():
            if limit is None or limit <= 0:
                continue
            split = self.split(name)
            if len(split) <= limit:
                continue
            idx = subsample_indices(split.labels, int(limit), seed, self.kind)
            setattr(out, name, split.take(idx))
            out.notes.append(f"{name} subsampled to {len(idx):,} of {len(split):,} rows (stratified, seed {seed})")
        return out


def _reason_key(reason: str) -> str:
    """Group key of a skip reason: the text before its first colon (``unknown chromosome``, ``outside the
    genome``, ``no genome``, ``empty interval``)."""
    return reason.split(":", 1)[0]


def subsample_indices(labels: np.ndarray, n: int, seed: int, kind: str = "binary") -> np.ndarray:
    """``n`` row indices drawn without replacement, proportionally per class for single-label classification
    (each class keeps at least one row where possible), uniformly otherwise; sorted."""
    rng = np.random.default_rng(seed)
    N = len(labels)
    if n >= N:
        return np.arange(N)
    if kind in ("binary", "multiclass") and labels.ndim == 1:
        classes, inverse = np.unique(labels, return_inverse=True)
        chosen = []
        quota = np.maximum(1, np.floor(np.bincount(inverse) * n / N)).astype(int)
        while quota.sum() > n:  # rounding up the tiny classes may overshoot
            quota[quota.argmax()] -= 1
        rest = n - quota.sum()
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            chosen.append(rng.choice(members, size=min(quota[c], len(members)), replace=False))
        chosen = np.concatenate(chosen)
        if rest > 0:
            left = np.setdiff1d(np.arange(N), chosen)
            chosen = np.concatenate([chosen, rng.choice(left, size=rest, replace=False)])
        return np.sort(chosen)
    return np.sort(rng.choice(N, size=n, replace=False))


def carve_split(labels: np.ndarray, fraction: float, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into (kept, carved) indices, carving ``fraction`` of each class (seeded, stratified for
    single-label classification)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the fraction carved for a missing split must be in (0, 1), got {fraction}")
    N = len(labels)
    rng = np.random.default_rng(seed)
    if kind in ("binary", "multiclass") and labels.ndim == 1:
        carved = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            k = round(fraction * len(members))
            carved.append(rng.choice(members, size=k, replace=False))
        carved = np.sort(np.concatenate(carved)) if carved else np.zeros(0, np.int64)
    else:
        carved = np.sort(rng.choice(N, size=round(fraction * N), replace=False))
    kept = np.setdiff1d(np.arange(N), carved)
    return kept, carved


# --------------------------------------------------------------------------------------------- specification
@dataclass
class TaskSpec:
    """How to load one task (the keys of a TASK SPEC; see the module docstring)."""

    type: str = ""  # gue | gb | bed | csv | tokens ("" = guess from path)
    path: str = ""  # folder or file; a csv path may contain {split}
    name: str = ""  # task name (default: the folder or file name)
    sequence: str = "sequence"  # sequence column of a table
    label: Any = "label"  # label column(s) of a table (a list for multi-output regression); bed: "auto"
    split: str = ""  # column naming each row's split (train/dev|valid|validation/test)
    sep: str = ""  # field separator of a table: "," or "tab" ("" = from the file name)
    kind: str = ""  # force the head kind (binary, multiclass, multilabel, regression, token_classification)
    metric: str = ""  # headline metric ("" = the type's default: GUE mcc, GB accuracy, multilabel auroc, ...)
    genome: Any = ""  # FASTA[@CHROM:OFFSET,...] for all rows, or {class: FASTA} (GenomicBenchmarks)
    length: int = 0  # resize intervals to this many bp around their centre (0 = keep)
    strand_aware: bool = True  # reverse complement intervals on the - strand
    num_classes: int = 0  # number of classes / labels (0 = infer)
    multi_label: Any = None  # force (true) or forbid (false) comma-separated multi-label lists
    classes: list = field(default_factory=list)  # class names in id order
    track: str = ""  # tokens: BED of labelled features painted onto each window
    track_label: str = "name"  # tokens: column of the track holding the class name
    background: str = "background"  # tokens: class of bases outside every feature (id 0)
    dev_fraction: float = 0.1  # carved from train (stratified, seeded) when there is no dev split
    test_fraction: float = 0.1  # carved from the rows when there is no test split
    seed: int = 0  # seed of carved splits
    base_dir: str = ""  # folder that relative paths are relative to (set from the YAML file)

    def resolve_path(self, p: str) -> Path:
        """``p`` relative to :attr:`base_dir` (absolute and ``~`` paths unchanged)."""
        path = Path(os.path.expanduser(str(p)))
        if not path.is_absolute() and self.base_dir:
            path = Path(self.base_dir) / path
        return path


def parse_task_spec(spec: str | dict | TaskSpec, base_dir: str | os.PathLike | None = None) -> TaskSpec:
    """Parse a TASK SPEC string, a YAML file name or a mapping into a :class:`TaskSpec`."""
    from finetune.config import from_dict, load_yaml, parse_value

    if isinstance(spec, TaskSpec):
        return spec
    if isinstance(spec, dict):
        d = dict(spec)
        genome = d.pop("genomes", None)
        if genome is not None:
            d["genome"] = genome
        if base_dir is not None and "base_dir" not in d:
            d["base_dir"] = str(base_dir)
        out = from_dict(TaskSpec, d, source="task spec")
        return _finish_spec(out)
    text = str(spec).strip()
    if not text:
        raise ConfigError("empty task spec")
    if re.search(r"\.ya?ml$", text) and "?" not in text and not re.match(r"^[A-Za-z_-]+:", text):
        path = Path(text)
        d = load_yaml(path)
        d.setdefault("base_dir", str(path.parent))
        if "path" not in d:
            raise ConfigError(f"{path}: a task spec needs a 'path'")
        try:
            return parse_task_spec(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    kind = ""
    m = re.match(r"^([A-Za-z_-]+):(?!//)(.*)$", text)
    if m and m.group(1).lower() in TASK_TYPES:
        kind, text = TASK_TYPES[m.group(1).lower()], m.group(2)
    path, _, query = text.partition("?")
    d: dict[str, Any] = {"type": kind, "path": path}
    types = {f.name: f.type for f in dataclasses.fields(TaskSpec)}
    hints = __import__("typing").get_type_hints(TaskSpec)
    genomes: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        if "=" not in item:
            raise ConfigError(f"task spec {spec!r}: {item!r} is not key=value")
        key, value = item.split("=", 1)
        if key.startswith("genome."):
            genomes[key[len("genome."):]] = value
            continue
        if key not in types or key == "base_dir":
            known = ", ".join(k for k in types if k != "base_dir")
            raise ConfigError(f"task spec {spec!r}: unknown key {key!r}; known keys: {known}")
        if key == "label":
            d[key] = value.split(",") if "," in value else value
        elif key == "multi_label":
            d[key] = parse_value(value, bool, key)
        else:
            d[key] = parse_value(value, hints[key], key)
    if genomes:
        if d.get("genome"):
            raise ConfigError(f"task spec {spec!r}: give either genome= or genome.CLASS=, not both")
        d["genome"] = genomes
    if base_dir is not None:
        d["base_dir"] = str(base_dir)
    return _finish_spec(TaskSpec(**d))


def _finish_spec(spec: TaskSpec) -> TaskSpec:
    if spec.type:
        if spec.type.lower() not in TASK_TYPES:
            raise ConfigError(f"task type {spec.type!r} is not one of {', '.join(sorted(set(TASK_TYPES)))}")
        spec.type = TASK_TYPES[spec.type.lower()]
    if not spec.path:
        raise ConfigError("task spec has no path")
    if spec.metric and spec.metric not in METRICS:
        raise ConfigError(f"metric {spec.metric!r} is not one of {', '.join(METRICS)}")
    if not spec.type:
        spec.type = guess_task_type(spec.resolve_path(spec.path))
    return spec


def guess_task_type(path: Path) -> str:
    """The task type of ``path`` from its layout (see the module docstring)."""
    if path.is_dir():
        if (path / "test.csv").exists() or (path / "train.csv").exists():
            return "gue"
        if (path / "metadata.yaml").exists() or list((path / "train").glob("*.csv*")):
            return "gb"
        raise ConfigError(f"{path}: a folder that is neither a GUE task (train/dev/test.csv) nor a GenomicBenchmarks "
                          "data set (metadata.yaml, train/, test/); give TYPE: explicitly")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".bed"):
        return "bed"
    if name.endswith((".csv", ".tsv", ".txt", ".tab")) or "{split}" in str(path):
        return "csv"
    raise ConfigError(f"{path}: cannot tell the task type from the name; write TYPE:PATH (gue, gb, bed, csv, tokens)")


def load_task(spec: str | dict | TaskSpec, base_dir: str | os.PathLike | None = None) -> Task:
    """Load a task from a TASK SPEC (string, YAML file, mapping or :class:`TaskSpec`).

    Args:
        spec: the specification.
        base_dir: folder that relative paths are relative to.

    Returns:
        The :class:`Task`.
    """
    s = parse_task_spec(spec, base_dir)
    loaders = {"gue": load_gue, "gb": load_genomic_benchmark, "bed": load_bed_task, "csv": load_table_task,
               "tokens": load_token_task}
    return loaders[s.type](s)


# --------------------------------------------------------------------------------------------- label helpers
def _kind_from_spec(label_spec, override: str, source: str) -> tuple[str, int]:
    kind = label_spec.kind
    if kind == "class":
        n = label_spec.num_classes
        if n < 2:
            raise InputError(f"{source}: only {n} class(es) in the labels; a classifier needs at least 2")
        out = ("binary", 1) if n == 2 else ("multiclass", n)
    elif kind == "regression":
        out = ("regression", 1)
    elif kind == "multi_task":
        out = ("regression", label_spec.num_classes)
    elif kind == "multi_label":
        out = ("multilabel", label_spec.num_classes)
    else:  # pragma: no cover - LabelSpec kinds are fixed
        raise InputError(f"{source}: unsupported label kind {kind!r}")
    if override:
        if override == "multiclass" and out[0] == "binary":
            return "multiclass", 2
        if override != out[0]:
            raise ConfigError(f"{source}: kind={override} but the labels look like {out[0]} ({label_spec.kind})")
    return out


def _metric(spec: TaskSpec, kind: str, default: str | None = None) -> str:
    if spec.metric:
        return spec.metric
    if default and kind in ("binary", "multiclass"):
        return default
    return DEFAULT_METRIC[kind]


def _class_names(label_spec) -> list:
    return [c.item() if isinstance(c, np.generic) else c for c in (label_spec.classes or [])]


# --------------------------------------------------------------------------------------------- GUE
def _read_table(path: Path, spec: TaskSpec, label_columns, classes=None, num_classes=None):
    from dnalm.data.tables import SequenceTable

    sep = {"": None, "tab": "\t", "\\t": "\t", "comma": ","}.get(spec.sep, spec.sep)
    return SequenceTable(
        path,
        sequence_column=spec.sequence,
        label_columns=label_columns,
        sep=sep,
        num_classes=num_classes,
        multi_label=spec.multi_label,
        classes=classes,
    )


def _tables_to_splits(tables: dict, spec: TaskSpec, source: str) -> tuple[dict, object]:
    """Class ids consistent across split tables: ``num_classes`` is the largest over the splits."""
    specs = {k: t.label_spec for k, t in tables.items()}
    first = next(iter(specs.values()))
    if first.kind == "class" or first.kind == "multi_label":
        n = max(s.num_classes for s in specs.values())
        for s in specs.values():
            if s.kind != first.kind:
                raise InputError(f"{source}: splits disagree on the label kind ({s.kind} vs {first.kind})")
        if first.kind == "multi_label":  # multi-hot widths must agree
            for k, t in tables.items():
                if t.labels.shape[1] < n:
                    t.labels = np.pad(t.labels, ((0, 0), (0, n - t.labels.shape[1])))
        first = dataclasses.replace(first, num_classes=n, classes=list(range(n)) if all(
            isinstance(c, (int, np.integer)) for c in first.classes) else first.classes)
    splits = {}
    for k, t in tables.items():
        seqs = t.frame[spec.sequence].astype(str).str.strip().str.upper().tolist()
        meta = pd.DataFrame({"source": t.source, "line": t.rows})
        splits[k] = TaskSplit(seqs, t.labels, meta)
    return splits, first


def load_gue(spec: TaskSpec | str) -> Task:
    """A GUE task folder: ``train.csv``, ``dev.csv``, ``test.csv`` with ``sequence,label`` (metric MCC).

    A missing ``dev.csv`` is carved from train (``dev_fraction``, stratified, seeded); a missing ``train.csv``
    or ``test.csv`` is an :class:`InputError`.
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"gue:{spec}")
    folder = spec.resolve_path(spec.path)
    if not folder.is_dir():
        raise InputError(f"{folder}: GUE task folder not found")
    for need in ("train", "test"):
        if not (folder / f"{need}.csv").exists():
            have = sorted(p.name for p in folder.glob("*.csv"))
            raise InputError(f"{folder}: no {need}.csv (GUE tasks need train.csv and test.csv; found {have})")
    label_cols = spec.label if isinstance(spec.label, list) else [spec.label]
    names = [s for s in SPLITS if (folder / f"{s}.csv").exists()]
    tables = {}
    classes = spec.classes or None
    for s in names:
        tables[s] = _read_table(folder / f"{s}.csv", spec, label_cols, classes=classes,
                                num_classes=spec.num_classes or None)
        if classes is None and tables[s].label_spec.kind == "class" and not all(
                isinstance(c, (int, np.integer)) for c in tables[s].label_spec.classes):
            classes = tables[s].label_spec.classes  # class names: same ids in every split
    splits, label_spec = _tables_to_splits(tables, spec, str(folder))
    kind, n_out = _kind_from_spec(label_spec, spec.kind, str(folder))
    notes = []
    if "dev" not in splits:
        kept, carved = carve_split(splits["train"].labels, spec.dev_fraction, spec.seed, kind)
        splits["dev"] = splits["train"].take(carved)
        splits["train"] = splits["train"].take(kept)
        notes.append(f"no dev.csv: dev carved from train ({spec.dev_fraction:.0%}, stratified, seed {spec.seed})")
    return Task(
        name=spec.name or folder.name, kind=kind, num_outputs=n_out, metric=_metric(spec, kind, "mcc"),
        train=splits["train"], dev=splits["dev"], test=splits["test"], classes=_class_names(label_spec),
        source=str(folder), notes=notes,
    )


# --------------------------------------------------------------------------------------------- genomes
class GenomeSource:
    """A FASTA (``dnalm.Genome``) whose records may be slices of real chromosomes starting at an offset."""

    def __init__(self, fasta: str | os.PathLike, offsets: dict[str, int] | None = None):
        from dnalm.io.genome import Genome

        self.genome = Genome(fasta)
        self.name = Path(fasta).name
        self.offsets = {self.genome.resolve(k): int(v) for k, v in (offsets or {}).items()}

    @classmethod
    def parse(cls, text: str, spec: TaskSpec) -> GenomeSource:
        """``FASTA`` or ``FASTA@CHROM:OFFSET[,CHROM:OFFSET]`` (paths relative to the spec's base folder)."""
        if isinstance(text, dict):
            if "fasta" not in text:
                raise ConfigError(f"genome {text}: a mapping needs 'fasta' (and optionally 'offsets')")
            return cls(spec.resolve_path(text["fasta"]), text.get("offsets"))
        path, _, off = str(text).partition("@")
        offsets = {}
        for item in filter(None, off.split(",")):
            chrom, _, value = item.rpartition(":")
            try:
                offsets[chrom] = int(value.replace("_", ""))
            except ValueError:
                raise ConfigError(f"genome {text!r}: offset {item!r} is not CHROM:INTEGER") from None
        return cls(spec.resolve_path(path), offsets)

    def locate(self, chrom: str, start: int, end: int) -> tuple[str, int, int] | str:
        """(record, start, end) within the FASTA, or the reason the interval is not inside it."""
        from dnalm.errors import InputError as _IE

        if start >= end:
            return f"empty interval: [{start:,}, {end:,})"
        try:
            name = self.genome.resolve(chrom)
        except _IE:
            return f"unknown chromosome: {chrom!r} is not in {self.name}"
        off = self.offsets.get(name, 0)
        size = self.genome.chrom_sizes[name]
        if start - off < 0 or end - off > size:
            return (f"outside the genome: {chrom}:[{start:,}, {end:,}) is not inside {self.name}, which holds "
                    f"{name}:[{off:,}, {off + size:,})")
        return name, start - off, end - off

    def fetch(self, located: tuple[str, int, int], strand: str) -> str:
        name, s, e = located
        return self.genome.fetch(name, s, e, strand="-" if strand == "-" else "+")


def resolve_intervals(
    df: pd.DataFrame, genome: GenomeSource | None, split: str, source: str, strand_aware: bool = True,
    length: int = 0, no_genome_reason: str = "no genome: none given",
) -> tuple[list[str], np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Fetch the sequence of every interval row that lies inside ``genome``.

    Args:
        df: rows with ``chrom``, ``start``, ``end`` (0-based half-open), optional ``strand``, ``id``, ``line``.
        genome: where to fetch from (None: every row is skipped with ``no_genome_reason``).
        split, source: recorded in the skipped rows.
        strand_aware: reverse complement rows on the ``-`` strand.
        length: resize each interval to ``length`` bp around its centre first (0 = keep).

    Returns:
        (sequences of the kept rows, kept row indices, per-kept-row meta, skipped rows with reasons).
    """
    from dnalm.data.bed import resize_interval

    seqs, kept, skipped, meta = [], [], [], []
    strands = df["strand"].astype(str).tolist() if "strand" in df.columns else ["+"] * len(df)
    ids = df["id"].astype(str).tolist() if "id" in df.columns else ["."] * len(df)
    lines = df["line"].tolist() if "line" in df.columns else list(range(1, len(df) + 1))
    for i, (chrom, start, end) in enumerate(zip(df["chrom"].astype(str), df["start"], df["end"])):
        strand = strands[i] if strand_aware else "+"
        start, end = int(start), int(end)
        if length:
            start, end = resize_interval(start, end, length, strand)
        if genome is None:
            where: Any = no_genome_reason
        else:
            where = genome.locate(chrom, start, end)
        if isinstance(where, str):
            skipped.append({"split": split, "source": source, "line": lines[i], "id": ids[i], "reason": where})
            continue
        seqs.append(genome.fetch(where, strand))
        kept.append(i)
        meta.append({"source": source, "line": lines[i], "id": ids[i], "chrom": chrom, "start": start,
                     "end": end, "strand": strand})
    return seqs, np.asarray(kept, dtype=np.int64), pd.DataFrame(meta), pd.DataFrame(skipped, columns=SKIP_COLUMNS)


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
        genomes = {c: GenomeSource.parse(spec.genome[c], spec) if spec.genome.get(c) else None for c in classes}
    elif spec.genome:
        g = GenomeSource.parse(spec.genome, spec)
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
            s, kept, meta, skipped = resolve_intervals(
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
        metric=_metric(spec, kind, "accuracy"), train=splits["train"].take(kept), dev=splits["train"].take(carved),
        test=splits["test"], classes=classes, source=str(folder), notes=notes, skipped=skipped,
    )


# --------------------------------------------------------------------------------------------- BED (BEND)
def _split_column(df: pd.DataFrame, spec: TaskSpec) -> str | None:
    if spec.split:
        if spec.split not in df.columns:
            raise InputError(f"{spec.path}: no split column {spec.split!r}; columns are {list(df.columns)}")
        return spec.split
    for col in df.columns:
        if col in ("chrom", "start", "end", "line"):
            continue
        values = set(df[col].astype(str).str.lower().unique())
        if values and values <= set(_SPLIT_NAMES) and values & {"train", "training"}:
            return col
    return None


def _assign_splits(n: int, labels: np.ndarray, split_values: list | None, spec: TaskSpec, kind: str,
                   source: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Row indices of train/dev/test from a split column, carving the missing ones."""
    notes = []
    if split_values is not None:
        names = []
        for i, v in enumerate(split_values):
            key = _SPLIT_NAMES.get(str(v).strip().lower())
            if key is None:
                raise InputError(f"{source}: row {i + 1}: split {v!r} is not train/dev/valid/test")
            names.append(key)
        names = np.asarray(names)
        idx = {s: np.flatnonzero(names == s) for s in SPLITS}
    else:
        idx = {"train": np.arange(n), "dev": np.zeros(0, np.int64), "test": np.zeros(0, np.int64)}
    if len(idx["test"]) == 0:
        kept, carved = carve_split(labels[idx["train"]], spec.test_fraction, spec.seed + 1, kind)
        idx["test"], idx["train"] = idx["train"][carved], idx["train"][kept]
        notes.append(f"no test split: test carved from the rows ({spec.test_fraction:.0%}, seed {spec.seed + 1})")
    if len(idx["dev"]) == 0:
        kept, carved = carve_split(labels[idx["train"]], spec.dev_fraction, spec.seed, kind)
        idx["dev"], idx["train"] = idx["train"][carved], idx["train"][kept]
        notes.append(f"no dev split: dev carved from train ({spec.dev_fraction:.0%}, seed {spec.seed})")
    for s in SPLITS:
        if len(idx[s]) == 0:
            raise InputError(f"{source}: the {s} split is empty")
    return idx, notes


def load_bed_task(spec: TaskSpec | str) -> Task:
    """A BEND-style BED + genome with a label column (an integer/class name, a number, or a comma-separated
    list of label indices for multi-label tasks such as BEND's Basset chromatin accessibility).

    The label column is ``label``, or with ``label=auto`` (default for headerless BED) the single extra
    column after BED6 (``col7``). A split column (values train/valid/test; found automatically, or
    ``split=COLUMN``) defines the splits, else test and dev are carved (seeded). Intervals not inside the
    genome are skipped and reported. Metric: AUROC for multi-label, MCC for classes, Spearman for numbers.
    """
    from dnalm.data.bed import read_bed
    from dnalm.data.labels import encode_labels

    spec = parse_task_spec(spec if not isinstance(spec, str) else f"bed:{spec}")
    path = spec.resolve_path(spec.path)
    df = read_bed(path)
    label = spec.label
    if label in ("auto", "label") and "label" not in df.columns:
        from dnalm.data.intervals import _auto_label_columns

        cols = _auto_label_columns(df)
        if not cols:
            raise InputError(f"{path}: no label column (columns {list(df.columns)}); give label=COLUMN")
    else:
        cols = label if isinstance(label, list) else [label]
    labels, label_spec = encode_labels(
        df, cols, str(path), df["line"].tolist(), spec.num_classes or None, spec.multi_label, spec.classes or None
    )
    kind, n_out = _kind_from_spec(label_spec, spec.kind, str(path))
    split_col = _split_column(df, spec)
    genome = GenomeSource.parse(spec.genome, spec) if spec.genome else None
    seqs, kept, meta, skipped = resolve_intervals(
        df, genome, "", str(path), spec.strand_aware, spec.length,
        no_genome_reason="no genome: none given (genome=FASTA)",
    )
    if len(kept) == 0:
        raise InputError(f"{path}: none of the {len(df):,} intervals could be resolved to a sequence; first "
                         f"reason: {skipped['reason'].iloc[0]}")
    all_split = df[split_col].tolist() if split_col else None
    if split_col and len(skipped):
        skipped["split"] = [_SPLIT_NAMES.get(str(all_split[i]).lower(), "") for i in
                            np.setdiff1d(np.arange(len(df)), kept)]
    split_values = [all_split[i] for i in kept] if split_col else None
    labels = labels[kept]
    idx, notes = _assign_splits(len(kept), labels, split_values, spec, kind, str(path))
    rows = TaskSplit(seqs, labels, meta)
    if len(skipped):
        notes.append(f"{len(skipped):,} interval(s) not inside the genome were skipped (see skipped)")
    return Task(
        name=spec.name or path.name.split(".")[0], kind=kind, num_outputs=n_out, metric=_metric(spec, kind),
        train=rows.take(idx["train"]), dev=rows.take(idx["dev"]), test=rows.take(idx["test"]),
        classes=_class_names(label_spec), source=str(path), notes=notes, skipped=skipped,
    )


# --------------------------------------------------------------------------------------------- any table
def load_table_task(spec: TaskSpec | str) -> Task:
    """Any CSV/TSV with a sequence column and label column(s): class ids or names (binary/multiclass),
    numbers (regression; several columns = several outputs), comma-separated lists (multi-label).

    ``path`` is one file (with a ``split`` column, or test/dev carved from it) or a pattern with ``{split}``
    (``{split}`` = train, dev, test; a missing dev file is carved from train).
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"csv:{spec}")
    label_cols = spec.label if isinstance(spec.label, list) else [spec.label]
    pattern = str(spec.resolve_path(spec.path))
    classes = spec.classes or None
    notes: list[str] = []
    if "{split}" in pattern:
        tables = {}
        for s in SPLITS:
            p = Path(pattern.replace("{split}", s))
            if not p.exists() and s == "dev":
                for alt in ("valid", "validation", "val"):
                    if Path(pattern.replace("{split}", alt)).exists():
                        p = Path(pattern.replace("{split}", alt))
                        break
            if not p.exists():
                if s == "dev":
                    continue
                raise InputError(f"{p}: no such file (from the pattern {pattern})")
            tables[s] = _read_table(p, spec, label_cols, classes, spec.num_classes or None)
            if classes is None and tables[s].label_spec.kind == "class" and not all(
                    isinstance(c, (int, np.integer)) for c in tables[s].label_spec.classes):
                classes = tables[s].label_spec.classes
        splits, label_spec = _tables_to_splits(tables, spec, pattern)
        kind, n_out = _kind_from_spec(label_spec, spec.kind, pattern)
        if "dev" not in splits:
            kept, carved = carve_split(splits["train"].labels, spec.dev_fraction, spec.seed, kind)
            splits["dev"], splits["train"] = splits["train"].take(carved), splits["train"].take(kept)
            notes.append(f"no dev file: dev carved from train ({spec.dev_fraction:.0%}, seed {spec.seed})")
        name = spec.name or Path(pattern).parent.name
    else:
        table = _read_table(Path(pattern), spec, label_cols, classes, spec.num_classes or None)
        (splits0, label_spec) = _tables_to_splits({"all": table}, spec, pattern)
        kind, n_out = _kind_from_spec(label_spec, spec.kind, pattern)
        split_values = None
        if spec.split or "split" in table.frame.columns:
            col = spec.split or "split"
            if col not in table.frame.columns:
                raise InputError(f"{pattern}: no split column {col!r}; columns are {list(table.frame.columns)}")
            split_values = table.frame[col].tolist()
        all_rows = splits0["all"]
        idx, notes = _assign_splits(len(all_rows), all_rows.labels, split_values, spec, kind, pattern)
        splits = {s: all_rows.take(idx[s]) for s in SPLITS}
        name = spec.name or Path(pattern).name.split(".")[0]
    return Task(
        name=name, kind=kind, num_outputs=n_out, metric=_metric(spec, kind), train=splits["train"],
        dev=splits["dev"], test=splits["test"], classes=_class_names(label_spec), source=pattern, notes=notes,
    )


# --------------------------------------------------------------------------------------------- per-nucleotide
def parse_base_labels(text: str, length: int, index: dict[str, int] | None, where: str) -> np.ndarray:
    """Per-base labels of one sequence: a string with one character per base (``"0011100"``, ``"eeiiinn"``)
    or comma-separated values (``"0,0,1,1"``); ``index`` maps names to ids (None: integers)."""
    text = str(text).strip()
    items = [t.strip() for t in text.split(",")] if "," in text else list(text)
    if len(items) != length:
        raise InputError(f"{where}: {len(items)} per-base labels for a sequence of {length} bases")
    if index is None:
        try:
            return np.asarray([int(t) for t in items], dtype=np.int64)
        except ValueError:
            raise InputError(f"{where}: per-base labels are not integers (give classes=...)") from None
    try:
        return np.asarray([index[t] for t in items], dtype=np.int64)
    except KeyError as exc:
        raise InputError(f"{where}: unknown per-base label {exc.args[0]!r}; classes are {list(index)}") from None


def _pad_labels(rows: list[np.ndarray]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def load_token_task(spec: TaskSpec | str) -> Task:
    """A per-nucleotide classification task (metric: MCC over all labelled bases).

    Two layouts:

    - a table whose ``label`` column holds per-base labels (one character per base, or comma-separated
      values; names mapped through ``classes`` or their sorted set);
    - a BED of windows + ``genome`` + ``track``: a BED of labelled features (class name in column
      ``track_label``) painted onto each window; bases outside every feature are class ``background``
      (id 0); later track rows win where features overlap; ``-`` strand windows are reverse complemented
      and their labels reversed.
    """
    spec = parse_task_spec(spec if not isinstance(spec, str) else f"tokens:{spec}")
    path = spec.resolve_path(spec.path)
    notes: list[str] = []
    skipped = pd.DataFrame(columns=SKIP_COLUMNS)
    if spec.track:
        from dnalm.data.bed import read_bed

        windows = read_bed(path)
        track = read_bed(spec.resolve_path(spec.track))
        if spec.track_label not in track.columns:
            raise InputError(f"{spec.track}: no column {spec.track_label!r}; columns are {list(track.columns)}")
        names = sorted({str(v) for v in track[spec.track_label]} - {spec.background})
        classes = [spec.background] + (list(spec.classes) if spec.classes else names)
        index = {c: i for i, c in enumerate(classes)}
        genome = GenomeSource.parse(spec.genome, spec) if spec.genome else None
        seqs, kept, meta, skipped = resolve_intervals(windows, genome, "", str(path), spec.strand_aware,
                                                      spec.length, "no genome: none given (genome=FASTA)")
        by_chrom = {c: g for c, g in track.groupby(track["chrom"].astype(str))}
        label_rows = []
        for j, row in meta.iterrows():
            lab = np.zeros(row["end"] - row["start"], dtype=np.int64)
            feats = by_chrom.get(row["chrom"])
            if feats is not None:
                hit = feats[(feats["start"] < row["end"]) & (feats["end"] > row["start"])]
                for s, e, name in zip(hit["start"], hit["end"], hit[spec.track_label].astype(str)):
                    if name not in index:
                        raise InputError(f"{spec.track}: class {name!r} not in classes {classes}")
                    lab[max(s, row["start"]) - row["start"]: min(e, row["end"]) - row["start"]] = index[name]
            label_rows.append(lab[::-1] if row["strand"] == "-" else lab)
        labels = _pad_labels(label_rows)
        split_col = _split_column(windows, spec)
        split_values = [windows[split_col].tolist()[i] for i in kept] if split_col else None
        rows = TaskSplit(seqs, labels, meta)
    else:
        from dnalm.data.tables import SequenceTable

        sep = {"": None, "tab": "\t", "\\t": "\t", "comma": ","}.get(spec.sep, spec.sep)
        table = SequenceTable(path, sequence_column=spec.sequence, label_columns=None, sep=sep)
        col = spec.label if isinstance(spec.label, str) else spec.label[0]
        if col not in table.frame.columns:
            raise InputError(f"{path}: no label column {col!r}; columns are {list(table.frame.columns)}")
        seqs = table.frame[spec.sequence].astype(str).str.strip().str.upper().tolist()
        raw = table.frame[col].astype(str).tolist()
        if spec.classes:
            classes = [str(c) for c in spec.classes]
        else:
            values = {t.strip() for r in raw for t in (r.split(",") if "," in r else list(r.strip()))}
            classes = sorted(values, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
        ints = all(c.lstrip("-").isdigit() for c in classes)
        index = None if ints and not spec.classes else {c: i for i, c in enumerate(classes)}
        label_rows = [parse_base_labels(r, len(s), index, f"{path}: line {table.rows[i]}")
                      for i, (r, s) in enumerate(zip(raw, seqs))]
        if index is None:
            top = max((int(r.max()) for r in label_rows if len(r)), default=0)
            classes = list(range(max(top + 1, spec.num_classes)))
        labels = _pad_labels(label_rows)
        split_col = spec.split or ("split" if "split" in table.frame.columns else "")
        split_values = table.frame[split_col].tolist() if split_col else None
        rows = TaskSplit(seqs, labels, pd.DataFrame({"source": str(path), "line": table.rows}))
    if len(rows) == 0:
        raise InputError(f"{path}: no windows could be resolved to a sequence")
    n_classes = max(len(classes), spec.num_classes or 0)
    if n_classes < 2:
        raise InputError(f"{path}: per-base labels have only {n_classes} class(es)")
    strat = np.zeros(len(rows), dtype=np.int64)  # no stratification for per-base labels
    idx, notes2 = _assign_splits(len(rows), strat, split_values, spec, "token_classification", str(path))
    notes += notes2
    if len(skipped):
        notes.append(f"{len(skipped):,} window(s) not inside the genome were skipped (see skipped)")
    return Task(
        name=spec.name or path.name.split(".")[0], kind="token_classification", num_outputs=n_classes,
        metric=spec.metric or "mcc", train=rows.take(idx["train"]), dev=rows.take(idx["dev"]),
        test=rows.take(idx["test"]), classes=classes, source=str(path), notes=notes, skipped=skipped,
    )


# --------------------------------------------------------------------------------------------- suites
SUITES = ("gue", "genomic-benchmarks", "bend")


def discover_suite(suite: str, data_dir: str | os.PathLike) -> dict[str, TaskSpec]:
    """Task specs of a built-in suite found under ``data_dir``.

    ``gue``: every folder (up to two levels down) with ``test.csv``; ``genomic-benchmarks``: every folder
    with ``metadata.yaml`` or ``train/*.csv*``; ``bend``: every ``*.bed``/``*.bed.gz`` file. Task names are
    the folder/file names.
    """
    data_dir = Path(data_dir).resolve()  # absolute: option paths may be relative to the data folder
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: benchmark data folder not found")
    suite = {"gb": "genomic-benchmarks", "genomic_benchmarks": "genomic-benchmarks"}.get(suite, suite)
    found: dict[str, TaskSpec] = {}
    if suite == "gue":
        for p in sorted(data_dir.glob("**/test.csv")):
            if len(p.relative_to(data_dir).parts) <= 3:
                found[p.parent.name] = TaskSpec(type="gue", path=str(p.parent), name=p.parent.name)
    elif suite == "genomic-benchmarks":
        for p in sorted(x for x in data_dir.iterdir() if x.is_dir()):
            if (p / "metadata.yaml").exists() or list((p / "train").glob("*.csv*")):
                found[p.name] = TaskSpec(type="gb", path=str(p), name=p.name)
    elif suite == "bend":
        for p in sorted(list(data_dir.glob("*.bed")) + list(data_dir.glob("*.bed.gz"))):
            name = p.name.split(".")[0]
            found[name] = TaskSpec(type="bed", path=str(p), name=name, label="auto")
    else:
        raise ConfigError(f"unknown suite {suite!r}; built-in suites: {', '.join(SUITES)} (or a suite YAML file)")
    if not found:
        raise InputError(f"{data_dir}: no {suite} tasks found")
    return found


def select_tasks(specs: dict[str, TaskSpec], names: Sequence[str] | None) -> dict[str, TaskSpec]:
    """The specs named in ``names`` (all when empty); an unknown name is an error listing the known ones."""
    if not names:
        return specs
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; this suite has: {', '.join(specs)}")
    return {n: specs[n] for n in names}

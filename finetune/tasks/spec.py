"""Task specifications: parse a TASK SPEC (string, YAML or mapping), guess its type, load it, find suites.

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
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnalm.errors import ConfigError, InputError
from finetune.metrics import METRICS

if TYPE_CHECKING:  # pragma: no cover
    from dnalm.data.fetch import OffsetGenome
    from finetune.tasks.base import Task

TASK_TYPES = {"gue": "gue", "gb": "gb", "genomic-benchmarks": "gb", "genomic_benchmarks": "gb", "bed": "bed",
              "bend": "bed", "csv": "csv", "tsv": "csv", "table": "csv", "tokens": "tokens"}


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
    from dnalm.config import from_dict, parse_text, read_mapping, suggest

    if isinstance(spec, TaskSpec):
        return spec
    if isinstance(spec, dict):
        d = dict(spec)
        genome = d.pop("genomes", None)
        if genome is not None:
            d["genome"] = genome
        if base_dir is not None and "base_dir" not in d:
            d["base_dir"] = str(base_dir)
        try:
            out = from_dict(TaskSpec, d)
        except ConfigError as exc:
            raise ConfigError(f"task spec: {exc}") from None
        return _finish_spec(out)
    text = str(spec).strip()
    if not text:
        raise ConfigError("empty task spec")
    if re.search(r"\.ya?ml$", text) and "?" not in text and not re.match(r"^[A-Za-z_-]+:", text):
        path = Path(text)
        d = read_mapping(path)
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
            known = [k for k in types if k != "base_dir"]
            close = suggest(key, known)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(f"task spec {spec!r}: unknown key {key!r}{hint}; known keys: {', '.join(known)}")
        if key == "label":
            d[key] = value.split(",") if "," in value else value
        elif key == "multi_label":
            d[key] = parse_text(value, bool, key)
        else:
            d[key] = parse_text(value, hints[key], key)
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
    from finetune.tasks.bed import load_bed_task
    from finetune.tasks.genomic_benchmarks import load_genomic_benchmark
    from finetune.tasks.gue import load_gue
    from finetune.tasks.tables import load_table_task
    from finetune.tasks.tokens import load_token_task

    s = parse_task_spec(spec, base_dir)
    loaders = {"gue": load_gue, "gb": load_genomic_benchmark, "bed": load_bed_task, "csv": load_table_task,
               "tokens": load_token_task}
    return loaders[s.type](s)



def parse_genome(text: str | dict, spec: TaskSpec) -> OffsetGenome:
    """``FASTA`` or ``FASTA@CHROM:OFFSET[,CHROM:OFFSET]`` (or a mapping with ``fasta`` and ``offsets``), paths
    relative to the spec's base folder."""
    from dnalm.data.fetch import OffsetGenome

    if isinstance(text, dict):
        if "fasta" not in text:
            raise ConfigError(f"genome {text}: a mapping needs 'fasta' (and optionally 'offsets')")
        return OffsetGenome(spec.resolve_path(text["fasta"]), text.get("offsets"))
    path, _, off = str(text).partition("@")
    offsets = {}
    for item in filter(None, off.split(",")):
        chrom, _, value = item.rpartition(":")
        try:
            offsets[chrom] = int(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"genome {text!r}: offset {item!r} is not CHROM:INTEGER") from None
    return OffsetGenome(spec.resolve_path(path), offsets)


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

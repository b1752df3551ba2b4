"""Configuration of a pretraining run: a dataclass tree, loaded strictly from YAML, with ``--set`` overrides.

The dataclasses below are the single source of truth: a YAML file is a serialised :class:`PretrainConfig`.
Loading is strict: an unknown or mistyped key is a :class:`~dnalm.errors.ConfigError` naming the dotted key
(``optim.lrr``), a value of the wrong type names the key and the expected type, a genome file that does not
exist names the file, and lengths/batch sizes that do not divide where they must name the stage key
(``stages[1].batch_size``). All of this is checked before any training starts.

Example (abridged ``config/pretrain/demo.yaml``)::

    model: {preset: hybridna-tiny, overrides: {mamba2: {chunk_size: 64}}}
    data:
      genomes: [{path: results/genome/sacCer_R64.fa.gz}]
      validation_chroms: [chrXVI]
      test_chroms: [chrXV]
    tokens_per_step: 2048
    stages:                       # HyenaDNA-style length warm-up, constant tokens per step
      - {steps: 50, length: 256}
      - {steps: 950, length: 512}
    optim: {lr: 2.0e-3, warmup_steps: 20}
    trainer: {devices: 2, strategy: ddp, threads: 1, precision: 32-true, val_every: 200, max_time_min: 11}

Relative genome paths are taken from the working directory (the project root for the demo and Snakemake).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dnalm.errors import ConfigError

STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "transformer-engine")


@dataclass
class ModelSection:
    """Which model to pretrain."""

    preset: str = "hybridna-tiny"  # a preset of dnalm.models.PRESETS
    overrides: dict = field(default_factory=dict)  # LMConfig fields replacing the preset's (nested dicts merge)
    init_from: str = ""  # a saved model directory whose weights start the run ('' = fresh initialisation)


@dataclass
class GenomeSpec:
    """One genome of the training mixture."""

    path: str = ""  # bgzip or plain FASTA with index (dnalm prepare-genome); relative to the working directory
    weight: float = 0.0  # sampling weight; 0 for every genome = in proportion to genome size
    name: str = ""  # name used in "name:chrom" split entries (default: the file name without .fa.gz)


@dataclass
class DataSection:
    """Where training and validation windows come from."""

    genomes: list[GenomeSpec] = field(default_factory=list)  # one or more genomes
    validation_chroms: list[str] = field(default_factory=list)  # held out for validation ("chrom" or "genome:chrom")
    test_chroms: list[str] = field(default_factory=list)  # held out entirely (evaluate-lm); never trained on
    rc_prob: float = 0.5  # probability of reverse-complementing a training window
    max_n_frac: float = 0.1  # windows with more N than this are redrawn (training) or skipped (validation)
    val_length: int = 0  # validation window length; 0 = the last stage's length


@dataclass
class Stage:
    """One stage of the sequence-length warm-up."""

    steps: int = 0  # optimizer steps in this stage
    length: int = 0  # window length (tokens the model sees per sequence)
    batch_size: int = 0  # global batch (all devices); 0 = tokens_per_step // length


@dataclass
class OptimSection:
    """AdamW, linear warm-up then cosine decay, gradient clipping."""

    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.1  # on weight matrices only (not norms, biases, embeddings, A_log, D, dt_bias)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # gradient norm clipping (0 = off)


@dataclass
class TrainerSection:
    """Lightning Trainer settings: devices, scale-out, logging and checkpoint intervals."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: int = 1  # devices per node
    num_nodes: int = 1  # nodes (SLURM: --nodes)
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed | ...
    log_every: int = 10  # steps between metric rows (metrics.csv)
    val_every: int = 200  # steps between validations (and one at the end)
    val_batches: int = 8  # validation batches per device per validation
    val_batch_size: int = 0  # validation batch per device; 0 = last stage's batch per device
    checkpoint_every: int = 100  # steps between Lightning checkpoints (checkpoints/last.ckpt)
    export_every: int = 0  # steps between exported model directories (model/); 0 = only at the end
    seed: int = 0  # seeds initialisation, windows and dropout
    num_workers: int = 0  # DataLoader worker processes per device
    threads: int = 0  # torch.set_num_threads (0 = leave torch's default)
    max_time_min: float = 0.0  # time budget: anneal by and stop (validate, export) at this many minutes; 0 = off
    progress_bar: bool = True  # tqdm progress bar with loss and tokens/s


@dataclass
class PretrainConfig:
    """A whole pretraining run."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    tokens_per_step: int = 0  # global tokens per optimizer step; 0 = every stage gives batch_size
    stages: list[Stage] = field(default_factory=list)  # length warm-up stages, run in order
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    # ------------------------------------------------------------------------------------ derived
    @property
    def total_steps(self) -> int:
        """Optimizer steps over all stages."""
        return sum(s.steps for s in self.stages)

    @property
    def world_size(self) -> int:
        return self.trainer.devices * self.trainer.num_nodes

    @property
    def val_length(self) -> int:
        return self.data.val_length or self.stages[-1].length

    def stage_at(self, step: int) -> tuple[int, Stage]:
        """(index, stage) that optimizer step ``step`` (0-based) belongs to; the last stage past the end."""
        end = 0
        for i, s in enumerate(self.stages):
            end += s.steps
            if step < end:
                return i, s
        return len(self.stages) - 1, self.stages[-1]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    # ------------------------------------------------------------------------------------ checks
    def validate(self, check_files: bool = True) -> PretrainConfig:
        """Check values that single fields cannot check alone; raises ConfigError naming the key.

        Args:
            check_files: also check that every genome file exists.

        Returns:
            self, with ``batch_size`` filled in for stages that derive it from ``tokens_per_step``.
        """
        from dnalm.models.lm import PRESETS

        m, d, o, t = self.model, self.data, self.optim, self.trainer
        if m.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {m.preset!r}; presets: {', '.join(PRESETS)}")
        if m.init_from and check_files and not (Path(m.init_from) / "config.json").exists():
            raise ConfigError(f"model.init_from: {m.init_from} is not a dnalm model directory (no config.json)")
        lm_cfg = self.lm_config()

        if not d.genomes:
            raise ConfigError("data.genomes: at least one genome is needed ({path: FILE.fa.gz})")
        for i, g in enumerate(d.genomes):
            if not g.path:
                raise ConfigError(f"data.genomes[{i}].path: missing")
            if check_files and not Path(g.path).is_file():
                hint = ""
                if "genome" in g.path:
                    hint = " (build the demo genome with `dnalm prepare-genome --demo yeast --out results/genome`)"
                raise ConfigError(f"data.genomes[{i}].path: genome file {g.path} not found{hint}")
            if g.weight < 0 or not math.isfinite(g.weight):
                raise ConfigError(f"data.genomes[{i}].weight: must be >= 0, got {g.weight}")
        weighted = [g.weight > 0 for g in d.genomes]
        if any(weighted) and not all(weighted):
            i = weighted.index(False)
            raise ConfigError(f"data.genomes[{i}].weight: give a weight > 0 to every genome or to none")
        if not d.validation_chroms:
            raise ConfigError("data.validation_chroms: name at least one held-out chromosome for validation")
        overlap = sorted(set(d.validation_chroms) & set(d.test_chroms))
        if overlap:
            raise ConfigError(f"data.test_chroms: {overlap} also in data.validation_chroms")
        _check_range("data.rc_prob", d.rc_prob, 0.0, 1.0)
        _check_range("data.max_n_frac", d.max_n_frac, 0.0, 1.0)

        if t.strategy not in STRATEGIES:
            raise ConfigError(f"trainer.strategy: {t.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if t.accelerator not in ACCELERATORS:
            raise ConfigError(f"trainer.accelerator: {t.accelerator!r} is not one of {', '.join(ACCELERATORS)}")
        if t.strategy == "fsdp" and t.accelerator == "cpu":
            raise ConfigError("trainer.strategy: fsdp needs GPUs (trainer.accelerator: gpu); use ddp on CPUs")
        if t.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision: {t.precision!r} is not one of {', '.join(PRECISIONS)}")
        for name in ("devices", "num_nodes", "log_every", "val_every", "val_batches", "checkpoint_every"):
            if getattr(t, name) < 1:
                raise ConfigError(f"trainer.{name}: must be >= 1, got {getattr(t, name)}")
        for name in ("val_batch_size", "export_every", "num_workers", "threads", "seed", "max_time_min"):
            if getattr(t, name) < 0:
                raise ConfigError(f"trainer.{name}: must be >= 0, got {getattr(t, name)}")

        if o.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {o.lr}")
        if o.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
        if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
            raise ConfigError(f"optim.betas: two numbers in [0, 1), got {o.betas}")
        if o.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps: must be >= 0, got {o.warmup_steps}")
        _check_range("optim.min_lr_ratio", o.min_lr_ratio, 0.0, 1.0)
        if o.grad_clip < 0:
            raise ConfigError(f"optim.grad_clip: must be >= 0 (0 = off), got {o.grad_clip}")

        if not self.stages:
            raise ConfigError("stages: at least one stage ({steps: N, length: L, batch_size: B}) is needed")
        if self.tokens_per_step < 0:
            raise ConfigError(f"tokens_per_step: must be >= 0, got {self.tokens_per_step}")
        for i, s in enumerate(self.stages):
            key = f"stages[{i}]"
            if s.steps < 1:
                raise ConfigError(f"{key}.steps: must be >= 1, got {s.steps}")
            _check_length(f"{key}.length", s.length, lm_cfg.max_length)
            if self.tokens_per_step:
                if self.tokens_per_step % s.length:
                    raise ConfigError(
                        f"{key}.length: {s.length} does not divide tokens_per_step={self.tokens_per_step}, so the "
                        "tokens per step cannot stay constant"
                    )
                derived = self.tokens_per_step // s.length
                if s.batch_size and s.batch_size != derived:
                    raise ConfigError(
                        f"{key}.batch_size: {s.batch_size} x length {s.length} != tokens_per_step "
                        f"{self.tokens_per_step} (leave batch_size out to derive it: {derived})"
                    )
                s.batch_size = derived
            elif s.batch_size < 1:
                raise ConfigError(f"{key}.batch_size: must be >= 1 (or set tokens_per_step), got {s.batch_size}")
            if s.batch_size % self.world_size:
                raise ConfigError(
                    f"{key}.batch_size: global batch {s.batch_size} is not divisible by the {self.world_size} "
                    "processes (trainer.devices x trainer.num_nodes)"
                )
        tokens = [s.length * s.batch_size for s in self.stages]
        for i, n in enumerate(tokens[1:], start=1):
            if n != tokens[0]:
                raise ConfigError(
                    f"stages[{i}].batch_size: length x batch_size = {n} tokens per step, but stages[0] has "
                    f"{tokens[0]}; stages keep tokens per step constant (set tokens_per_step to derive batch sizes)"
                )
        if d.val_length:
            _check_length("data.val_length", d.val_length, lm_cfg.max_length)
        return self

    def lm_config(self):
        """The :class:`~dnalm.models.lm.LMConfig` of the model section (preset with overrides merged)."""
        from dnalm.models.lm import PRESETS, LMConfig, make_mixer

        if self.model.init_from:
            from dnalm.models.lm import read_model_config

            try:
                return read_model_config(self.model.init_from)[0]
            except Exception as exc:  # noqa: BLE001 - reported with the key
                raise ConfigError(f"model.init_from: {exc}") from None
        if self.model.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {self.model.preset!r}; presets: {', '.join(PRESETS)}")
        merged = _deep_merge(copy.deepcopy(PRESETS[self.model.preset]), self.model.overrides)
        try:
            cfg = LMConfig.from_dict(merged, source="model.overrides")
            import torch

            # build each distinct mixer once on the meta device: catches unknown mixer options early
            for kind in set(cfg.layer_pattern):
                with torch.device("meta"):
                    make_mixer(kind, cfg, 0)
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg if msg.startswith("model.") else f"model.overrides: {msg}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.overrides: {exc}") from None
        return cfg


# ---------------------------------------------------------------------------------------- loading
def _check_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: must be in [{lo}, {hi}], got {value}")


def _check_length(key: str, length: int, max_length: int) -> None:
    # any length works with Mamba2: the SSD scan runs its last partial chunk at its own length (no padding)
    if length < 2:
        raise ConfigError(f"{key}: must be >= 2, got {length}")
    if length > max_length:
        raise ConfigError(f"{key}: {length} is longer than the model's max_length {max_length}")


def _deep_merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


class _Raw(str):
    """A ``--set`` value as typed on the command line; converted by the target field's type."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        (arg,) = typing.get_args(tp)
        return f"list of {_type_name(arg)}"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return {int: "integer", float: "number", bool: "boolean (true/false)", str: "string", dict: "mapping"}.get(
        tp, str(tp)
    )


def _convert(value: Any, tp, key: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming ``key`` and the expected type."""
    if isinstance(value, _Raw):
        if tp is str:
            return str(value)
        if tp is bool:
            low = value.lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ConfigError(f"{key}: expected a boolean (true/false), got {str(value)!r}")
        try:
            value = yaml.safe_load(str(value))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: cannot parse {str(value)!r}: {exc}") from None
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return _from_dict(tp, value, key)
    if origin is list:
        (arg,) = typing.get_args(tp)
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_convert(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise bad
        return copy.deepcopy(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. precision: 32
        raise bad
    raise TypeError(f"unsupported config field type {tp}")  # pragma: no cover - a bug in this module


def _from_dict(cls, raw: dict, prefix: str = ""):
    """Strictly build dataclass ``cls`` from ``raw``: unknown keys and wrong types name the dotted key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f"; did you mean {(prefix + '.' if prefix else '') + close[0]!r}?" if close else ""
            raise ConfigError(f"{key}: unknown key{hint} (known: {', '.join(names)})")
        kwargs[k] = _convert(v, hints[k], key)
    return cls(**kwargs)


def _apply_set(raw: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` (list items by index: ``stages.1.steps=100``) to the raw YAML dict."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE (e.g. optim.lr=1e-3)")
    dotted, _, text = assignment.partition("=")
    parts = [p for p in dotted.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    node: Any = raw
    cls: Any = PretrainConfig
    walked = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(walked + [part])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {dotted}: {where}: no list item {part!r} (the list has {len(node)} items)")
            idx = int(part)
            if last:
                node[idx] = _Raw(text)
                return
            node = node[idx]
            walked.append(part)
            continue
        if cls is not None:
            hints = typing.get_type_hints(cls)
            if part not in hints:
                names = list(hints)
                close = difflib.get_close_matches(part, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"--set {dotted}: {where}: unknown key{hint} (known: {', '.join(names)})")
            tp = hints[part]
        else:
            tp = dict  # inside a free-form mapping (model.overrides)
        if last:
            if cls is None:
                try:
                    node[part] = yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    raise ConfigError(f"--set {dotted}: cannot parse {text!r}: {exc}") from None
            else:
                node[part] = _Raw(text)
            return
        if node.get(part) is None:
            if typing.get_origin(tp) is list:
                raise ConfigError(f"--set {dotted}: {where} is not set in the config, so it has no items")
            node[part] = {}
        node = node[part]
        walked.append(part)
        if dataclasses.is_dataclass(tp):
            cls = tp
        elif typing.get_origin(tp) is list:
            (arg,) = typing.get_args(tp)
            cls = arg if dataclasses.is_dataclass(arg) else None
        else:
            cls = None
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: {where} is a {type(node).__name__}, not a mapping")


def config_from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = (), check_files: bool = True) -> PretrainConfig:
    """Build and validate a :class:`PretrainConfig` from a plain dict and ``--set`` style overrides.

    Args:
        raw: the parsed YAML mapping.
        overrides: ``"a.b=value"`` strings applied in order (typed by the target field).
        check_files: check that genome files exist.

    Returns:
        The validated config.
    """
    raw = copy.deepcopy(raw) if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping at the top level, got {type(raw).__name__}")
    for assignment in overrides:
        _apply_set(raw, assignment)
    cfg = _from_dict(PretrainConfig, raw)
    return cfg.validate(check_files=check_files)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), check_files: bool = True) -> PretrainConfig:
    """Read a pretraining YAML strictly (see the module docstring) and apply ``--set`` overrides.

    Args:
        path: YAML file.
        overrides: ``"a.b=value"`` strings (``--set``).
        check_files: check that genome files exist.

    Returns:
        The validated :class:`PretrainConfig`.

    Raises:
        ConfigError: naming the file and the offending key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(raw, overrides, check_files=check_files)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

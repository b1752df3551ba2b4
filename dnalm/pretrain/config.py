"""Configuration of a pretraining run: a dataclass tree, loaded strictly from YAML, with ``--set`` overrides.

The dataclasses below are the single source of truth: a YAML file is a serialised :class:`PretrainConfig`, read
by the one loader :mod:`dnalm.config`; this module adds the checks across fields (:meth:`PretrainConfig.validate`).
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
import math
from dataclasses import dataclass, field
from pathlib import Path

from dnalm.config import deep_merge, from_dict, to_dict
from dnalm.config import load_config as _load
from dnalm.errors import ConfigError, DnalmError

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
    weight_decay: float = 0.1  # on weight matrices only (the dnalm.training no-decay rule: not biases, norms, ...)
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
        return to_dict(self)

    def to_yaml(self) -> str:
        import yaml

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
        if lm_cfg.kind != "causal":
            raise ConfigError("model: a bidirectional (masked) model cannot be pretrained here: pretraining uses the "
                              "next-token loss (masked-LM pretraining is not implemented); fine-tune it instead")

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
        """The :class:`~dnalm.models.lm.LMConfig` of the model section (preset with overrides merged), checked
        strictly (unknown or mistyped keys name ``model.overrides.<key>``) without building a model."""
        from dnalm.models.lm import PRESETS, LMConfig

        if self.model.init_from:
            from dnalm.models.lm import read_model_config

            try:
                return read_model_config(self.model.init_from)[0]
            except DnalmError as exc:
                raise ConfigError(f"model.init_from: {exc}") from None
        if self.model.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {self.model.preset!r}; presets: {', '.join(PRESETS)}")
        merged = deep_merge(copy.deepcopy(PRESETS[self.model.preset]), self.model.overrides)
        return from_dict(LMConfig, merged, prefix="model.overrides")


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


def config_from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = (), check_files: bool = True) -> PretrainConfig:
    """Build and validate a :class:`PretrainConfig` from a plain dict and ``--set`` style overrides.

    Args:
        raw: the parsed YAML mapping.
        overrides: ``"a.b=value"`` strings applied in order (typed by the target field).
        check_files: check that genome files exist.

    Returns:
        The validated config.
    """
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping at the top level, got {type(raw).__name__}")
    cfg = _load(PretrainConfig, data=raw or {}, overrides=overrides)
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
    cfg = _load(PretrainConfig, path, overrides)
    try:
        return cfg.validate(check_files=check_files)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

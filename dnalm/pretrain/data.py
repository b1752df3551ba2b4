"""Pretraining data: windows of L + 1 tokens per optimizer step, deterministic per (seed, step), split between ranks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from dnalm.data import GenomeWindows
from dnalm.errors import ConfigError
from dnalm.io.genome import Genome
from dnalm.pretrain.config import PretrainConfig
from dnalm.tokenizer import A_ID, T_ID, DNATokenizer

IGNORE = -100  # target id that is neither trained on nor scored


def make_targets(windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets from windows of L + 1 token ids.

    Args:
        windows: (B, L + 1) token ids.

    Returns:
        ``x`` (B, L) = windows[:, :-1] and ``y`` (B, L) = windows[:, 1:] with non-base targets (N, padding,
        specials) set to -100, so they are neither trained on nor scored.
    """
    x = windows[:, :-1]
    y = windows[:, 1:].clone()
    is_base = (y >= A_ID) & (y <= T_ID)
    y[~is_base] = IGNORE
    return x.contiguous(), y


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StepBatches(Dataset):
    """Map-style dataset whose item ``s`` is this rank's share of the batch of optimizer step ``s``.

    Batches follow the length warm-up stages of the config; item ``s`` holds ``batch_size / world`` windows of
    ``length + 1`` tokens (inputs and shifted targets), the ``rank``-th slice of the global batch.
    """

    def __init__(self, cfg: PretrainConfig, genomes: dict[str, Genome], tokenizer: DNATokenizer | None = None):
        self.cfg = cfg
        self.genomes = genomes
        self.tokenizer = tokenizer or DNATokenizer()
        self._windows: dict[int, GenomeWindows] = {}
        self.rank, self.world = 0, 1
        # first global sample index of each stage, so that no two steps share a window
        self._starts, self._sample_offsets = [], []
        step, sample = 0, 0
        for s in cfg.stages:
            self._starts.append(step)
            self._sample_offsets.append(sample)
            step += s.steps
            sample += s.steps * s.batch_size
        for i in range(len(cfg.stages)):  # open (and validate) every stage's window source up front
            self.windows(i)

    def windows(self, stage: int) -> GenomeWindows:
        """The random-mode :class:`GenomeWindows` of a stage (windows of length + 1 tokens)."""
        if stage not in self._windows:
            d = self.cfg.data
            self._windows[stage] = GenomeWindows(
                self.genomes,
                length=self.cfg.stages[stage].length + 1,
                mode="random",
                split="train",
                splits=splits_of(self.cfg),
                weights=weights_of(self.cfg),
                max_n_frac=d.max_n_frac,
                rc_prob=d.rc_prob,
                seed=self.cfg.trainer.seed,
                tokenizer=self.tokenizer,
            )
        return self._windows[stage]

    def __len__(self) -> int:
        return self.cfg.total_steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        stage, s = self.cfg.stage_at(step)
        per_rank = s.batch_size // self.world
        first = self._sample_offsets[stage] + (step - self._starts[stage]) * s.batch_size + self.rank * per_rank
        gw = self.windows(stage)
        windows = torch.stack([gw.random_window(first + j)["input_ids"] for j in range(per_rank)])  # (b, L+1)
        x, y = make_targets(windows)
        return {"input_ids": x, "labels": y, "step": torch.tensor(step)}


class StepSampler(Sampler[int]):
    """Yields optimizer-step indices ``start, start + 1, ..., total - 1``; ``start`` is the resume position."""

    def __init__(self, total: int):
        self.total = total
        self.start = 0

    def __iter__(self):
        return iter(range(self.start, self.total))

    def __len__(self) -> int:
        # the full run: Lightning counts batches already done in its restored loop state
        return self.total


class ResumableLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict``/``load_state_dict`` protocol: its state is the next step.

    Lightning stores the state in each checkpoint and restores it on resume before iterating, so the resumed
    run continues with exactly the batch that an uninterrupted run would have taken next.
    """

    def __init__(self, *args, position=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._position = position  # callable -> optimizer steps done (the trainer's global step)

    def state_dict(self) -> dict:
        return {"next_step": int(self._position()) if self._position else self.sampler.start}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.start = int(state["next_step"])


class ValidationWindows(IterableDataset):
    """Tiled windows (length + 1) of the validation chromosomes, spread evenly, with shifted targets."""

    def __init__(self, windows: GenomeWindows):
        self.windows = windows

    def __iter__(self):
        for item in self.windows:  # GenomeWindows shards over ranks and workers itself
            x, y = make_targets(item["input_ids"][None])
            yield {"input_ids": x[0], "labels": y[0]}


def splits_of(cfg: PretrainConfig) -> dict:
    """The GenomeWindows ``splits`` mapping of a config."""
    splits = {"validation": list(cfg.data.validation_chroms)}
    if cfg.data.test_chroms:
        splits["test"] = list(cfg.data.test_chroms)
    return splits


def weights_of(cfg: PretrainConfig):
    if all(g.weight > 0 for g in cfg.data.genomes):
        return [g.weight for g in cfg.data.genomes]
    return None  # in proportion to genome size


def open_genomes(cfg: PretrainConfig) -> dict[str, Genome]:
    """``{name: Genome}`` of the config's genomes (names from the config or the file names)."""
    from dnalm.data.windows import genome_name

    out: dict[str, Genome] = {}
    for i, g in enumerate(cfg.data.genomes):
        name = g.name or genome_name(Path(g.path))
        if name in out:
            raise ConfigError(f"data.genomes[{i}].name: two genomes are called {name!r}; give them distinct names")
        out[name] = Genome(g.path)
    return out


class PretrainDataModule(L.LightningDataModule):
    """Training batches by optimizer step (length warm-up stages) and evenly spread validation tiles."""

    def __init__(self, cfg: PretrainConfig):
        super().__init__()
        self.cfg = cfg
        self.genomes = open_genomes(cfg)
        self.train_data = StepBatches(cfg, self.genomes)  # opens the window sources: bad splits fail early
        self.val_windows = self._validation_windows()

    def _validation_windows(self) -> GenomeWindows:
        cfg, t = self.cfg, self.cfg.trainer
        length = cfg.val_length + 1
        probe = GenomeWindows(self.genomes, length=length, mode="tiled", split="validation", splits=splits_of(cfg))
        wanted = max(1, t.val_batches * self.val_batch_size * cfg.world_size)
        spare = probe.describe()["splits"]["validation"]["bp"] - length * len(probe.chroms)
        # a stride that spreads at most `wanted` windows evenly over the validation chromosomes
        stride = max(length, -(-spare // max(1, wanted - len(probe.chroms))))
        return GenomeWindows(
            self.genomes, length=length, mode="tiled", split="validation", splits=splits_of(cfg), stride=stride,
            max_n_frac=cfg.data.max_n_frac, last_window="drop", rc_prob=0.0, seed=t.seed,
        )

    @property
    def val_batch_size(self) -> int:
        t = self.cfg.trainer
        return t.val_batch_size or max(1, self.cfg.stages[-1].batch_size // self.cfg.world_size)

    def describe(self) -> dict:
        """Chromosomes and bp per split (from GenomeWindows)."""
        return self.train_data.windows(0).describe()["splits"]

    def train_dataloader(self) -> DataLoader:
        rank, world = _rank_world()
        self.train_data.rank, self.train_data.world = rank, world
        if world != self.cfg.world_size:
            raise ConfigError(
                f"trainer.devices x trainer.num_nodes = {self.cfg.world_size} but {world} processes are running"
            )
        trainer = self.trainer
        sampler = StepSampler(self.cfg.total_steps)
        nw = self.cfg.trainer.num_workers
        return ResumableLoader(
            self.train_data,
            batch_size=None,  # items are whole batches
            sampler=sampler,
            num_workers=nw,
            persistent_workers=False,
            prefetch_factor=2 if nw else None,
            generator=torch.Generator().manual_seed(self.cfg.trainer.seed),  # keeps the global RNG untouched
            position=(lambda: trainer.global_step) if trainer is not None else None,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            ValidationWindows(self.val_windows),
            batch_size=self.val_batch_size,
            num_workers=self.cfg.trainer.num_workers,
        )

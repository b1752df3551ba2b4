"""Pretraining windows from one or several genomes: random (length-proportional) or tiled, with splits.

Determinism: the i-th random window of an epoch is drawn from a random stream that depends only on
(seed, epoch, i), and the tiled windows are a fixed list; DataLoader workers (and distributed ranks) each take
their own share of the indices. So the same seed gives the same windows whatever the number of workers,
another
seed gives other windows, and no tiled window is produced twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from dnalm.errors import ConfigError, InputError
from dnalm.io.genome import Genome
from dnalm.tokenizer import DNATokenizer

from ._common import CollateMixin, default_tokenizer, item_rng, to_input_ids

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
GenomeLike = str | os.PathLike | Genome
_FASTA_SUFFIXES = (".gz", ".bgz", ".fa", ".fasta", ".fna", ".fas")


@dataclass(frozen=True)
class _Chrom:
    """One chromosome of one genome in the selected split."""

    genome: int  # index into GenomeWindows.genomes
    name: str  # FASTA name
    length: int


def genome_name(path: Path) -> str:
    """A genome's short name from its FASTA path: the file name without .gz/.bgz/.fa/.fasta/.fna suffixes."""
    name = path.name
    changed = True
    while changed:
        changed = False
        for suffix in _FASTA_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name


def _shard() -> tuple[int, int]:
    """(shard id, number of shards) over DataLoader workers and, when initialised, distributed ranks."""
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return rank * workers + worker, world * workers


class GenomeWindows(CollateMixin, IterableDataset):
    """Fixed-length token windows from one or several genomes, for pretraining and tiled evaluation.

    Args:
        genomes: one genome or several: FASTA paths, :class:`Genome` objects, or a ``{name: genome}`` mapping
            (names default to the file name without ``.fa.gz``).
        length: window length L in bp.
        mode: ``"random"``: ``num_samples`` windows per epoch, genome chosen by ``weights``, chromosome in
            proportion to its length, start uniform; ``"tiled"``: every chromosome of the split covered by
            windows at ``0, stride, 2*stride, ...``.
        split: which split to produce (``"train"``, ``"validation"``, ``"test"``, or another key of
            ``splits``).
        splits: None (every chromosome, one split ``"train"``); ``{"train": [...], "validation": [...],
            "test": [...]}`` by chromosome names (aliases ok, ``"genome:chrom"`` to pick one genome;
            chromosomes
            left out of all lists go to train when ``"train"`` is not given); or ``{"validation": 0.1, "test":
            0.1, "seed": 0}``: that fraction of each genome's chromosomes (rounded, at least one when the
            fraction is positive and the genome has enough chromosomes), chosen by the seed.
        stride: tiling step (default L).
        weights: per-genome sampling weights in random mode (default: in proportion to genome size, i.e.
            every bp equally likely).
        max_n_frac: windows whose fraction of N (over real genome bases; padding excluded) exceeds this are
            skipped (random mode draws again; tiled mode leaves them out and counts them). None disables.
        rc_prob: probability of returning a window reverse complemented (strand "-").
        seed: seed of sampling and augmentation.
        num_samples: windows per epoch in random mode (default: split bp // L).
        tokenizer: a :class:`DNATokenizer` (default: a plain one).
        add_special_tokens: wrap each window as ``[BOS] seq [EOS]`` (L + 2 tokens).
        last_window: tiled mode, the window that runs past a chromosome end: ``"pad"`` (N-padded to L) or
            ``"drop"``. Chromosomes shorter than L give one such window.
        max_tries: random mode, draws per window before giving up on a split that is mostly N.

    Items: ``{"input_ids": LongTensor (L,) or (L+2,), "index", "chrom", "start", "end", "strand", "genome"}``;
    ``index`` is the window's number in the epoch (random) or in the tiling (tiled); start/end are 0-based
    half-open and may run past the chromosome end for a padded window.

    Call ``set_epoch(epoch)`` before each epoch to draw new random windows (with ``persistent_workers=True``
    the workers keep the epoch they started with). ``stats`` counts, in the iterating process, windows
    yielded and windows skipped or redrawn for N content.
    """

    def __init__(
        self,
        genomes: GenomeLike | Sequence[GenomeLike] | Mapping[str, GenomeLike],
        length: int,
        mode: str = "random",
        split: str = "train",
        splits: Mapping | None = None,
        stride: int | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        max_n_frac: float | None = 0.1,
        rc_prob: float = 0.0,
        seed: int = 0,
        num_samples: int | None = None,
        tokenizer: DNATokenizer | None = None,
        add_special_tokens: bool = False,
        last_window: str = "pad",
        max_tries: int = 1000,
    ):
        if int(length) < 1:
            raise ConfigError(f"length must be a positive number of bp, got {length}")
        if mode not in ("random", "tiled"):
            raise ConfigError(f"mode must be 'random' or 'tiled', got {mode!r}")
        if last_window not in ("pad", "drop"):
            raise ConfigError(f"last_window must be 'pad' or 'drop', got {last_window!r}")
        if not 0.0 <= rc_prob <= 1.0:
            raise ConfigError(f"rc_prob is a probability in [0, 1], got {rc_prob}")
        if max_n_frac is not None and not 0.0 <= max_n_frac <= 1.0:
            raise ConfigError(f"max_n_frac is a fraction in [0, 1], got {max_n_frac}")
        self.length = int(length)
        self.mode = mode
        self.split = split
        self.stride = self.length if stride is None else int(stride)
        if self.stride < 1:
            raise ConfigError(f"stride must be positive, got {stride}")
        self.max_n_frac = max_n_frac
        self.rc_prob = float(rc_prob)
        self.seed = int(seed)
        self.epoch = 0
        self.tokenizer = default_tokenizer(tokenizer)
        self.add_special_tokens = add_special_tokens
        self.last_window = last_window
        self.max_tries = int(max_tries)
        self.genome_names, self.genomes = self._open_genomes(genomes)
        self.assignment = self._assign_splits(splits)  # (genome idx, chrom) -> split name
        present = set(self.assignment.values())
        self.split_names = [s for s in SPLIT_NAMES if s in present] + sorted(present - set(SPLIT_NAMES))
        if split not in self.split_names and split not in (splits or {}):
            raise ConfigError(
                f"split {split!r} is not defined; splits are {self.split_names}"
                + ("" if splits else " (pass splits=... for validation/test chromosomes)")
            )
        self.chroms = [
            _Chrom(g, name, size)
            for g, genome in enumerate(self.genomes)
            for name, size in genome.chrom_sizes.items()
            if self.assignment[(g, name)] == split
        ]
        if not self.chroms:
            raise ConfigError(f"split {split!r} has no chromosomes")
        self._lengths = np.array([c.length for c in self.chroms], dtype=np.int64)
        self._probs = self._chrom_probabilities(weights)
        self._cum_probs = np.cumsum(self._probs)
        self._cum_probs[-1] = 1.0
        split_bp = int(self._lengths.sum())
        self.num_samples = int(num_samples) if num_samples is not None else max(1, split_bp // self.length)
        # tiled layout: per chromosome, full windows then at most one partial window past its end
        full = np.where(self._lengths >= self.length, (self._lengths - self.length) // self.stride + 1, 0)
        last_end = np.where(full > 0, (full - 1) * self.stride + self.length, 0)
        partial = ((last_end < self._lengths) & (full * self.stride < self._lengths)).astype(np.int64)
        self.tiles_full = full
        self.tiles_partial = partial
        per_chrom = full + (partial if last_window == "pad" else 0)
        self._tile_offsets = np.concatenate([[0], np.cumsum(per_chrom)])
        self.stats = {"yielded": 0, "skipped_n": 0, "redrawn_n": 0}

    # ------------------------------------------------------------------------------------------- set-up
    @staticmethod
    def _open_genomes(genomes) -> tuple[list[str], list[Genome]]:
        if isinstance(genomes, (str, os.PathLike, Genome)):
            genomes = [genomes]
        if isinstance(genomes, Mapping):
            items = [(str(k), v) for k, v in genomes.items()]
        else:
            items = [(None, g) for g in genomes]
        if not items:
            raise ConfigError("GenomeWindows needs at least one genome")
        names, opened = [], []
        for i, (name, g) in enumerate(items):
            genome = g if isinstance(g, Genome) else Genome(g)
            if name is None:
                path = getattr(genome, "path", None)
                name = genome_name(Path(path)) if path is not None else f"genome{i}"
            base, k = name, 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
            opened.append(genome)
        return names, opened

    def _lookup(self, entry: str) -> list[tuple[int, str]]:
        """(genome idx, FASTA name) pairs that a split entry names: ``chrom`` in every genome that has it,
        or ``genome:chrom`` in one."""
        entry = str(entry)
        targets = range(len(self.genomes))
        chrom = entry
        if ":" in entry:
            gname, _, rest = entry.partition(":")
            if gname in self.genome_names:
                targets, chrom = [self.genome_names.index(gname)], rest
        found = [(g, self.genomes[g].resolve(chrom)) for g in targets if chrom in self.genomes[g]]
        if not found:
            if len(targets) == 1:
                self.genomes[targets[0]].resolve(chrom)  # raises an InputError listing close names
            raise InputError(f"split chromosome {entry!r} is in none of the genomes {self.genome_names}")
        return found

    def _assign_splits(self, splits: Mapping | None) -> dict[tuple[int, str], str]:
        all_chroms = [(g, name) for g, genome in enumerate(self.genomes) for name in genome.chrom_sizes]
        if not splits:
            return {key: "train" for key in all_chroms}
        splits = dict(splits)
        split_seed = splits.pop("seed", 0)
        values = list(splits.values())
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return self._fraction_splits(splits, int(split_seed), all_chroms)
        if any(isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, set)) for v in values):
            raise ConfigError(
                "splits must map split names to chromosome lists ({'validation': ['chrXVI']}) or to "
                "fractions "
                f"({{'validation': 0.1, 'test': 0.1, 'seed': 0}}), got {splits!r}"
            )
        assignment: dict[tuple[int, str], str] = {}
        for name, entries in splits.items():
            for entry in entries:
                for key in self._lookup(entry):
                    if key in assignment and assignment[key] != name:
                        raise ConfigError(
                            f"chromosome {self.genome_names[key[0]]}:{key[1]} is in two splits: "
                            f"{assignment[key]!r} and {name!r}"
                        )
                    assignment[key] = name
        rest = "train" if "train" not in splits else "unused"
        return {key: assignment.get(key, rest) for key in all_chroms}

    def _fraction_splits(self, fractions: dict, seed: int, all_chroms) -> dict[tuple[int, str], str]:
        for name, f in fractions.items():
            if name == "train":
                raise ConfigError("fraction splits take the held-out fractions only (train gets the rest)")
            if not 0.0 <= f < 1.0:
                raise ConfigError(f"split fraction {name}={f} is not in [0, 1)")
        if sum(fractions.values()) >= 1.0:
            raise ConfigError(f"split fractions {fractions} leave nothing for train")
        assignment = {key: "train" for key in all_chroms}
        for g, genome in enumerate(self.genomes):
            names = list(genome.chrom_sizes)
            order = np.random.default_rng([seed, g]).permutation(len(names))
            held = [f for f in fractions.values() if f > 0]
            counts = {}
            for split_name, f in fractions.items():
                n = round(f * len(names))
                if f > 0 and n == 0 and len(names) > len(held):
                    n = 1  # a positive fraction of a small genome still gets one chromosome
                counts[split_name] = n
            if sum(counts.values()) >= len(names) or any(
                f > 0 and counts[s] == 0 for s, f in fractions.items()
            ):
                log.warning(
                    "genome %s has %d chromosome(s): too few to hold out %s by chromosome; all stay in train",
                    self.genome_names[g],
                    len(names),
                    fractions,
                )
                continue
            pos = 0
            for split_name, n in counts.items():
                for k in order[pos : pos + n]:
                    assignment[(g, names[k])] = split_name
                pos += n
        return assignment

    def _chrom_probabilities(self, weights) -> np.ndarray:
        genome_bp = np.zeros(len(self.genomes))
        for c in self.chroms:
            genome_bp[c.genome] += c.length
        if weights is None:
            w = genome_bp.copy()
        else:
            if isinstance(weights, Mapping):
                unknown = [k for k in weights if k not in self.genome_names]
                if unknown:
                    raise ConfigError(
                        f"weights for unknown genome(s) {unknown}; genomes are {self.genome_names}"
                    )
                w = np.array([float(weights.get(n, 0.0)) for n in self.genome_names])
            else:
                w = np.asarray(list(weights), dtype=float)
                if len(w) != len(self.genomes):
                    raise ConfigError(f"{len(w)} weights for {len(self.genomes)} genomes")
            if (w < 0).any() or not np.isfinite(w).all():
                raise ConfigError(f"weights must be finite and non-negative, got {list(w)}")
            w = np.where(genome_bp > 0, w, 0.0)  # a genome without chromosomes in this split cannot be drawn
        if w.sum() <= 0:
            raise ConfigError(
                f"the genome weights {list(w)} give no chromosome of split {self.split!r} a chance"
            )
        w = w / w.sum()
        return np.array([w[c.genome] * c.length / genome_bp[c.genome] for c in self.chroms])

    # ------------------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        """Windows per epoch: ``num_samples`` (random) or the number of tiles before N filtering (tiled)."""
        return self.num_samples if self.mode == "random" else int(self._tile_offsets[-1])

    def _fetch(self, chrom: _Chrom, start: int, strand: str) -> tuple[np.ndarray, float]:
        """Ids of ``[start, start + L)`` on ``strand`` and the N fraction of its real (unpadded) bases."""
        end = start + self.length
        seq = self.genomes[chrom.genome].fetch(chrom.name, start, end, strand=strand, pad=True)
        ids = self.tokenizer.encode_np(seq)
        padded = max(0, end - chrom.length)
        real = self.length - padded
        n_count = int(np.count_nonzero(ids == self.tokenizer.n_token_id)) - padded
        return ids, (n_count / real if real > 0 else 1.0)

    def _item(self, index: int, chrom: _Chrom, start: int, strand: str, ids: np.ndarray) -> dict:
        return {
            "input_ids": to_input_ids(ids, self.tokenizer, self.add_special_tokens),
            "index": int(index),
            "chrom": chrom.name,
            "start": int(start),
            "end": int(start) + self.length,
            "strand": strand,
            "genome": self.genome_names[chrom.genome],
        }

    def _too_many_n(self, n_frac: float) -> bool:
        return self.max_n_frac is not None and n_frac > self.max_n_frac

    def random_window(self, index: int) -> dict:
        """The ``index``-th random window of the current epoch (a function of seed, epoch and index only)."""
        rng = item_rng(self.seed, self.epoch, index)
        for _ in range(self.max_tries):
            c = self.chroms[
                min(int(np.searchsorted(self._cum_probs, rng.random(), side="right")), len(self.chroms) - 1)
            ]
            start = int(rng.integers(0, max(0, c.length - self.length) + 1))
            strand = "-" if rng.random() < self.rc_prob else "+"
            ids, n_frac = self._fetch(c, start, strand)
            if not self._too_many_n(n_frac):
                return self._item(index, c, start, strand, ids)
            self.stats["redrawn_n"] += 1
        raise InputError(
            f"no window of {self.length} bp with at most {self.max_n_frac:.0%} N found in {self.max_tries} "
            f"draws from split {self.split!r} of {self.genome_names}; the sequence there is mostly N"
        )

    def tile(self, index: int) -> tuple[_Chrom, int]:
        """(chromosome, start) of the ``index``-th tiled window."""
        k = int(np.searchsorted(self._tile_offsets, index, side="right")) - 1
        return self.chroms[k], int(index - self._tile_offsets[k]) * self.stride

    def __iter__(self) -> Iterator[dict]:
        shard, shards = _shard()
        self.stats = {"yielded": 0, "skipped_n": 0, "redrawn_n": 0}  # this pass, this process
        total = len(self)
        # contiguous blocks per shard: neighbouring windows share bgzip blocks
        lo, hi = shard * total // shards, (shard + 1) * total // shards
        for i in range(lo, hi):
            if self.mode == "random":
                item = self.random_window(i)
            else:
                chrom, start = self.tile(i)
                strand = "+"
                if self.rc_prob > 0 and item_rng(self.seed, self.epoch, i).random() < self.rc_prob:
                    strand = "-"
                ids, n_frac = self._fetch(chrom, start, strand)
                if self._too_many_n(n_frac):
                    self.stats["skipped_n"] += 1
                    continue
                item = self._item(i, chrom, start, strand, ids)
            self.stats["yielded"] += 1
            yield item
        if self.stats["skipped_n"]:
            log.warning(
                "GenomeWindows(%s, tiled) shard %d/%d: skipped %d of %d windows with more than %s N",
                self.split,
                shard,
                shards,
                self.stats["skipped_n"],
                hi - lo,
                self.max_n_frac,
            )
        if self.stats["redrawn_n"]:
            log.info(
                "GenomeWindows(%s, random) shard %d/%d: redrew %d windows with more than %s N",
                self.split,
                shard,
                shards,
                self.stats["redrawn_n"],
                self.max_n_frac,
            )

    # ------------------------------------------------------------------------------------------- report
    def describe(self) -> dict:
        """Chromosomes and bp per split, and this split's window counts.

        Returns:
            ``{"splits": {name: {"chromosomes": ["genome:chrom", ...], "n_chromosomes", "bp"}}, "split",
            "mode", "length", "windows", "tiles_full", "tiles_partial", "partial_policy"}``; in random mode
            ``windows`` is ``num_samples``, in tiled mode the tile count (partial tiles included when padded,
            before N filtering).
        """
        out: dict[str, dict] = {}
        for (g, name), split_name in self.assignment.items():
            entry = out.setdefault(split_name, {"chromosomes": [], "n_chromosomes": 0, "bp": 0})
            entry["chromosomes"].append(f"{self.genome_names[g]}:{name}")
            entry["n_chromosomes"] += 1
            entry["bp"] += self.genomes[g].chrom_sizes[name]
        ordered = {k: out[k] for k in self.split_names if k in out}
        return {
            "splits": ordered,
            "split": self.split,
            "mode": self.mode,
            "length": self.length,
            "windows": len(self),
            "tiles_full": int(self.tiles_full.sum()),
            "tiles_partial": int(self.tiles_partial.sum()),
            "partial_policy": self.last_window,
        }

    def __repr__(self) -> str:
        bp = int(self._lengths.sum())
        return (
            f"GenomeWindows({self.genome_names}, length={self.length}, mode={self.mode!r}, "
            f"split={self.split!r}: "
            f"{len(self.chroms)} chromosomes, {bp:,} bp, {len(self)} windows)"
        )

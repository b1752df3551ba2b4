"""Regression oracle for CRE activity: a compact Basenji/Enformer-style CNN over one-hot DNA.

One-hot input -> convolution stem -> conv tower with pooling -> dilated residual blocks -> global mean+max
pooling -> MLP -> one output per target. Targets are standardised for training and predictions are returned in the
original units. Saved as ``oracle.safetensors`` + ``oracle.json`` (config, target scaling, held-out metrics).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnalm.errors import ConfigError, DnalmError, InputError
from dnalm.utils import read_model_json

WEIGHTS = "oracle.safetensors"
META = "oracle.json"


@dataclass
class OracleConfig:
    """Architecture of :class:`OracleCNN`."""

    seq_len: int  # input length; shorter sequences are right-padded with N (zeros)
    targets: list[str]  # output names
    channels: int = 64  # width of the conv tower (64 generalised better than 128 on 10k yeast promoters)
    stem_kernel: int = 15  # first convolution width (motif detectors)
    tower_layers: int = 2  # conv + max-pool(2) blocks after the stem
    dilated_layers: int = 4  # residual blocks with dilation 1, 2, 4, ...
    hidden: int = 256  # MLP width
    dropout: float = 0.3  # dropout in residual blocks and MLP
    target_mean: list[float] = field(default_factory=list)  # training target means (un-standardising)
    target_std: list[float] = field(default_factory=list)  # training target standard deviations


@dataclass
class OracleTrainConfig:
    """Training settings of :func:`train_oracle` (loaded strictly by :func:`dnalm.config.load_config`)."""

    val_fraction: float = 0.1  # validation rows (early stopping)
    test_fraction: float = 0.1  # held-out rows (reported metrics)
    max_epochs: int = 12  # upper bound on epochs
    patience: int = 4  # epochs without validation improvement before stopping
    batch_size: int = 128
    lr: float = 2e-3  # AdamW peak learning rate (one-cycle cosine schedule)
    weight_decay: float = 0.05
    rc_augment: bool = False  # randomly reverse complement training sequences (orientation-free assays)
    seed: int = 0
    progress: bool = True  # progress bar per epoch
    log_epochs: bool = True  # print one line per epoch (losses, validation Spearman)

    def __post_init__(self):
        for name in ("max_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not (0 < self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ConfigError(f"val_fraction, test_fraction: need 0 < val, 0 <= test and val + test < 1, got "
                              f"{self.val_fraction}, {self.test_fraction}")
        for name in ("patience", "lr", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")


def one_hot(sequences: Sequence[str], seq_len: int | None = None) -> torch.Tensor:
    """(N, 4, L) float one-hot of A/C/G/T; N (and other ambiguity codes) -> 0.25 each; right padding -> zeros.

    Raises:
        InputError: a sequence longer than ``seq_len`` or with an invalid character (naming the sequence).
    """
    from dnalm.tokenizer import A_ID, N_ID, DNATokenizer

    tok = DNATokenizer()
    width = seq_len or max(len(s) for s in sequences)
    x = np.zeros((len(sequences), 4, width), dtype=np.float32)
    for i, s in enumerate(sequences):
        if len(s) > width:
            raise InputError(f"sequence {i} has {len(s)} nt, longer than the oracle's input length {width}")
        try:
            ids = tok.encode_np(s)
        except InputError as exc:
            raise InputError(f"sequence {i}: {exc}") from None
        base = ids - A_ID
        ok = (base >= 0) & (base < 4)
        x[i, base[ok], np.flatnonzero(ok)] = 1.0
        x[i, :, np.flatnonzero(ids == N_ID)] = 0.25
    return torch.from_numpy(x)


class ConvBlock(nn.Module):
    """BatchNorm -> GELU -> Conv1d (Basenji's pre-activation convolution)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.norm = nn.BatchNorm1d(c_in)
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.gelu(self.norm(x)))


class DilatedResidual(nn.Module):
    """x + dropout(conv1x1(conv_dilated(x))): Basenji's dilated residual block."""

    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = ConvBlock(channels, channels // 2, 3, dilation)
        self.conv2 = ConvBlock(channels // 2, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.conv2(self.conv1(x)))


class OracleCNN(nn.Module):
    """Compact Basenji/Enformer-style CNN mapping a one-hot sequence to one value per target."""

    def __init__(self, config: OracleConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.stem = nn.Conv1d(4, c, config.stem_kernel, padding=config.stem_kernel // 2)
        self.tower = nn.ModuleList(ConvBlock(c, c, 5) for _ in range(config.tower_layers))
        self.dilated = nn.ModuleList(
            DilatedResidual(c, 2**i, config.dropout) for i in range(config.dilated_layers)
        )
        self.final_norm = nn.BatchNorm1d(c)
        self.head = nn.Sequential(
            nn.Linear(2 * c, config.hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, len(config.targets))
        )
        mean = torch.tensor(config.target_mean or [0.0] * len(config.targets))
        std = torch.tensor(config.target_std or [1.0] * len(config.targets))
        self.register_buffer("target_mean", mean)
        self.register_buffer("target_std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (B, n_targets) for one-hot ``x`` (B, 4, L)."""
        h = F.max_pool1d(self.stem(x), 2, ceil_mode=True)  # (B, C, L/2)
        for block in self.tower:
            h = F.max_pool1d(block(h), 2, ceil_mode=True)  # halves the length each time
        for block in self.dilated:
            h = block(h)
        h = F.gelu(self.final_norm(h))
        pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=1)  # (B, 2C)
        return self.head(pooled)

    @torch.no_grad()
    def predict(self, sequences: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Predictions in the original units, (N, n_targets).

        Args:
            sequences: DNA strings no longer than ``config.seq_len``.
            batch_size: sequences per forward pass.
        """
        self.eval()
        dev = self.target_mean.device
        out = []
        for i in range(0, len(sequences), batch_size):
            x = one_hot(sequences[i : i + batch_size], self.config.seq_len).to(dev)
            out.append((self(x) * self.target_std + self.target_mean).cpu())
        if not out:
            return np.zeros((0, len(self.config.targets)))
        return torch.cat(out).double().numpy()

    @property
    def targets(self) -> list[str]:
        return list(self.config.targets)


def correlation_metrics(pred: np.ndarray, true: np.ndarray, names: Sequence[str]) -> dict:
    """Per-target Spearman and Pearson correlations (scipy) and MSE.

    Returns:
        ``{name: {"spearman", "pearson", "mse", "n"}}``.
    """
    from scipy.stats import pearsonr, spearmanr

    out = {}
    for j, name in enumerate(names):
        p, t = pred[:, j], true[:, j]
        ok = len(p) > 2 and np.std(p) > 0 and np.std(t) > 0
        out[name] = {
            "spearman": float(spearmanr(p, t).statistic) if ok else float("nan"),
            "pearson": float(pearsonr(p, t).statistic) if ok else float("nan"),
            "mse": float(np.mean((p - t) ** 2)),
            "n": len(p),
        }
    return out


ARCH_DECIDED = ("seq_len", "targets", "target_mean", "target_std")  # OracleConfig fields the data decides


def arch_overrides(items: Sequence[str]) -> dict:
    """``["channels=32", "dropout=0.2"]`` (``--set arch.KEY=VALUE`` without ``arch.``) as typed OracleConfig
    settings; an unknown key is refused as ``arch.KEY`` with the closest known one."""
    from dnalm.config import overrides_dict, unknown_key_error

    known = [f for f in OracleConfig.__dataclass_fields__ if f not in ARCH_DECIDED]
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key not in known:
            raise unknown_key_error("arch", key, known)
    try:
        return overrides_dict(OracleConfig, items)
    except ConfigError as exc:
        raise ConfigError(f"arch.{exc}") from None


def oracle_config(arch: dict | None, **data) -> OracleConfig:
    """:class:`OracleConfig` from user architecture settings ``arch`` (strict: ``chanels`` -> did you mean
    ``channels``) and the fields the data decides (``seq_len``, ``targets``, ``target_mean``, ``target_std``)."""
    from dnalm.config import from_dict, unknown_key_error

    known = [f for f in OracleConfig.__dataclass_fields__ if f not in ARCH_DECIDED]
    for key in arch or {}:
        if key not in known:
            raise unknown_key_error("arch", str(key), known)
    return from_dict(OracleConfig, {**(arch or {}), **data}, prefix="arch")


def train_oracle(
    sequences: Sequence[str],
    values: np.ndarray,
    target_names: Sequence[str],
    out_dir: str | os.PathLike | None = None,
    config: OracleTrainConfig | None = None,
    arch: dict | None = None,
    extra_report: dict | None = None,
    splits: Sequence[str] | None = None,
) -> tuple[OracleCNN, dict]:
    """Train an :class:`OracleCNN` with a seeded train/validation/test split and early stopping.

    Args:
        sequences: N DNA strings.
        values: (N, T) targets.
        target_names: T names.
        out_dir: where to save the oracle (None: do not save).
        config: training settings.
        arch: :class:`OracleConfig` fields overriding the defaults (channels, dilated_layers, ...).
        extra_report: entries added to the saved report (e.g. skipped input rows).
        splits: the split of each row (train / dev / test, e.g. by chromosome) instead of a seeded random split
            by ``config.val_fraction`` / ``config.test_fraction``; without dev rows, validation is carved from train.

    Returns:
        The trained oracle (best validation epoch, eval mode, CPU) and a report with held-out Spearman/Pearson
        per target.
    """
    from tqdm import tqdm

    from generate.data import split_indices

    cfg = config or OracleTrainConfig()
    values = np.asarray(values, dtype=np.float64).reshape(len(sequences), -1)
    if values.shape[1] != len(target_names):
        raise ConfigError(f"{values.shape[1]} target columns but {len(target_names)} names")
    if splits is None:
        train_idx, val_idx, test_idx = split_indices(len(sequences), [cfg.val_fraction, cfg.test_fraction], cfg.seed)
    else:
        from generate.data import split_indices_from_column

        train_idx, val_idx, test_idx = split_indices_from_column(list(splits))
        if not len(val_idx):  # carve validation rows from train
            keep, val = split_indices(len(train_idx), [cfg.val_fraction], cfg.seed)
            train_idx, val_idx = train_idx[keep], train_idx[val]
    for j, name in enumerate(target_names):
        for split, idx in (("all", np.arange(len(values))), ("held-out test", test_idx)):
            column = values[idx, j]
            if len(column) > 1 and np.nanstd(column) == 0:
                raise InputError(
                    f"target {name!r} is constant ({column[0]:g}) over the {split} rows: nothing to learn, and "
                    "Spearman/Pearson are undefined"
                )
    mean = values[train_idx].mean(0)
    std = values[train_idx].std(0)
    std[std == 0] = 1.0
    ocfg = oracle_config(arch, seq_len=max(len(s) for s in sequences), targets=list(target_names),
                         target_mean=mean.tolist(), target_std=std.tolist())
    torch.manual_seed(cfg.seed)
    model = OracleCNN(ocfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    x_all = one_hot(sequences, ocfg.seq_len)  # (N, 4, L)
    y_all = torch.from_numpy(((values - mean) / std).astype(np.float32))  # (N, T)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps_per_epoch * cfg.max_epochs, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)

    def evaluate(idx):
        model.eval()
        with torch.no_grad():
            preds = [model(x_all[idx[i : i + 512]].to(device)).cpu() for i in range(0, len(idx), 512)]
        return torch.cat(preds).double().numpy() * std + mean

    best, best_state, best_epoch, history, bad = math.inf, None, 0, [], 0
    t0 = time.time()
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = rng.permutation(train_idx)
        losses = []
        it = range(0, len(perm), cfg.batch_size)
        bar = tqdm(it, desc=f"oracle epoch {epoch + 1}", leave=False, disable=not cfg.progress)
        for i in bar:
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two rows
            x, y = x_all[idx], y_all[idx]
            if cfg.rc_augment:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                x = torch.where(flip[:, None, None], x.flip(1).flip(2), x)  # A<->T, C<->G by channel flip
            loss = F.mse_loss(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        pv = evaluate(val_idx)
        val_mse = float(np.mean(((pv - values[val_idx]) / std) ** 2))
        val_metrics = correlation_metrics(pv, values[val_idx], target_names)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_mse,
                        "val_spearman": [val_metrics[n]["spearman"] for n in target_names]})
        if cfg.log_epochs:
            print(f"oracle epoch {epoch + 1}: train {np.mean(losses):.4f}  val {val_mse:.4f}  val spearman "
                  + " ".join(f"{n}={val_metrics[n]['spearman']:.3f}" for n in target_names), flush=True)
        if val_mse < best:
            best, best_epoch, bad = val_mse, epoch + 1, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    pt = evaluate(test_idx)
    report = {
        "targets": list(target_names),
        "n_train": len(train_idx),
        "n_validation": len(val_idx),
        "n_test": len(test_idx),
        "split": "given per row" if splits is not None else "random (seeded)",
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "seconds": round(time.time() - t0, 1),
        "heldout": correlation_metrics(pt, values[test_idx], target_names),
        "validation": correlation_metrics(evaluate(val_idx), values[val_idx], target_names),
        "history": history,
        "train_config": asdict(cfg),
        **(extra_report or {}),
    }
    model.cpu().eval()
    if out_dir is not None:
        save_oracle(model, out_dir, report)
        from dnalm.utils import atomic_write

        with atomic_write(Path(out_dir) / "heldout_predictions.tsv") as fh:
            fh.write("sequence\t" + "\t".join(f"{n}\tpredicted_{n}" for n in target_names) + "\n")
            for row, i in enumerate(test_idx):
                vals = "\t".join(f"{values[i, j]:.6g}\t{pt[row, j]:.6g}" for j in range(len(target_names)))
                fh.write(f"{sequences[i]}\t{vals}\n")
    return model, report


def save_oracle(model: OracleCNN, out_dir: str | os.PathLike, report: dict | None = None) -> Path:
    """Write ``oracle.safetensors`` and ``oracle.json`` (config + report) atomically."""
    from safetensors.torch import save_model

    from dnalm.utils import atomic_path, atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS) as tmp:
        save_model(model, str(tmp), metadata={"format": "pt"})
    with atomic_write(out_dir / META) as fh:
        json.dump({"model_type": "dnalm-oracle", "config": asdict(model.config), "report": report or {}}, fh, indent=2,
                  default=float)
    return out_dir


def load_oracle(directory: str | os.PathLike, device: str | torch.device = "cpu") -> OracleCNN:
    """Load an oracle saved by :func:`train_oracle` (safetensors + JSON, never pickle).

    Raises:
        InputError: not an oracle directory, or weights that do not match the config.
    """
    from dnalm.models.weights import check_against, load_checked

    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.exists() or not (directory / WEIGHTS).exists():
        raise InputError(f"{directory}: not an oracle directory (needs {META} and {WEIGHTS}; make one with dnalm train-oracle)")
    meta = read_model_json(meta_path, {"model_type": "dnalm-oracle"})
    try:
        cfg = OracleConfig(**meta["config"])
    except TypeError as exc:
        raise InputError(f"{meta_path}: bad oracle config ({exc})") from None
    check_against(directory / WEIGHTS, lambda: OracleCNN(cfg), meta_path)
    model = load_checked(OracleCNN(cfg), directory / WEIGHTS)
    model.report = meta.get("report", {})
    return model.to(device).eval()


def match_targets(oracle: OracleCNN, properties: Sequence[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Oracle output column for each generator property: by name, an explicit mapping, or the single target.

    Raises:
        DnalmError: a property with no matching oracle target.
    """
    mapping = dict(mapping or {})
    out = {}
    for p in properties:
        t = mapping.get(p, p)
        if t in oracle.targets:
            out[p] = oracle.targets.index(t)
        elif len(properties) == 1 and len(oracle.targets) == 1 and p not in mapping:
            out[p] = 0
        else:
            raise DnalmError(
                f"property {p!r} has no oracle target (oracle targets: {oracle.targets}); map it with --target-map {p}=TARGET"
            )
    return out

"""The options every `dnalm` subcommand shares, and typed argument validators that check bounds when parsed.

One flag name per meaning (see the conventions table in the README, checked by ``tests/test_cli_conventions.py``):

- a command that runs a model: ``--model``, ``--device``, ``--dtype``, ``--threads``, ``--batch-size``,
  ``--no-progress`` (:func:`add_model_options`, :func:`add_compute_options`);
- a command that writes: ``--out`` (a file where it writes one file, a folder where it writes several; never a
  prefix) and ``--overwrite`` (:func:`add_output_options`);
- a command with settings: ``--config FILE`` and ``--set key=value`` (:func:`add_settings_options`);
- the file records are read from: ``--input``; the value/label columns of a table: ``--label-columns``;
- a command whose work splits: ``--region`` and ``--shard I/N`` (:func:`add_selection_options`).

Validators raise :class:`argparse.ArgumentTypeError`, so a bad value ends as ``dnalm CMD: error: argument
--flag: ...`` with exit code 2 and no traceback, before any file is read or model built. Nothing here imports
torch at import time (``dnalm --help`` stays fast); the device check imports it only when ``--device`` is given.
argparse's own ``type=`` hook is used rather than a validation library because the checks are one line each and
the messages must name the flag, which argparse does.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

DTYPES = ("float32", "bfloat16")
DEVICE_HELP = "torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps (default auto)"
MAX_BATCH_SIZE = 1 << 16  # larger batches are a typo, not a plan: one batch of 65,536 1-kb windows is > 30 GB
MAX_THREADS = 1024


# ---------------------------------------------------------------------------------------------- validators
def _num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


def _bound_text(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    return f"{'<' if hi_open else '<='} {_num(hi)}"


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an integer in [lo, hi] (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_bound_text(lo, hi, False, False)}, got {value:,}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def float_in(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite float within the bounds (open or closed); NaN and inf are refused."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (
            (lo is not None and (value < lo or (lo_open and value == lo)))
            or (hi is not None and (value > hi or (hi_open and value == hi)))
        ):
            raise argparse.ArgumentTypeError(f"must be {_bound_text(lo, hi, lo_open, hi_open)}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)
batch_size_type = int_in(1, MAX_BATCH_SIZE)
threads = int_in(0, MAX_THREADS)
finite_float = float_in()
positive_float = float_in(0.0, lo_open=True)
non_negative_float = float_in(0.0)
probability = float_in(0.0, 1.0)
fraction = float_in(0.0, 1.0, hi_open=True)  # a share held out: 1 would leave nothing


def key_value(text: str) -> str:
    """An argparse ``type`` for ``key=value`` (the value may be empty; the key may not)."""
    key, sep, _ = str(text).partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def device(text: str) -> str:
    """An argparse ``type`` for a torch device that exists on this machine: auto, cpu, cuda, cuda:N, mps."""
    name = str(text).strip().lower()
    m = _DEVICE_RE.match(name)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    kind, index = m.group(1), m.group(2)
    if kind in ("auto", "cpu"):
        return kind
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available ({why}); use --device cpu")
        n = torch.cuda.device_count()
        if index is not None and int(index) >= n:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError(f"{text!r}: the Apple MPS backend is not available; use --device cpu")
    return name


# ---------------------------------------------------------------------------------------------- option groups
COMPUTE_FLAGS = ("--device", "--dtype", "--threads", "--batch-size", "--no-progress")


def add_compute_options(p, *, batch_size: int | None = 32, batch_help: str = "items per forward pass",
                        dtype: str | None = "float32", defaults_from: str | None = None,
                        flags: tuple[str, ...] = COMPUTE_FLAGS) -> None:
    """``--device``, ``--dtype``, ``--threads``, ``--batch-size``, ``--no-progress`` (or the subset ``flags``).

    Args:
        batch_size / dtype: defaults (None: the value of the command's settings, named by ``defaults_from``).
        defaults_from: where None defaults come from (e.g. "the config"), for the help text.
        flags: the options to add, for a command whose library cannot honour all of them (say which and why).
    """
    src = defaults_from or "the settings"
    g = p.add_argument_group("compute")
    if "--device" in flags:
        g.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    if "--dtype" in flags:
        g.add_argument("--dtype", choices=DTYPES, default=dtype,
                       help=f"weights and activations: float32 or bfloat16 (default {dtype or src})")
    if "--threads" in flags:
        g.add_argument("--threads", type=threads, default=0, help="torch CPU threads (default 0: torch's choice)")
    if "--batch-size" in flags:
        g.add_argument("--batch-size", type=batch_size_type, default=batch_size,
                       help=f"{batch_help} (default {batch_size if batch_size is not None else src})")
    if "--no-progress" in flags:
        g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_model_options(p, *, required: bool = True, help: str | None = None, **compute) -> None:
    """``--model`` (a preset name, a dnalm model folder, or an importable checkpoint) and the compute options."""
    p.add_argument("--model", required=required, metavar="MODEL",
                   help=help or "a dnalm model folder, an importable checkpoint, or a preset name (random weights)")
    add_compute_options(p, **compute)


def comma_list(text: str) -> list[str]:
    """An argparse ``type`` for ``a,b,c`` (spaces around names dropped; empty names refused)."""
    items = [x.strip() for x in str(text).split(",")]
    if not items or any(not x for x in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return items


def add_input_option(p, help: str, *, required: bool = True) -> None:
    """``--input``: the one name for the file a command reads its records from (sequences, variants, a table)."""
    p.add_argument("--input", required=required, metavar="FILE", help=help)


def add_label_columns_option(p, help: str, *, required: bool = False) -> None:
    """``--label-columns a,b``: the one name for the value/label/target columns of a table."""
    p.add_argument("--label-columns", type=comma_list, required=required, metavar="COL[,COL...]",
                   help=f"{help}; comma-separated")


def add_output_options(p, kind: str, help: str, *, required: bool = True) -> None:
    """``--out`` (``kind`` "file" or "folder") and ``--overwrite``."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', not {kind!r}")
    p.add_argument("--out", required=required, metavar="FILE" if kind == "file" else "DIR", help=help)
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace an existing output {kind} (default: refuse)")
    p.set_defaults(_out_kind=kind)


def shard(text: str) -> tuple[int, int]:
    """An argparse ``type`` for ``--shard I/N`` (:func:`dnalm.io.regions.parse_shard`)."""
    from dnalm.errors import InputError
    from dnalm.io.regions import parse_shard

    try:
        return parse_shard(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_selection_options(p, what: str, region_help: str = "") -> None:
    """``--region CHR[:START-END]|BED`` (repeatable) and ``--shard I/N``: the one work selection of the commands
    that split their input (:mod:`dnalm.io.regions`); ``what`` names the records ("records", "intervals")."""
    p.add_argument("--region", action="append", default=[], metavar="CHR[:START-END]|BED",
                   help=f"only {what} in this region (1-based inclusive, as samtools; a whole chromosome; or a BED "
                   f"file){region_help}; repeatable")
    p.add_argument("--shard", type=shard, default=None, metavar="I/N",
                   help=f"shard I of N: a contiguous run of the {what} (in input order) balanced by work, so N "
                   "runs cover the input exactly once; `dnalm merge-scores` gathers them in shard order")


def add_settings_options(p, *, what: str, example: str, config: bool = True, config_required: bool = False,
                         config_help: str | None = None) -> None:
    """``--config FILE`` and repeatable ``--set key=value`` (into ``args.set``)."""
    if config:
        p.add_argument("--config", metavar="FILE", required=config_required,
                       help=config_help or f"YAML file of {what}")
    p.add_argument("--set", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                   help=f"override a setting of {what}, e.g. --set {example} (repeatable; applied after --config)")


# ---------------------------------------------------------------------------------------------- at run time
def resolve_device(name: str | None) -> str:
    """``auto``/None -> cuda when available, else cpu; anything else is returned as given (checked when parsed)."""
    if name in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def torch_dtype(name: str | None):
    """``float32``/``bfloat16`` -> the torch dtype (None stays None: the weights' own dtype)."""
    if name is None:
        return None
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def setup_compute(args) -> tuple[str, object]:
    """Apply ``--threads`` and resolve ``--device``/``--dtype``: returns (device, torch dtype or None)."""
    import torch

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    return resolve_device(getattr(args, "device", None)), torch_dtype(getattr(args, "dtype", None))


def load_model(args, device: str | None = None, dtype=None, heads: bool = False):
    """The model of ``--model`` through the one loader (:func:`dnalm.models.load_model`), on device/dtype.

    Args:
        heads: a fine-tuned folder (``head.json``) loads as :class:`finetune.heads.SequenceModel` (backbone +
            head) instead of being refused.
    """
    from pathlib import Path

    from dnalm.models import load_model as _load

    device = device or "cpu"
    if heads and (Path(args.model) / "head.json").is_file():
        from finetune.heads import SequenceModel

        model = SequenceModel.load(args.model, device=device)
        return model.to(dtype=dtype) if dtype is not None else model
    return _load(args.model, device=device, dtype=dtype)


def load_settings(cls, args, extra: list[str] | None = None):
    """A settings dataclass from ``--config FILE`` and ``--set`` items through the one loader (:mod:`dnalm.config`).

    Args:
        cls: the settings dataclass.
        extra: ``key=value`` items applied last (the compute flags, see :func:`training_overrides`).
    """
    from dnalm.config import load_config

    sets = list(getattr(args, "set", []) or []) + list(extra or [])
    return load_config(cls, getattr(args, "config", None), sets)


def progress(args) -> bool:
    """Whether to show progress bars."""
    return not getattr(args, "no_progress", False)


def training_overrides(args, keys: dict[str, str]) -> list[str]:
    """``--set`` items that carry the compute flags into a training config (they win over --config and --set).

    Args:
        keys: flag meaning -> config key, among ``batch_size``, ``threads``, ``progress``, ``accelerator``,
            ``precision`` (e.g. ``{"batch_size": "batch_size", "progress": "progress_bar"}``).
    """
    out = []
    if "batch_size" in keys and getattr(args, "batch_size", None) is not None:
        out.append(f"{keys['batch_size']}={args.batch_size}")
    if "threads" in keys and getattr(args, "threads", 0):
        out.append(f"{keys['threads']}={args.threads}")
    if "progress" in keys and getattr(args, "no_progress", False):
        out.append(f"{keys['progress']}=false")
    dev = getattr(args, "device", "auto")
    if "accelerator" in keys and dev not in (None, "auto"):
        out.append(f"{keys['accelerator']}={'gpu' if dev.startswith('cuda') else dev}")
    if "precision" in keys and getattr(args, "dtype", "float32") == "bfloat16":
        out.append(f"{keys['precision']}=bf16-mixed")
    return out

"""Checked weight loading: a safetensors file against a module's tensors, before anything is allocated.

A model folder can lie in many ways: an empty, truncated or corrupt ``.safetensors`` file, missing or extra tensors,
tensors of the wrong shape, a ``config.json`` whose sizes would need petabytes, non-finite weights. Each is an
:class:`~dnalm.errors.InputError` naming the file and the tensor. The safetensors header (8-byte length + JSON, see
the format's specification) is read and checked against the file size and against the shapes the config implies,
computed on the ``meta`` device so that a lying config allocates nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from dnalm.errors import InputError

# safetensors dtype codes -> bytes per element (https://github.com/huggingface/safetensors, format section)
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
_MAX_HEADER = 100 * 2**20  # the reference implementation's limit


def read_safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of a safetensors file, after checking that the file holds every tensor's bytes.

    Raises:
        InputError: the file is missing, empty, truncated or not safetensors (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: the weights file is empty")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: not a safetensors file ({size} bytes, shorter than its 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > _MAX_HEADER or n > size - 8:
            raise InputError(
                f"{path}: not a safetensors file or truncated (header length {n:,} bytes, file {size:,} bytes)"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - n
    out = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise InputError(f"{path}: corrupt safetensors header entry for tensor {name!r}") from None
        if dtype not in _DTYPE_BYTES or any(d < 0 for d in shape):
            raise InputError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r} or a negative size {shape}")
        if end - start != math.prod(shape) * _DTYPE_BYTES[dtype] or start < 0:
            raise InputError(f"{path}: tensor {name!r}: its byte range does not match its shape {list(shape)} ({dtype})")
        if end > data_bytes:
            raise InputError(
                f"{path}: truncated: tensor {name!r} ends at byte {end:,} of the data, the file holds {data_bytes:,}"
            )
        out[name] = (dtype, shape)
    return out


def expected_tensors(build: Callable[[], nn.Module]) -> tuple[dict[str, tuple[int, ...]], list[set[str]]]:
    """Shapes of the tensors a module's state dict holds, built on the ``meta`` device (no memory used).

    Returns:
        ``({name: shape}, groups)`` where each group holds names that share one tensor (tied weights; a
        safetensors file stores one of them).
    """
    with torch.device("meta"):
        module = build()
    state = module.state_dict(keep_vars=True)
    by_id: dict[int, set[str]] = {}
    for name, t in state.items():
        by_id.setdefault(id(t), set()).add(name)
    return {k: tuple(v.shape) for k, v in state.items()}, list(by_id.values())


def check_against(
    path: str | os.PathLike, build: Callable[[], nn.Module], config_path: str | os.PathLike | None = None
) -> None:
    """Check a safetensors file's header against the module ``build()`` makes (on the meta device).

    Raises:
        InputError: naming the missing and extra tensors (a few of each, with counts) and the first shapes that
            differ, or a file that cannot hold them.
    """
    path = Path(path)
    found = read_safetensors_header(path)
    against = f" against {config_path}" if config_path else ""
    try:
        shapes, groups = expected_tensors(build)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{config_path or path}: the config does not describe a buildable model ({exc})") from None
    missing = sorted(min(g) for g in groups if not g & found.keys())
    unexpected = sorted(set(found) - set(shapes))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_few(unexpected)}")
    wrong = [
        f"{k} is {list(found[k][1])}, expected {list(shapes[k])}"
        for k in sorted(found.keys() & shapes.keys())
        if tuple(found[k][1]) != shapes[k]
    ]
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape: {_few(wrong, 3)}")
    if problems:
        raise InputError(f"{path}: the weights do not match the model{against}: " + "; ".join(problems))


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def load_checked(
    module: nn.Module, path: str | os.PathLike, config_path: str | os.PathLike | None = None
) -> nn.Module:
    """Load a safetensors file into ``module`` (already checked with :func:`check_against`); refuse non-finite values.

    Raises:
        InputError: the file cannot be read, or a tensor holds NaN/inf (the message names it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from None
    if missing or unexpected:  # check_against found none; kept for callers that skip it
        raise InputError(
            f"{path}: the weights do not match the model (missing {_few(sorted(missing))}; "
            f"unexpected {_few(sorted(unexpected))})"
        )
    check_finite(module, path)
    return module


def check_finite(module: nn.Module, path: str | os.PathLike) -> None:
    """Refuse a module whose parameters or buffers hold NaN or infinity, naming the first such tensor."""
    bad = []
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append(name)
    if bad:
        raise InputError(f"{path}: non-finite weights (NaN or inf) in {len(bad)} tensor(s): {_few(bad)}")


def describe_load_error(exc: BaseException) -> str:
    """torch.load's refusal without its advice to retry with ``weights_only=False`` (that would run the pickle)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    keep = [ln for ln in lines if "WeightsUnpickler error" in ln or "Unsupported global" in ln]
    keep = [ln for ln in keep or lines[:1] if "weights_only" not in ln.replace("weights_only=True", "")]
    body = " ".join(keep) or "the file holds objects other than tensors, which are never unpickled"
    return f"{type(exc).__name__}: {body}"

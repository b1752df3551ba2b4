"""Small shared helpers: atomic output files, data location, the JSON files of a model folder."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fresh_temp(path: Path, suffix: str) -> str:
    """A temporary file beside ``path`` with the permissions a plain ``open`` would give (mkstemp uses 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())
    return tmp


def data_dir() -> Path:
    """Folder of the shared real data sets: ``$DNALM_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("DNALM_DATA", "../shared/data"))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it into place only on success.

    A failed run therefore never leaves a half-written result behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_temp(path, ".tmp")
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that want a file name; rename on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(_fresh_temp(path, ".tmp" + "".join(path.suffixes)))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_model_json(path: str | os.PathLike, expect: dict[str, Any] | None = None, missing: str | None = None) -> dict:
    """The JSON object in a model folder's file (``config.json``, ``head.json``, ``oracle.json``, ...).

    Args:
        path: the JSON file.
        expect: ``{key: value}`` the file must hold (e.g. ``{"model_type": "dnalm"}``).
        missing: the error message when the file does not exist (default: ``PATH: no such file``).

    Raises:
        InputError: the file is missing, not valid JSON, not an object, or lacks an expected value.
    """
    from dnalm.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(missing or f"{path}: no such file")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise InputError(f"{path}: {key} is {meta.get(key)!r}, expected {value!r}")
    return meta


def lazy_exports(module_name: str, exports: dict[str, str], names: list[str]):
    """``__getattr__`` and ``__dir__`` for a package that exports ``{name: defining module}`` lazily (PEP 562):
    a name is imported on first use and then cached in the package, so ``import pkg`` stays cheap."""
    import importlib
    import sys

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[module_name], name, value)
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__

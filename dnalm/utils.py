"""Small shared helpers: data location, the JSON files of a model folder, lazy exports; the atomic output writers
are re-exported from :mod:`dnalm.io.output` (the one output writer)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dnalm.io.output import atomic_path, atomic_write, umask  # noqa: F401  (re-exported)


def data_dir() -> Path:
    """Folder of the shared real data sets: ``$DNALM_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("DNALM_DATA", "../shared/data"))


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

"""Strict configuration helpers: dataclasses from dicts/YAML and ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from dnalm.errors import ConfigError

T = TypeVar("T")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def parse_value(text: str, annotation: Any, key: str) -> Any:
    """Convert the string ``text`` to the type of a dataclass field (int, float, bool, str, list, None).

    Lists are comma-separated (``k=1,2,3``); ``none``/``null`` gives None where the field allows it.
    """
    import yaml

    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    if text.strip().lower() in ("none", "null", "~") and (optional or annotation is Any):
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return parse_value(text, args[0], key)
    if annotation is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: {text!r} is not a boolean (true/false)")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not an integer") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not a number") from None
    if annotation is str:
        return text
    if origin is list:
        inner = typing.get_args(annotation)[0] if typing.get_args(annotation) else Any
        parts = [p for p in text.split(",") if p.strip()]
        return [parse_value(p.strip(), inner, key) if inner in (int, float, str, bool) else yaml.safe_load(p) for p in parts]
    try:  # dicts and mixed types: YAML syntax
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot parse {text!r} ({exc})") from None


def from_dict(cls: type[T], d: dict | None, source: str = "config") -> T:
    """Instantiate dataclass ``cls`` from ``d``; an unknown key is a :class:`ConfigError` naming it."""
    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    try:
        return cls(**d)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def apply_overrides(obj: T, overrides: Sequence[str], source: str = "--set") -> T:
    """A copy of dataclass ``obj`` with ``key=value`` strings applied (``a.b=v`` sets key ``b`` of dict ``a``).

    Raises:
        ConfigError: for a malformed override or an unknown key (naming it and the known keys).
    """
    types = _field_types(type(obj))
    changes: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        head, _, rest = key.partition(".")
        if head not in types:
            raise ConfigError(f"{source} {item!r}: unknown key {head!r}; known keys: {', '.join(sorted(types))}")
        if rest:
            current = dict(changes.get(head, getattr(obj, head)) or {})
            import yaml

            current[rest] = yaml.safe_load(value)
            changes[head] = current
        else:
            changes[head] = parse_value(value, types[head], head)
    if not changes:
        return obj
    try:
        return dataclasses.replace(obj, **changes)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; errors name the file."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data

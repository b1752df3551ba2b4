"""The one strict configuration loader: YAML/JSON mappings into typed (nested) dataclasses, with ``--set`` overrides.

Every settings dataclass of dnalm (pretraining, fine-tuning, benchmarks, generator fine-tuning, oracle training, CRE
evaluation, the model's :class:`~dnalm.models.lm.LMConfig` and its mixer sub-configs) is loaded through here, so a
configuration problem always reads the same way: the full dotted key, what is wrong, and for a misspelt key the
closest known one::

    optim.lrr: unknown key; did you mean 'optim.lr'? (known: lr, weight_decay, ...)
    stages[1].steps: expected an integer, got str 'ten'

API (small on purpose; the CLI's ``--config FILE`` / ``--set KEY=VALUE`` flags call these):

- :func:`load_config` ``(cls, path=None, overrides=(), *, data=None)``: read a YAML/JSON file (or start from
  ``data``, a dict or an instance), apply ``--set`` strings, build ``cls`` strictly.
- :func:`apply_overrides` ``(cfg, ["a.b.c=value", ...])``: a new instance of ``type(cfg)`` with the overrides.
- :func:`from_dict` ``(cls, mapping, prefix="")``: build ``cls`` strictly from a mapping.
- :func:`overrides_dict` ``(cls, ["a.b=1"])``: only the overrides, as a typed nested mapping checked against ``cls``.
- :func:`to_dict` ``(cfg)``: the plain mapping that :func:`from_dict` reads back.
- :func:`parse_text` ``(text, type, key)``: one ``k=v`` string typed like ``--set`` does (task-spec queries).
- :func:`deep_merge` ``(base, over)``: merge nested mappings (a preset with its overrides).
- :func:`read_mapping` ``(path)``: a YAML/JSON file's top-level mapping (binary, non-UTF-8, unparsable or
  non-mapping files are refused naming the file).

Types understood: ``int``, ``float`` (finite: NaN and infinity are refused), ``bool``, ``str``, ``list[X]``,
``tuple[X, ...]``, ``X | None``, ``Literal[...]``, ``dict`` (free-form), ``dict[str, X]``, ``Any`` and nested
dataclasses. Conversions are the safe ones only: an integral float to ``int`` (``2.0``), an int to ``float``, a numeric string to ``float`` (YAML 1.1 reads
``1e-3`` without a dot as a string), a number to ``str``; ``"x"`` for a float, ``1.5`` for an int or ``"yes"`` for a
bool in a file are errors. A dataclass's ``__post_init__`` checks run on the built object and their
:class:`~dnalm.errors.ConfigError` gets the dotted prefix.

``--set`` syntax: ``a.b.c=value``; list items by index (``stages.1.steps=100`` or ``stages[1].steps=100``); the value
is typed by the target field (``true/false/yes/no/on/off`` for booleans; YAML flow syntax ``[chr2, chr3]`` or a
comma-separated ``1,2,3`` for lists; ``null``/``none`` where the field is optional); inside a free-form ``dict``
field the value is parsed as YAML.

Why hand-written: the libraries that could do this fit less well. pydantic (present here only as another package's
dependency) validates dataclasses, but its lax mode coerces strings such as ``"1"`` to booleans, its strict mode
refuses the string YAML 1.1 makes of ``1e-3``, and it has neither suggestions nor typed dotted overrides with list
indices; OmegaConf (not installed) has struct mode and dotlists but no suggestions and is one more dependency.
The rules above take about 400 lines on the standard library plus ``rapidfuzz`` (which ranks the suggestions).
This module imports only the standard library at import time (``yaml``/``rapidfuzz`` lazily), so ``dnalm.models``
can use it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from dnalm.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "ConfigError", "apply_overrides", "deep_merge", "from_dict", "load_config", "overrides_dict", "parse_text",
    "read_mapping", "suggest", "to_dict", "unknown_key_error",
]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~", ""}


# ---------------------------------------------------------------------------------------------------- helpers
def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The choice closest to ``word`` (a misspelling), or None when nothing is close."""
    from rapidfuzz import fuzz, process

    choices = [str(c) for c in choices]
    if not choices:
        return None
    hit = process.extractOne(str(word), choices, scorer=fuzz.ratio, score_cutoff=60)
    if hit is None:  # a prefix or a different case: 'max_step', 'LR'
        low = str(word).lower()
        hit = next(((c, 0, 0) for c in choices if c.lower() == low or (len(low) > 2 and c.startswith(low))), None)
    return hit[0] if hit else None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def unknown_key_error(prefix: str, key: str, known: Sequence[str]) -> ConfigError:
    """The one wording of an unknown key: dotted key, suggestion, the known keys."""
    close = suggest(key, known)
    hint = f"; did you mean {_join(prefix, close)!r}?" if close else ""
    return ConfigError(f"{_join(prefix, key)}: unknown key{hint} (known: {', '.join(known)})")


def _hints(cls) -> dict[str, Any]:
    """Resolved field types of dataclass ``cls`` (an unresolvable annotation is a bug there, so it raises)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, getattr(types, "UnionType", typing.Union))


def _type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        return " or ".join(_type_name(a) if a is not type(None) else "null" for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        inner = _type_name(args[0]) if args else "anything"
        return f"list of {inner}"
    if origin is dict or tp is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return {int: "integer", float: "number", bool: "boolean (true/false)", str: "string"}.get(tp, str(tp))


class _Raw(str):
    """A ``--set`` value as typed on the command line; converted by the target field's type."""


def _parse_yaml_text(text: str, key: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot parse {text!r} ({exc})") from None


# ---------------------------------------------------------------------------------------------------- conversion
def convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a :class:`ConfigError` naming ``key`` and the expected type."""
    if tp is Any or tp is typing.Any:
        return _parse_yaml_text(str(value), key) if isinstance(value, _Raw) else copy.deepcopy(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, _Raw):
        value = _from_text(str(value), tp, key)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if _is_union(tp):
        inner = [a for a in args if a is not type(None)]
        if value is None:
            if len(inner) < len(args):
                return None
            raise bad
        if len(inner) == 1:  # Optional[X]: X's own message (e.g. an unknown key inside a sub-config)
            return convert(value, inner[0], key)
        for a in inner:
            try:
                return convert(value, a, key)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        close = suggest(str(value), [str(a) for a in args])
        hint = f"; did you mean {close!r}?" if close else ""
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(repr(a) for a in args)}{hint}")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if value is None and (origin is list or tp is list):
            return []
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}: {list(value)!r}")
            return tuple(convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise bad
        if len(args) == 2 and args[1] is not Any:
            return {str(k): convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
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
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                raise bad from None
        else:
            raise bad
        if not math.isfinite(number):  # no setting means NaN or infinity; both pass every `< 0` check silently
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. precision: 32
        raise bad
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # a bug in a settings dataclass


def parse_text(text: str, tp: Any, key: str) -> Any:
    """A string typed on a command line or in a query (``k=v``) as a value of type ``tp`` (``--set`` rules)."""
    return convert(_Raw(text), tp, key)


def _from_text(text: str, tp: Any, key: str) -> Any:
    """A ``--set`` string as a value of type ``tp`` (then checked by :func:`convert`)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    stripped = text.strip()
    if _is_union(tp) and type(None) in args:
        if stripped.lower() in _NONE:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _from_text(text, inner[0], key)
    if tp is str:
        return text
    if tp is bool:
        if stripped.lower() in _TRUE | _FALSE:
            return stripped.lower() in _TRUE
        raise ConfigError(f"{key}: expected a boolean (true/false), got {text!r}")
    if origin is Literal and all(isinstance(a, str) for a in args):
        return stripped
    if origin in (list, tuple) or tp in (list, tuple):
        if stripped.startswith("[") or not stripped:
            return _parse_yaml_text(stripped or "[]", key)
        inner = args[0] if args else Any
        parts = [p.strip() for p in stripped.split(",") if p.strip()]
        return [p if inner is str else _parse_yaml_text(p, key) for p in parts]
    return _parse_yaml_text(text, key)


# ---------------------------------------------------------------------------------------------------- dataclasses
def from_dict(cls: type[T], raw: dict | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` strictly from ``raw``: unknown keys and wrong types name the dotted key.

    Args:
        cls: a dataclass type.
        raw: the mapping (None = all defaults).
        prefix: the dotted path of this mapping inside the whole config, used in messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: an unknown key (with a suggestion), a wrong type, a missing required key, or a check of
            the dataclass's ``__post_init__`` (prefixed with the dotted path).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping ({cls.__name__}), got {type(raw).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for k, v in raw.items():
        key = _join(prefix, str(k))
        if k not in hints:
            raise unknown_key_error(prefix, str(k), list(hints))
        kwargs[k] = convert(v, hints[k], key)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: missing (required)")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if not prefix or msg.startswith(prefix) else f"{prefix}: {msg}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> Any:
    """The plain mapping of a (nested) dataclass instance; tuples become lists (JSON/YAML-ready)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return copy.deepcopy(cfg)


def deep_merge(base: dict, over: dict) -> dict:
    """Merge mapping ``over`` into ``base`` in place (nested mappings merge, anything else replaces); returns base."""
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _split_key(dotted: str) -> list[str]:
    """``"stages[1].steps"`` / ``"stages.1.steps"`` -> ``["stages", "1", "steps"]``."""
    return [p for p in re.split(r"[.\[\]]+", dotted.strip()) if p]


def _set_one(raw: dict, cls: Any, assignment: str) -> None:
    """Apply one ``a.b.c=value`` to the raw mapping of dataclass ``cls`` (walking types for the messages)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE (e.g. optim.lr=1e-3)")
    dotted, _, text = assignment.partition("=")
    parts = _split_key(dotted)
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    node: Any = raw
    tp: Any = cls
    where = ""  # the dotted path walked so far, list items as [i]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if _is_union(tp):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = inner[0] if len(inner) == 1 else Any
        parent = node
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {dotted}: {where or 'config'}: no list item {part!r} (the list has "
                                  f"{len(node)} items)")
            args = typing.get_args(tp)
            tp = args[0] if args else Any  # list[X] / tuple[X, ...] items are X
            idx = int(part)
            if last:
                node[idx] = _Raw(text)
                return
            if node[idx] is None:
                node[idx] = {}
            node = node[idx]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {where} is {type(node).__name__} {node!r}, not a mapping")
            if dataclasses.is_dataclass(tp):
                hints = _hints(tp)
                if part not in hints:
                    raise ConfigError(f"--set {unknown_key_error(where, part, list(hints))}")  # names the key once
                tp = hints[part]
            elif typing.get_origin(tp) is dict and len(typing.get_args(tp)) == 2:
                tp = typing.get_args(tp)[1]
            else:
                tp = Any  # inside a free-form mapping (e.g. model.overrides)
            if last:
                node[part] = _Raw(text) if tp is not Any else _parse_yaml_text(text, _join(where, part))
                return
            if node.get(part) is None:
                origin = typing.get_origin(tp)
                if origin in (list, tuple):
                    raise ConfigError(f"--set {dotted}: {_join(where, part)} is empty, so it has no items")
                node[part] = {}
            node = node[part]
        where = f"{where}[{part}]" if isinstance(parent, list) else _join(where, part)


def overrides_dict(cls: type, overrides: Sequence[str]) -> dict:
    """The nested mapping of only the ``--set`` items, typed and checked against dataclass ``cls`` (for a library
    that merges partial settings into something else, e.g. an imported checkpoint's inferred model config).

    ``overrides_dict(LMConfig, ["hyena.shift=0.05", "dropout=0.1"])`` -> ``{"hyena": {"shift": 0.05}, "dropout": 0.1}``.
    """
    raw: dict = {}
    for item in overrides or ():
        _set_one(raw, cls, item)
    return _typed_partial(raw, cls, "")


def _typed_partial(raw: Any, tp: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(raw, dict) and not isinstance(raw, _Raw):
        hints = _hints(tp)
        return {k: _typed_partial(v, hints[k], _join(key, k)) for k, v in raw.items()}
    return convert(raw, tp, key)


def apply_overrides(cfg: T, overrides: Sequence[str], source: str | None = None) -> T:
    """A new instance of ``type(cfg)`` with ``--set`` style ``"a.b.c=value"`` strings applied in order.

    Args:
        cfg: a dataclass instance.
        overrides: ``KEY=VALUE`` strings (see the module docstring).
        source: where the strings came from, prefixed to messages (default none: ``--set`` is in the message).

    Returns:
        A new, fully checked instance (``cfg`` is not modified).
    """
    if not overrides:
        return cfg
    raw = to_dict(cfg)
    try:
        for item in overrides:
            _set_one(raw, type(cfg), item)
        return from_dict(type(cfg), raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None


def read_mapping(path: str | os.PathLike) -> dict:
    """The top-level mapping of a YAML or JSON file (``.json`` is read as JSON, anything else as YAML).

    Raises:
        ConfigError: naming the file when it is missing, binary or not UTF-8, not parsable, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path}: a binary file, not a YAML/JSON config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a config is a YAML/JSON text file") from None
    if path.suffix.lower() == ".json":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    else:
        import yaml

        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(parsed).__name__}")
    return parsed


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    *,
    data: dict | Any | None = None,
) -> T:
    """Build ``cls`` from a YAML/JSON file (or ``data``) and ``--set`` overrides, strictly.

    Args:
        cls: the settings dataclass.
        path: YAML/JSON file (None: start from ``data`` or the defaults).
        overrides: ``KEY=VALUE`` strings applied after the file.
        data: a mapping or an instance of ``cls`` to start from (e.g. a command's flags); the file's keys are
            merged over it, then the overrides applied.

    Returns:
        The instance.

    Raises:
        ConfigError: naming the file (when there is one) and the dotted key.
    """
    if data is None:
        raw = {}
    elif dataclasses.is_dataclass(data) and not isinstance(data, type):
        raw = to_dict(data)
    else:
        raw = copy.deepcopy(dict(data))
    if path is not None:
        raw = deep_merge(raw, read_mapping(path))
    try:
        for item in overrides or ():
            _set_one(raw, cls, item)
        return from_dict(cls, raw)
    except ConfigError as exc:  # a --set item's own error is not the file's
        named = path is not None and not str(exc).startswith("--set ")
        raise ConfigError(f"{path}: {exc}" if named else str(exc)) from None

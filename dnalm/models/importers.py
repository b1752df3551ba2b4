"""One entry for models people bring: detect a checkpoint's format, convert it, cache conversions by content.

Formats (:func:`detect_format`): ``dnalm`` (a dnalm model folder, used as it is), ``hyenadna`` (every layout
:mod:`dnalm.models.hyenadna_import` reads), ``mamba_ssm`` (``MambaLMHeadModel`` folders, :mod:`.mamba_ssm_format`)
and ``caduceus`` (:mod:`.caduceus_format`). :func:`resolve_model` is what ``--model`` uses: a dnalm folder passes
through; anything importable is converted once into a cache folder named by the SHA-256 of its files
(``$DNALM_CACHE``, else ``$XDG_CACHE_HOME/dnalm``, else ``~/.cache/dnalm``), so a second use costs one hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from dnalm.errors import InputError

FORMATS = ("dnalm", "hyenadna", "mamba_ssm", "caduceus")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.bin``/``.pt`` state dict read with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
            raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: not a state dict readable with weights_only=True ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or not all(torch.is_tensor(v) for v in raw.values()):
        raise InputError(f"{path}: expected a dict of tensors")
    return {str(k): v for k, v in raw.items()}


def _config(folder: Path) -> dict | None:
    from dnalm.utils import read_model_json

    path = folder / "config.json"
    return read_model_json(path) if path.is_file() else None


def _weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: no weights (looked for {', '.join(WEIGHT_FILES)})")


def detect_format(src: str | os.PathLike) -> str:
    """The format of a model folder or checkpoint file: one of :data:`FORMATS`.

    Decided by ``config.json`` (model_type "dnalm" or "caduceus"; mamba_ssm's MambaConfig keys), else by the tensor
    names (``backbone.embedding.weight`` is mamba_ssm's, ``...mamba_fwd...`` Caduceus's), else HyenaDNA.
    """
    from dnalm.models.mamba_ssm_format import is_mamba_ssm_config

    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        cfg = _config(path) or {}
        if cfg.get("model_type") == "dnalm":
            return "dnalm"
        if cfg.get("model_type") == "caduceus":
            return "caduceus"
        if is_mamba_ssm_config(cfg):
            return "mamba_ssm"
        weights = next((path / n for n in WEIGHT_FILES if (path / n).is_file()), None)
        if weights is not None and weights.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(weights), "pt") as fh:
                keys = list(fh.keys())
            if "backbone.embedding.weight" in keys:
                return "mamba_ssm"
            if any(".mamba_fwd." in k for k in keys):
                return "caduceus"
    return "hyenadna"


def import_model(src: str | os.PathLike, out_dir: str | os.PathLike | None = None, format: str | None = None,
                 **hyenadna_options):
    """Convert a model people bring into a dnalm model.

    Args:
        src: a HyenaDNA checkpoint (file or folder), a mamba_ssm ``MambaLMHeadModel`` folder, a Caduceus folder, or
            a dnalm folder (loaded as it is).
        out_dir: also write the model there (``save_pretrained``).
        format: skip detection (one of :data:`FORMATS`).
        **hyenadna_options: ``config_overrides`` / ``hyenadna_config`` for HyenaDNA checkpoints.

    Returns:
        The :class:`~dnalm.models.lm.DNALM` in eval mode; ``model.import_info["format"]`` says what was found.
    """
    fmt = format or detect_format(src)
    if fmt not in FORMATS:
        raise InputError(f"unknown model format {fmt!r}; formats: {', '.join(FORMATS)}")
    folder = Path(src)
    if fmt == "dnalm":
        from dnalm.models.lm import load_model

        model = load_model(folder)
        model.import_info = {"format": "dnalm", "source": str(folder)}
    elif fmt == "hyenadna":
        from dnalm.models.hyenadna_import import import_hyenadna

        model = import_hyenadna(src, **hyenadna_options)
        model.import_info = {"format": "hyenadna", **model.import_info}
    else:
        if not folder.is_dir():
            raise InputError(f"{folder}: a {fmt} model is a folder with config.json and its weights")
        cfg = _config(folder)
        if cfg is None:
            raise InputError(f"{folder}: no config.json")
        tensors = read_state_dict(_weights(folder))
        if fmt == "mamba_ssm":
            from dnalm.models.mamba_ssm_format import import_mamba_ssm

            model = import_mamba_ssm(folder, tensors, cfg)
        else:
            from dnalm.models.caduceus_format import import_caduceus

            model = import_caduceus(folder, tensors, cfg)
        model.import_info = {"format": fmt, "source": str(folder), "ignored_keys": [], "notes": []}
    if out_dir is not None:
        model.save_pretrained(out_dir, extra={"imported_from": str(src), "import_format": fmt})
    return model


def cache_dir() -> Path:
    """Where on-the-fly conversions are kept."""
    if os.environ.get("DNALM_CACHE"):
        return Path(os.environ["DNALM_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dnalm"


def content_hash(src: str | os.PathLike) -> str:
    """SHA-256 over the names and bytes of a file, or of every file in a folder (sorted, recursively)."""
    path = Path(src)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def resolve_model(src: str | os.PathLike) -> Path:
    """A dnalm model folder for ``src``: itself if it is one, else its cached conversion (made on first use)."""
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    fmt = detect_format(path)
    if fmt == "dnalm":
        return path
    target = cache_dir() / "imported" / content_hash(path)[:32]
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    try:
        import_model(path, out_dir=target, format=fmt)
    except InputError as exc:
        raise InputError(f"{path}: not a dnalm model folder, and importing it as {fmt} failed: {exc}") from None
    return target


def dnalm_folder(src: str | os.PathLike) -> Path:
    """``src`` if it is a dnalm model folder, else the cached conversion of the checkpoint it names (HyenaDNA,
    mamba_ssm or Caduceus; see :func:`dnalm.models.importers.resolve_model`)."""
    path = Path(src)
    cfg = path / "config.json"
    if not path.exists():
        return path
    if cfg.is_file():
        from dnalm.utils import read_model_json

        try:
            if read_model_json(cfg).get("model_type") == "dnalm":
                return path
        except InputError:
            return path  # read_model_config reports it
    return resolve_model(path)

"""The one gzip/bgzip detector and opener: compression from a file's first bytes (never its name).

BGZF (bgzip) is gzip-compatible, so one reader serves both; :func:`compression` tells them apart for the
genome reader, which needs BGZF for random access.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"
# the empty block every complete BGZF file ends with (SAM/BAM specification, section 4.1.2)
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def compression(path: str | os.PathLike) -> str:
    """``"plain"``, ``"bgzf"``, ``"gzip"`` (ordinary gzip) or ``"other-compressed"`` (bzip2, xz, zstd), from the
    first bytes of ``path``."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != GZIP_MAGIC:
        if head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x28\xb5\x2f\xfd":
            return "other-compressed"
        return "plain"
    # BGZF: gzip with FEXTRA set and a 'BC' extra subfield (SAM/BAM specification, section 4.1)
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (gzip or bgzip)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_maybe_gzip(path: str | os.PathLike, mode: str = "rt", **kwargs) -> IO:
    """Open a plain, gzip or bgzip file for reading, detected from its magic bytes.

    Args:
        path: the file.
        mode: ``"rt"`` (text, the default) or ``"rb"``.
        **kwargs: passed to :func:`open` / :func:`gzip.open` (``encoding``, ``errors``, ``newline``).
    """
    if mode not in ("rt", "rb", "r"):
        raise ValueError(f"open_maybe_gzip reads only (mode 'rt' or 'rb'), got {mode!r}")
    mode = "rt" if mode == "r" else mode
    if is_gzip(path):
        return gzip.open(Path(path), mode, **kwargs)
    return open(path, mode, **kwargs)


def check_complete_bgzf(path: str | os.PathLike) -> None:
    """Refuse a BGZF (bgzip) file that lacks its end-of-file block: a truncated download or copy.

    Raises:
        InputError: naming the file.
    """
    from dnalm.errors import InputError

    path = Path(path)
    if compression(path) != "bgzf":
        return
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - len(BGZF_EOF)))
        tail = fh.read()
    if tail != BGZF_EOF:
        raise InputError(
            f"{path}: truncated: the bgzip file lacks its end-of-file block (an interrupted download or copy?)"
        )

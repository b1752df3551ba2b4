"""Whether a FASTA's ``.fai`` (and ``.gzi``) index still describes the file, judged from the file's bytes.

A FASTA edited after its index was built is read through the stale index without any error: the sequences come
out shifted. Time stamps cannot tell (copies and checkouts reset them), so this module checks the content: for
each indexed record (all of them, or an even sample of a very large index) the line before its offset must be its
``>name`` header, and its last line must end where the index says, followed by the next header or the end of the
file. A bgzip file is read through its ``.gzi`` block index, whose offsets must point at BGZF blocks. Hand-written
because htslib checks none of this; it costs a few small reads per record.
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from pathlib import Path

MAX_CHECKED = 5000  # records checked in a very large index (an even sample, always the first and the last)
_BGZF_HEAD = b"\x1f\x8b\x08\x04"


class _Reader:
    """Reads uncompressed bytes at any offset of a plain file or of a bgzip file with its .gzi."""

    def __init__(self, path: Path, compressed: bool):
        self.fh = open(path, "rb")
        self.size = os.fstat(self.fh.fileno()).st_size
        self.blocks: list[tuple[int, int]] | None = None
        if compressed:
            self.blocks = [(0, 0)] + _read_gzi(Path(f"{path}.gzi"))

    def close(self) -> None:
        self.fh.close()

    def read(self, start: int, n: int) -> bytes:
        start = max(start, 0)
        if self.blocks is None:
            self.fh.seek(start)
            return self.fh.read(n)
        i = bisect.bisect_right([u for _, u in self.blocks], start) - 1
        c_off, u_off = self.blocks[i]
        out = bytearray()
        while len(out) < start - u_off + n:
            data = self._block(c_off)
            if data is None:
                break
            block, c_off = data
            out += block
        return bytes(out[start - u_off : start - u_off + n])

    def _block(self, c_off: int) -> tuple[bytes, int] | None:
        """The uncompressed bytes of the BGZF block at ``c_off`` and the next block's offset (None at the end)."""
        self.fh.seek(c_off)
        head = self.fh.read(18)
        if not head:
            return None
        if len(head) < 18 or head[:4] != _BGZF_HEAD or head[12:14] != b"BC":
            raise _Stale(f"byte {c_off:,} does not start a bgzip block (the .gzi does not match the file)")
        size = struct.unpack_from("<H", head, 16)[0] + 1
        raw = head + self.fh.read(size - 18)
        try:
            return zlib.decompress(raw, 31), c_off + size
        except zlib.error:
            raise _Stale(f"the bgzip block at byte {c_off:,} is corrupt or truncated") from None

    def total(self) -> int:
        """Uncompressed size of the whole file."""
        if self.blocks is None:
            return self.size
        c_off, u_off = self.blocks[-1]
        while (data := self._block(c_off)) is not None:
            block, c_off = data
            u_off += len(block)
        return u_off


class _Stale(Exception):
    pass


def _read_gzi(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    if len(data) < 8:
        raise _Stale(f"{path.name} is truncated")
    (n,) = struct.unpack_from("<Q", data)
    if len(data) != 8 + 16 * n:
        raise _Stale(f"{path.name} has {len(data):,} bytes, not the {8 + 16 * n:,} its {n:,} entries need")
    values = struct.unpack_from(f"<{2 * n}Q", data, 8)
    return list(zip(values[0::2], values[1::2]))


def _read_fai(path: Path) -> list[tuple[str, int, int, int, int]]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        cols = line.split("\t")
        try:
            rows.append((cols[0], int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4])))
        except (IndexError, ValueError):
            raise _Stale(f"{path.name} line {i} is not a faidx line") from None
    return rows


def stale_index_reason(fasta: str | os.PathLike, compressed: bool) -> str | None:
    """Why the index of ``fasta`` does not describe it (its first problem), or None when it does."""
    fasta = Path(fasta)
    try:
        entries = _read_fai(Path(f"{fasta}.fai"))
        reader = _Reader(fasta, compressed)
    except _Stale as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read the index ({exc})"
    try:
        if reader.blocks is not None:
            for c_off, _ in reader.blocks[1 :: max(1, len(reader.blocks) // 64)]:
                reader.fh.seek(c_off)
                if c_off >= reader.size or reader.fh.read(4) != _BGZF_HEAD:
                    return f"the .gzi points at byte {c_off:,}, which does not start a bgzip block"
        total = reader.total()
        step = max(1, len(entries) // MAX_CHECKED)
        picks = sorted(set(range(0, len(entries), step)) | {len(entries) - 1}) if entries else []
        for k in picks:
            name, length, offset, line_bases, line_width = entries[k]
            if line_bases <= 0 or line_width < line_bases:
                return f"record {name!r}: impossible line lengths in the .fai"
            full, rem = divmod(length, line_bases)
            end = offset + full * line_width + (rem + line_width - line_bases if rem else 0)
            head = f">{name}".encode()
            before = reader.read(offset - 1024, min(offset, 1024)).rsplit(b"\n", 2)
            header_line = before[-2] if len(before) >= 2 and before[-1] == b"" else b""
            if not (header_line.split()[:1] == [head] or header_line.rstrip(b"\r") == head):
                return f"record {name!r}: the line before byte {offset:,} is not its header"
            if end > total:
                return f"record {name!r} would end at byte {end:,}, past the end of the file ({total:,} bytes)"
            tail = reader.read(end - 1, 2)
            if line_width > line_bases and tail[:1] != b"\n":
                return f"record {name!r}: its last line does not end at byte {end:,} as the index says"
            if len(tail) > 1 and tail[1:2] not in (b">", b"\n", b"\r", b" "):
                return f"record {name!r}: more sequence follows byte {end:,}, where the index says it ends"
        return None
    except _Stale as exc:
        return str(exc)
    finally:
        reader.close()

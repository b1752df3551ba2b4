"""Random access to a reference genome: indexed FASTA (plain or bgzip), 0-based half-open coordinates.

``Genome(path).fetch(chrom, start, end, strand="+", pad=False)`` returns the upper-case sequence of
``[start, end)``; ``strand="-"`` gives its reverse complement; ``pad=True`` fills the part that lies past a
chromosome end with ``N``. Chromosome names resolve through aliases (``chr1`` == ``1``, ``chrM`` == ``MT`` ==
``M``, ``chrI`` == ``I``; ``chr01`` == ``chrI`` where the genome numbers its chromosomes in roman numerals).

pysam (htslib faidx) does the reading; this module only checks the file, builds a missing index and keeps one
file handle per process, so a ``Genome`` can be handed to DataLoader workers (forked or spawned).
"""

from __future__ import annotations

import difflib
import logging
import operator
import os
import re
import tempfile
from pathlib import Path

import pysam

from dnalm.errors import InputError
from dnalm.io.compression import check_complete_bgzf, compression
from dnalm.tokenizer import reverse_complement

log = logging.getLogger(__name__)

# names of the mitochondrial genome in common assemblies (UCSC, Ensembl, NCBI, WormBase, SGD)
_MITO_NAMES = {"m", "mt", "mtdna", "mito", "mitochondrion", "mitochondria", "chrm", "chrmt"}
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}
_ROMAN_RE = re.compile(r"^(?=[IVXLC])C{0,3}(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")


def _roman_to_int(text: str) -> int | None:
    """Value of an upper-case roman numeral up to 399, else None."""
    if not _ROMAN_RE.match(text):
        return None
    total = 0
    for i, ch in enumerate(text):
        value = _ROMAN[ch]
        total += -value if i + 1 < len(text) and _ROMAN[text[i + 1]] > value else value
    return total


def _strip_chr(name: str) -> str:
    """``chr1`` -> ``1``, ``Chr1`` -> ``1``, ``chromosome1`` -> ``1``; other names unchanged."""
    lower = name.lower()
    for prefix in ("chromosome", "chrom", "chr"):
        if lower.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :].lstrip("_")
    return name


def _alias_key(name: str) -> str:
    """Case-insensitive key shared by all spellings of one chromosome name."""
    if name.lower() in _MITO_NAMES:
        return "<mito>"
    core = _strip_chr(name)
    if core.lower() in _MITO_NAMES:
        return "<mito>"
    if core.isdigit():
        return str(int(core))  # chr01 == chr1
    return core.upper()


def _folder_writable(folder: Path) -> bool:
    """Whether a new file can be created in ``folder`` (tried for real: os.access misses read-only mounts)."""
    if not os.access(folder, os.W_OK):
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dnalm-write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


class Genome:
    """An indexed FASTA genome with chromosome aliases and 0-based half-open ``fetch``.

    Args:
        path: FASTA file, plain or bgzip-compressed (``.fa.gz`` with ``.fai`` and ``.gzi``). A missing
            index is built beside the file; a read-only folder or an ordinary-gzip file is an
            :class:`InputError` that says how to fix it (``dnalm prepare-genome``).

    Attributes:
        path: the FASTA path.
        chrom_sizes: ``{name: length}`` in file order, names as written in the FASTA.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: genome FASTA not found")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder; give the FASTA file inside it (e.g. NAME.fa.gz)")
        kind = compression(self.path)
        if kind == "gzip":
            raise InputError(
                f"{self.path}: compressed with ordinary gzip, which cannot be indexed for random access. "
                f"Recompress it with bgzip (`bgzip -d {self.path}`, then `bgzip` the .fa it leaves), or run "
                f"`dnalm prepare-genome {self.path} --out DIR`, which also checks it and writes the index."
            )
        if kind == "other-compressed":
            raise InputError(
                f"{self.path}: compressed with bzip2/xz/zstd; decompress it, or run "
                f"`dnalm prepare-genome {self.path} --out DIR` after decompressing"
            )
        self.compressed = kind == "bgzf"
        if self.compressed:
            check_complete_bgzf(self.path)
        self._ensure_index()
        self._handle: pysam.FastaFile | None = None
        self._pid: int | None = None
        fasta = self._fasta()
        self.chrom_sizes: dict[str, int] = dict(zip(fasta.references, fasta.lengths))
        if not self.chrom_sizes:
            raise InputError(f"{self.path}: the FASTA index lists no sequences")
        self._aliases = self._build_aliases(list(self.chrom_sizes))

    # ----------------------------------------------------------------------------------------- file handling
    def _index_paths(self) -> list[Path]:
        paths = [Path(f"{self.path}.fai")]
        if self.compressed:
            paths.append(Path(f"{self.path}.gzi"))
        return paths

    def _ensure_index(self) -> None:
        from dnalm.io.fai_check import stale_index_reason

        missing = [p for p in self._index_paths() if not p.exists()]
        if not missing:
            reason = stale_index_reason(self.path, self.compressed)
            if reason is None:
                return
            folder = self.path.resolve().parent
            names = " and ".join(p.name for p in self._index_paths())
            if not _folder_writable(folder):
                raise InputError(
                    f"{self.path}: the FASTA index ({names}) does not match the file ({reason}): the FASTA was "
                    f"changed after it was indexed, and the folder {folder} is read-only. Rebuild the index "
                    f"(`samtools faidx`) or write a clean copy with `dnalm prepare-genome {self.path} --out DIR`."
                )
            log.warning("warning: %s: the FASTA index does not match the file (%s); rebuilding it", self.path, reason)
            missing = self._index_paths()
            for p in missing:
                p.unlink(missing_ok=True)
        folder = self.path.resolve().parent
        names = " and ".join(p.name for p in missing)
        if not _folder_writable(folder):
            raise InputError(
                f"{self.path}: the FASTA index ({names}) is missing and the folder {folder} is read-only, "
                "so it cannot be built there. Write an indexed copy into a folder you can write with "
                f"`dnalm prepare-genome {self.path} --out DIR` (or copy the FASTA and run `samtools faidx`)."
            )
        try:
            pysam.faidx(str(self.path))
        except (pysam.SamtoolsError, OSError) as exc:
            for p in missing:  # faidx may leave a partial index behind
                p.unlink(missing_ok=True)
            raise InputError(
                f"{self.path}: could not build the FASTA index ({exc}). faidx needs every sequence line of a "
                "record to have the same length; `dnalm prepare-genome` checks the file, names the offending "
                "record and line, and writes a clean bgzip copy."
            ) from None

    def _fasta(self) -> pysam.FastaFile:
        """This process's handle, opened on first use and again after a fork (DataLoader workers)."""
        pid = os.getpid()
        if self._handle is None or self._pid != pid:
            # a forked child must not share the parent's htslib file offset; drop the inherited handle
            self._handle = None
            try:
                self._handle = pysam.FastaFile(str(self.path))
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: cannot open as an indexed FASTA: {exc}") from None
            self._pid = pid
        return self._handle

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next fetch)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None
        self._pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None  # spawned workers open their own
        state["_pid"] = None
        return state

    # --------------------------------------------------------------------------------------------- names
    @staticmethod
    def _build_aliases(names: list[str]) -> dict[str, str]:
        """alias key -> FASTA name, for keys that name exactly one sequence."""
        by_key: dict[str, list[str]] = {}
        for name in names:
            by_key.setdefault(_alias_key(name), []).append(name)
        # numbered chromosomes written as roman numerals (yeast chrI..chrXVI): accept 1..n and chr01 too.
        # Only when the roman names run I..n without gaps, so that C. elegans' X stays X and never means 10.
        roman = {}
        for key in by_key:
            value = _roman_to_int(key)
            if value is not None:
                roman[value] = key
        if len(roman) >= 2 and sorted(roman) == list(range(1, len(roman) + 1)):
            for value, key in roman.items():
                by_key.setdefault(str(value), []).extend(by_key[key])
        return {key: found[0] for key, found in by_key.items() if len(set(found)) == 1}

    @property
    def names(self) -> list[str]:
        """Sequence names in file order."""
        return list(self.chrom_sizes)

    chroms = names  # alias: the chromosome names in file order

    def resolve(self, chrom: str) -> str:
        """The FASTA name for ``chrom`` (exact or through an alias); else InputError listing close names."""
        chrom = str(chrom)
        if chrom in self.chrom_sizes:
            return chrom
        found = self._aliases.get(_alias_key(chrom))
        if found is not None:
            return found
        raise InputError(self._unknown_message(chrom))

    def close_names(self, chrom: str, n: int = 5) -> list[str]:
        """Sequence names that look like ``chrom`` (for "did you mean" messages)."""
        names = self.names
        close = difflib.get_close_matches(chrom, names, n=n, cutoff=0.6)
        if not close:
            stripped = difflib.get_close_matches(
                _strip_chr(chrom), [_strip_chr(x) for x in names], n=n, cutoff=0.6
            )
            close = [x for x in names if _strip_chr(x) in stripped]
        return close

    def _unknown_message(self, chrom: str) -> str:
        names = self.names
        close = self.close_names(chrom)
        listing = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return f"{self.path}: unknown chromosome {chrom!r}; {hint}the genome has: {listing}"

    def __contains__(self, chrom: object) -> bool:
        try:
            self.resolve(str(chrom))
        except InputError:
            return False
        return True

    def __len__(self) -> int:
        return len(self.chrom_sizes)

    def __iter__(self):
        return iter(self.chrom_sizes)

    def length(self, chrom: str) -> int:
        """Length of ``chrom`` (aliases allowed)."""
        return self.chrom_sizes[self.resolve(chrom)]

    @property
    def total_length(self) -> int:
        """Sum of all sequence lengths (bp)."""
        return sum(self.chrom_sizes.values())

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}: {len(self)} sequences, {self.total_length:,} bp)"

    # --------------------------------------------------------------------------------------------- fetch
    def fetch(self, chrom: str, start: int, end: int, strand: str = "+", pad: bool = False) -> str:
        """Upper-case sequence of ``chrom:[start, end)`` (0-based, half-open).

        Args:
            chrom: sequence name or an alias of it.
            start, end: 0-based half-open coordinates, ``start <= end``.
            strand: ``"+"`` for the sequence as stored, ``"-"`` for its reverse complement.
            pad: fill the part of the interval that lies before 0 or past the chromosome end with ``N``
                (else such an interval is an error).

        Returns:
            A string of length ``end - start``.
        """
        name = self.resolve(chrom)
        try:
            start, end = operator.index(start), operator.index(end)
        except TypeError:
            raise InputError(f"{name}:{start}-{end}: coordinates must be integers") from None
        if strand not in ("+", "-"):
            raise InputError(f"{name}:{start}-{end}: strand must be '+' or '-', got {strand!r}")
        if start > end:
            raise InputError(f"{name}:{start}-{end}: start > end (coordinates are 0-based, half-open)")
        size = self.chrom_sizes[name]
        lo, hi = max(start, 0), min(end, size)
        if (lo, hi) != (start, end) and not pad:
            raise InputError(
                f"{name}:{start}-{end} runs outside {name} (length {size:,}); pass pad=True to fill with N"
            )
        seq = self._fasta().fetch(name, lo, hi).upper() if lo < hi else ""
        if pad:
            left = min(max(0, -start), end - start)
            seq = "N" * left + seq + "N" * (end - start - left - len(seq))
        return reverse_complement(seq) if strand == "-" else seq

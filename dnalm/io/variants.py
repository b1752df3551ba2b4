"""Read variants from VCF / VCF.gz / BCF (pysam), a CSV/TSV table or a DataFrame into one row per ALT allele.

Every input record appears in the result: records that cannot be scored keep a ``status`` other than
``"ok"`` and a ``message`` saying why (symbolic allele, REF mismatch, unknown chromosome, ...), so that
nothing is dropped silently and a VCF writer can put every record back in its place (``record`` is the
0-based index of the record in the input, ``allele`` the 1-based index of the ALT allele in it).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pysam

from dnalm.errors import InputError
from dnalm.io.compression import check_complete_bgzf, open_maybe_gzip
from dnalm.io.genome import Genome

log = logging.getLogger(__name__)

# status -> meaning; the order is the priority when a record has several problems
VARIANT_STATUSES: dict[str, str] = {
    "ok": "usable: REF matches the genome (when one is given) and ALT is a sequence",
    "unknown_chrom": "the chromosome is not in the genome (after aliases such as chr1 == 1)",
    "out_of_range": "POS (or POS + len(REF) - 1) lies outside the chromosome",
    "invalid_allele": "REF or ALT holds characters other than A, C, G, T, N",
    "ref_mismatch": "REF differs from the genome at POS",
    "symbolic_allele": "ALT is symbolic (<DEL>, <*>), a breakend ([, ], .A) or '*': skipped by models",
    "missing_alt": "ALT is '.' (no alternate allele)",
    "ref_equals_alt": "ALT is the same sequence as REF (no change to score)",
}
VARIANT_COLUMNS = [
    "chrom",
    "pos",
    "id",
    "ref",
    "alt",
    "status",
    "message",
    "record",
    "allele",
    "genome_chrom",
]

_BASES = re.compile(r"^[ACGTN]+$")
_COLUMN_ALIASES = {
    "chrom": ("chrom", "chr", "chromosome", "contig", "seqname", "#chrom"),
    "pos": ("pos", "position"),
    "ref": ("ref", "reference"),
    "alt": ("alt", "alternate", "alternative"),
    "id": ("id", "variant_id", "rsid", "name"),
}
_VCF_FIXED = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]


def read_variants(
    source: str | os.PathLike | pd.DataFrame,
    genome: Genome | str | os.PathLike | None = None,
    *,
    strict: bool = False,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read variants into a DataFrame with one row per ALT allele.

    Args:
        source: a VCF (``.vcf``, ``.vcf.gz``, ``.bcf``), a CSV/TSV with columns chrom, pos, ref, alt (id
            optional; ``pos`` 1-based as in VCF; several ALTs comma-separated), or a DataFrame with those
            columns.
        genome: a :class:`Genome` (or a FASTA path) to check REF against; chromosome names resolve through its
            aliases (``chr1`` == ``1``). Without it only the alleles are checked.
        strict: raise :class:`InputError` at the first record with a problem instead of reporting it.
        sep: column separator of a table (default: from the extension, ``,`` for .csv, else tab).

    Returns:
        DataFrame with columns ``chrom, pos, id, ref, alt, status, message, record, allele, genome_chrom``:
        ``pos`` 1-based, ``ref``/``alt`` upper case, ``status`` one of :data:`VARIANT_STATUSES`,
        ``record`` the 0-based input record, ``allele`` the 1-based ALT index (multi-allelic records give
        several rows), ``genome_chrom`` the genome's name for ``chrom`` (missing without a genome or when
        unknown). ``df.attrs`` holds ``source`` and ``status_counts``.
    """
    chunks = VariantChunks(source, genome, strict=strict, sep=sep, chunk_records=None)
    parts = [df for df, _ in chunks]
    df = pd.concat(parts, ignore_index=True) if parts else _frame([])
    name = chunks.name
    counts = Counter(df["status"])
    df.attrs["source"] = name
    df.attrs["status_counts"] = dict(counts)
    _log_summary(df, name)
    return df


def _frame(rows: list) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    return df.astype({"pos": "int64", "record": "int64", "allele": "int64"})


class VariantChunks:
    """:func:`read_variants` in chunks of whole records, so that memory is bounded by a chunk, not the file.

    Iterating yields ``(df, lines)``: ``df`` as :func:`read_variants` returns for the chunk's records (``record``
    counts from the start of the file) and, for a VCF source, the records' lines as read (else None). After the
    iteration ``header`` holds a VCF source's header lines (with the contigs htslib added on the fly).

    Args:
        source, genome, strict, sep: as :func:`read_variants`.
        chunk_records: records per chunk (None: one chunk).
        keep_columns: a CSV/TSV source's columns other than chrom, pos, id, ref, alt are kept in ``df`` after
            the usual columns, in input order (repeated on each ALT allele of a record; a name that clashes with
            a usual column gets the prefix ``input_``); their names are in ``extra_columns``.
    """

    def __init__(self, source, genome=None, *, strict: bool = False, sep: str | None = None,
                 chunk_records: int | None = 2048, keep_columns: bool = False):
        if isinstance(genome, (str, os.PathLike)):
            genome = Genome(genome)
        self.source, self.genome, self.strict, self.sep = source, genome, strict, sep
        self.chunk_records = chunk_records
        self.keep_columns = keep_columns
        self.extra_columns: list[str] = []
        self.header: list[str] | None = None
        self.is_vcf = False
        if isinstance(source, pd.DataFrame):
            self.name = "<DataFrame>"
        else:
            path = Path(source)
            self.name = str(path)
            if not path.exists():
                raise InputError(f"{path}: variant file not found")
            if path.is_dir():
                raise InputError(f"{path}: is a folder, not a variant file")
            self.is_vcf = is_vcf(path)

    def __iter__(self):
        size = self.chunk_records or (1 << 62)
        if isinstance(self.source, pd.DataFrame):
            for start in range(0, max(len(self.source), 1), size):
                part = self.source.iloc[start : start + size]
                if len(part) or start == 0:
                    records = _records_from_table(part, self.name, first_line=None, first_record=start)
                    yield self._classified(records, None), None
            return
        path = Path(self.source)
        if self.is_vcf:
            reader = _VcfReader(path, self.genome, self.strict)
            header_lines = _vcf_header_lines(path)
            batch: list[tuple] = []
            for rec in reader:
                batch.append(rec)
                if len(batch) == size:
                    yield self._classified([r[:6] for r in batch], header_lines), [r[6] for r in batch]
                    batch = []
            if batch:
                yield self._classified([r[:6] for r in batch], header_lines), [r[6] for r in batch]
            self.header = reader.header
            return
        start = 0
        for part in _iter_table(path, self.sep, self.chunk_records):
            records = _records_from_table(part, self.name, first_line=2 + start, first_record=start)
            df = self._classified(records, None)
            if self.keep_columns:
                df = self._with_extra(df, part, start)
            yield df, None
            start += len(part)

    def _with_extra(self, df: pd.DataFrame, part: pd.DataFrame, first_record: int) -> pd.DataFrame:
        """``df`` with the table's other columns joined by record number (see ``keep_columns``)."""
        used = set(_table_columns(part).values())
        keep = [c for c in part.columns if c not in used]
        names = [f"input_{c}" if str(c) in VARIANT_COLUMNS else str(c) for c in keep]
        self.extra_columns = names
        if not keep:
            return df
        extra = part[keep].set_axis(names, axis=1).reset_index(drop=True)
        rows = (df["record"].astype("int64") - first_record).tolist()
        return pd.concat([df.reset_index(drop=True), extra.iloc[rows].reset_index(drop=True)], axis=1)

    def _classified(self, records, header_lines) -> pd.DataFrame:
        return _frame(_classify(records, self.genome, self.name, self.strict, vcf_header_lines=header_lines))


# ------------------------------------------------------------------------------------------------- sources
def _open_text(path: Path):
    return open_maybe_gzip(path, "rt", errors="replace", newline="")


def is_vcf(path: Path) -> bool:
    """True for a VCF/BCF by name, or a text file whose first line is ``##fileformat=VCF``."""
    name = path.name.lower()
    if name.endswith((".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")):
        return True
    try:
        with _open_text(path) as fh:
            return fh.readline().startswith("##fileformat=VCF")
    except (OSError, UnicodeDecodeError, EOFError):
        return False


def _vcf_header_lines(path: Path) -> int | None:
    """Number of header lines of a text VCF (so record i sits on line header + i + 1); None for BCF."""
    if path.name.lower().endswith(".bcf"):
        return None
    n = 0
    with _open_text(path) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
    return n


def _find_bad_vcf_line(path: Path) -> str | None:
    """First malformed line of a text VCF, as 'line N: problem', or None when none is found."""
    if path.name.lower().endswith(".bcf"):
        return None
    seen_columns = False
    with _open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if n == 1 and not line.startswith("##fileformat=VCF"):
                return f"line 1: a VCF starts with '##fileformat=VCFv4.x', found {line[:40]!r}"
            if line.startswith("##"):
                continue
            if line.startswith("#"):
                cols = line.split("\t")
                if [c.upper() for c in cols[:8]] != _VCF_FIXED:
                    return (
                        f"line {n}: the column header must start with the 8 tab-separated columns "
                        f"{' '.join(_VCF_FIXED)}; found {len(cols)} column(s): {line[:80]!r}"
                    )
                seen_columns = True
                continue
            if not seen_columns:
                return f"line {n}: record before the '#CHROM POS ID REF ALT QUAL FILTER INFO' header line"
            if not line.strip():
                return f"line {n}: empty line"
            cols = line.split("\t")
            if len(cols) < 8:
                spaces = " (columns must be separated by tabs, not spaces)" if " " in line else ""
                return (
                    f"line {n}: {len(cols)} column(s), a VCF record needs at least 8 "
                    f"(CHROM POS ID REF ALT QUAL FILTER INFO){spaces}: {line[:80]!r}"
                )
            if not cols[1].isdigit():
                return f"line {n}: POS {cols[1]!r} is not a non-negative integer"
            if not cols[3] or cols[3] == ".":
                return f"line {n}: REF is empty"
            if not cols[4]:
                return f"line {n}: ALT is empty (use '.' for no alternate allele)"
    if not seen_columns:
        return "no '#CHROM POS ID REF ALT QUAL FILTER INFO' header line"
    return None


class _VcfReader:
    """Iterates (record, chrom, pos, id, ref, alts, line) of a VCF/BCF through pysam, naming the bad line.

    ``header`` holds the header lines after iteration (with the contigs htslib added on the fly).
    """

    def __init__(self, path: Path, genome: Genome | None = None, strict: bool = False):
        self.path = path
        self.genome = genome
        self.strict = strict
        self.header: list[str] = []

    def __iter__(self):
        path = self.path
        check_complete_bgzf(path)
        verbosity = pysam.set_verbosity(0)  # htslib warnings would interleave with our messages
        n = 0
        try:
            try:
                vcf = pysam.VariantFile(str(path))
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: {_find_bad_vcf_line(path) or f'cannot read as VCF: {exc}'}") from None
            with vcf:
                if self.genome is not None:
                    check_contig_lengths(path, vcf.header, self.genome, self.strict)
                it = iter(vcf)
                while True:
                    try:
                        rec = next(it)
                    except StopIteration:
                        break
                    except (OSError, ValueError) as exc:
                        problem = _find_bad_vcf_line(path)
                        if problem is None:
                            header = _vcf_header_lines(path)
                            where = f"line {header + n + 1}" if header is not None else "record"
                            problem = f"{where} (record {n + 1}): {exc}"
                        raise InputError(f"{path}: {problem}") from None
                    yield (n, rec.chrom, rec.pos, rec.id, rec.ref, rec.alts, str(rec).rstrip("\n"))
                    n += 1
                self.header = str(vcf.header).rstrip("\n").split("\n")
        finally:
            pysam.set_verbosity(verbosity)


def check_contig_lengths(path: Path, header, genome: Genome, strict: bool) -> None:
    """Warn (``strict``: refuse) when the VCF's ``##contig`` lengths disagree with the genome's (another build?)."""
    wrong = []
    for name, contig in header.contigs.items():
        length = contig.length
        if length is None:
            continue
        try:
            found = genome.resolve(name)
        except InputError:
            continue
        if genome.chrom_sizes[found] != length:
            wrong.append(f"{name} {length:,} vs {genome.chrom_sizes[found]:,}")
    if wrong:
        listing = ", ".join(wrong[:5]) + (f", ... ({len(wrong)} in all)" if len(wrong) > 5 else "")
        text = (
            f"{path}: ##contig lengths disagree with the genome {genome.path} (another assembly?): {listing}"
        )
        if strict:
            raise InputError(text)
        log.warning("warning: %s", text)


def _iter_table(path: Path, sep: str | None, chunk_records: int | None):
    """DataFrames of ``chunk_records`` rows (all strings) of a CSV/TSV table; an empty file is an error."""
    check_complete_bgzf(path)
    if sep is None:
        sep = "," if path.name.lower().endswith((".csv", ".csv.gz")) else "\t"
    kind = "CSV" if sep == "," else "TSV"
    try:
        reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk_records or 1 << 30)
        with reader:
            first = True
            for part in reader:
                first = False
                yield part
            if first:  # a header line and no rows
                yield pd.DataFrame(columns=reader.orig_names or [])
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the variant table is empty (no header line, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(f"{path}: cannot read as a {kind} variant table: {exc}") from None


def _table_columns(df: pd.DataFrame) -> dict[str, object]:
    """Which of ``df``'s columns are chrom, pos, ref, alt and id (by name, case-insensitive, with aliases)."""
    lower = {str(c).strip().lower(): c for c in df.columns}
    found: dict[str, object] = {}
    for key, aliases in _COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lower:
                found[key] = lower[alias]
                break
    return found


def _records_from_table(df: pd.DataFrame, name: str, first_line: int | None, first_record: int = 0) -> list[tuple]:
    """Records of a chrom/pos/ref/alt table; ``first_line``: file line of the first row (None: no file);
    ``first_record``: the index of the first row in the whole table."""
    found = _table_columns(df)
    missing = [k for k in ("chrom", "pos", "ref", "alt") if k not in found]
    if missing:
        raise InputError(
            f"{name}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, df.columns)) or 'none'} "
            "(a variant table needs chrom, pos, ref, alt; id is optional)"
        )
    records = []
    ids = df[found["id"]] if "id" in found else [None] * len(df)
    for i, (chrom, pos, ref, alt, vid) in enumerate(
        zip(df[found["chrom"]], df[found["pos"]], df[found["ref"]], df[found["alt"]], ids)
    ):
        where = f"line {first_line + i}" if first_line is not None else f"row {first_record + i}"
        try:
            pos_int = int(str(pos).strip())
        except ValueError:
            raise InputError(f"{name}: {where}: pos {pos!r} is not an integer") from None
        alt = "" if alt is None or (isinstance(alt, float) and pd.isna(alt)) else str(alt).strip()
        alts = tuple(alt.split(",")) if alt not in ("", ".") else None
        vid = None if vid is None or str(vid) in ("", ".", "nan") else str(vid)
        records.append((first_record + i, str(chrom).strip(), pos_int, vid, str(ref).strip(), alts))
    return records


# ---------------------------------------------------------------------------------------------- checking
def _alt_problem(alt: str) -> tuple[str, str] | None:
    if alt in ("", "."):
        return "missing_alt", "ALT is '.' (no alternate allele)"
    if alt == "*":
        return "symbolic_allele", "ALT '*' (allele removed by an upstream deletion) is symbolic; skipped"
    if alt.startswith(("<", ".")) or alt.endswith(".") or "[" in alt or "]" in alt:
        kind = (
            "breakend" if ("[" in alt or "]" in alt or "." in alt) and not alt.startswith("<") else "symbolic"
        )
        return "symbolic_allele", f"ALT {alt!r} is a {kind} allele; skipped"
    if not _BASES.match(alt):
        return "invalid_allele", f"ALT {alt!r} has characters other than A, C, G, T, N"
    return None


def _classify(records, genome: Genome | None, name: str, strict: bool, vcf_header_lines: int | None) -> list:
    rows = []
    unknown: dict[str, list[str]] = {}
    priority = {status: i for i, status in enumerate(VARIANT_STATUSES)}
    for rec, chrom, pos, vid, ref, alts in records:
        ref_u = (ref or "").upper()
        problems: list[tuple[str, str]] = []  # problems of the record (shared by its ALT alleles)
        genome_chrom = None
        if not ref_u or not _BASES.match(ref_u):
            problems.append(("invalid_allele", f"REF {ref!r} has characters other than A, C, G, T, N"))
        if genome is not None:
            try:
                genome_chrom = genome.resolve(chrom)
            except InputError:
                if chrom not in unknown:  # difflib is slow; a file names the same unknown contig many times
                    unknown[chrom] = genome.close_names(chrom)
                close = unknown[chrom]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append(("unknown_chrom", f"chromosome {chrom!r} is not in the genome{hint}"))
            if genome_chrom is not None:
                size = genome.chrom_sizes[genome_chrom]
                end = pos - 1 + max(len(ref_u), 1)
                if pos < 1 or end > size:
                    where = f"{chrom}:{pos} (REF length {len(ref_u)})"
                    problems.append(
                        ("out_of_range", f"{where} lies outside {genome_chrom} (length {size:,})")
                    )
                elif not problems:
                    actual = genome.fetch(genome_chrom, pos - 1, end)
                    if actual != ref_u:
                        problems.append(
                            (
                                "ref_mismatch",
                                f"REF {ref_u} but the genome has {actual} at {genome_chrom}:{pos}",
                            )
                        )
        elif pos < 1:
            problems.append(("out_of_range", f"POS {pos} < 1"))
        for allele, alt in enumerate(alts or (".",), start=1):
            alt_u = alt.upper()
            found = problems + ([p] if (p := _alt_problem(alt_u)) else [])
            if not found and alt_u == ref_u:
                found = [("ref_equals_alt", f"ALT {alt_u} equals REF: no change to score")]
            if found:
                status = min(found, key=lambda p: priority[p[0]])[0]
                message = "; ".join(m for _, m in found)
            else:
                status, message = "ok", ""
            if strict and status != "ok":
                if vcf_header_lines is not None:
                    where = f"record {rec + 1} (line {vcf_header_lines + rec + 1})"
                else:
                    where = f"record {rec + 1}"
                raise InputError(f"{name}: {where} {chrom}:{pos}: {status}: {message}")
            rows.append((chrom, pos, vid, ref_u, alt_u, status, message, rec, allele, genome_chrom))
    return rows


def _log_summary(df: pd.DataFrame, name: str) -> None:
    n_records = int(df["record"].nunique()) if len(df) else 0
    bad = df[df["status"] != "ok"]
    text = f"{name}: {len(df):,} variant allele(s) from {n_records:,} record(s)"
    if bad.empty:
        log.info("%s, all ok", text)
        return
    counts = ", ".join(f"{n:,} {s}" for s, n in bad["status"].value_counts().items())
    examples = "; ".join(
        f"record {r.record + 1} {r.chrom}:{r.pos}: {r.message}" for r in bad.head(3).itertuples()
    )
    log.warning("%s; not ok: %s (e.g. %s). See the 'status' and 'message' columns.", text, counts, examples)

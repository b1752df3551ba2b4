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
from dnalm.io.compression import open_maybe_gzip
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
    if isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    if isinstance(source, pd.DataFrame):
        name = "<DataFrame>"
        records, lines = _records_from_table(source, name, first_line=None), None
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise InputError(f"{path}: variant file not found")
        if is_vcf(path):
            records, header_lines = _records_from_vcf(path)
            lines = header_lines
        else:
            records, lines = _records_from_table(_load_table(path, sep), name, first_line=2), None
    rows = _classify(records, genome, name, strict, vcf_header_lines=lines)
    df = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    df = df.astype({"pos": "int64", "record": "int64", "allele": "int64"})
    counts = Counter(df["status"])
    df.attrs["source"] = name
    df.attrs["status_counts"] = dict(counts)
    _log_summary(df, name)
    return df


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


def _records_from_vcf(path: Path) -> tuple[list[tuple], int | None]:
    """(record, chrom, pos, id, ref, alts) for each VCF record, and the number of header lines."""
    verbosity = pysam.set_verbosity(0)  # htslib warnings would interleave with our messages
    records: list[tuple] = []
    try:
        try:
            vcf = pysam.VariantFile(str(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: {_find_bad_vcf_line(path) or f'cannot read as VCF: {exc}'}") from None
        with vcf:
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
                        where = f"line {header + len(records) + 1}" if header is not None else "record"
                        problem = f"{where} (record {len(records) + 1}): {exc}"
                    raise InputError(f"{path}: {problem}") from None
                records.append((len(records), rec.chrom, rec.pos, rec.id, rec.ref, rec.alts))
    finally:
        pysam.set_verbosity(verbosity)
    return records, _vcf_header_lines(path)


def _load_table(path: Path, sep: str | None) -> pd.DataFrame:
    if sep is None:
        sep = "," if path.name.lower().endswith((".csv", ".csv.gz")) else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(
            f"{path}: cannot read as a {'CSV' if sep == ',' else 'TSV'} variant table: {exc}"
        ) from None


def _records_from_table(df: pd.DataFrame, name: str, first_line: int | None) -> list[tuple]:
    """Records of a chrom/pos/ref/alt table; ``first_line``: file line of the first row (None: no file)."""
    lower = {str(c).strip().lower(): c for c in df.columns}
    found: dict[str, object] = {}
    for key, aliases in _COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lower:
                found[key] = lower[alias]
                break
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
        where = f"line {first_line + i}" if first_line is not None else f"row {i}"
        try:
            pos_int = int(str(pos).strip())
        except ValueError:
            raise InputError(f"{name}: {where}: pos {pos!r} is not an integer") from None
        alt = "" if alt is None or (isinstance(alt, float) and pd.isna(alt)) else str(alt).strip()
        alts = tuple(alt.split(",")) if alt not in ("", ".") else None
        vid = None if vid is None or str(vid) in ("", ".", "nan") else str(vid)
        records.append((i, str(chrom).strip(), pos_int, vid, str(ref).strip(), alts))
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
                close = genome.close_names(chrom)
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

"""Write variant scores: a TSV/CSV table, or the input VCF with the scores as INFO fields (bgzip + tabix, or BCF).

The reader is :mod:`dnalm.io.variants`; the scores come from :func:`dnalm.variants.score_variants`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from dnalm.errors import InputError
from dnalm.io.output import atomic_path, scratch_path

# score column -> VCF INFO ID (the keys are dnalm.variants.SCORE_NAMES)
INFO_IDS = {"llr": "DNALM_LLR", "llr_sum": "DNALM_LLR_SUM", "embedding_cosine": "DNALM_EMB_COS",
            "masked_marginal": "DNALM_MASKED_MARGINAL"}
STATUS_INFO_ID = "DNALM_STATUS"
_INFO_DESCRIPTIONS = {
    "llr": "dnalm zero-shot log-likelihood ratio: mean per-token log-likelihood of the ALT window minus the REF "
    "window (equal-length windows centred on the variant; negative = ALT less likely)",
    "llr_sum": "dnalm log-likelihood ratio summed over the window (llr x window)",
    "masked_marginal": "dnalm zero-shot masked marginal of a bidirectional model: log p(ALT) - log p(REF) at the "
    "masked variant site(s) of the REF window (substitutions only)",
    "embedding_cosine": "dnalm embedding distance: 1 - cosine similarity of mean-pooled REF and ALT window embeddings",
}


# ---------------------------------------------------------------------------------------------------------------
# Writing scores: TSV or the input VCF with INFO fields
# ---------------------------------------------------------------------------------------------------------------


def output_kind(out: str | os.PathLike) -> str:
    """``"vcf"``, ``"vcf.gz"``, ``"bcf"`` or ``"table"`` from the output name; else an :class:`InputError`."""
    name = Path(out).name.lower()
    if name.endswith(".bcf"):
        return "bcf"
    if name.endswith((".vcf.gz", ".vcf.bgz")):
        return "vcf.gz"
    if name.endswith(".vcf"):
        return "vcf"
    if name.endswith((".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")):
        return "table"
    raise InputError(f"{out}: output must end in .vcf, .vcf.gz, .bcf, .tsv (or .tsv.gz / .csv)")


def score_columns(df) -> list[str]:
    """The score columns of a scores DataFrame (llr, llr_sum, embedding_cosine, ..., head, head_0, ...), in order."""
    return [c for c in df.columns if c in INFO_IDS or c == "head" or re.fullmatch(r"head_\d+", c)]


def _info_id(column: str) -> str:
    return INFO_IDS.get(column) or "DNALM_" + column.upper()


def _format_value(x: float) -> str:
    return "." if not np.isfinite(x) else f"{x:.7g}"


def _info_header_lines(columns: list[str], meta: dict) -> list[str]:
    from dnalm.io.variants import VARIANT_STATUSES

    lines = []
    for c in columns:
        desc = _INFO_DESCRIPTIONS.get(c, f"dnalm fine-tuned head prediction change ALT - REF ({c})")
        lines.append(f'##INFO=<ID={_info_id(c)},Number=A,Type=Float,Description="{desc}">')
    codes = "; ".join(f"{k}: {v}" for k, v in VARIANT_STATUSES.items()).replace('"', "'")
    lines.append(
        f'##INFO=<ID={STATUS_INFO_ID},Number=.,Type=String,Description="dnalm scoring status per ALT allele '
        f'(scores are missing unless ok). {codes}">'
    )
    lines.append("##dnalm_score_variants=" + ";".join(f"{k}={v}" for k, v in meta.items()))
    return lines


def _alleles_by_record(df, columns: list[str]) -> dict[int, dict[int, tuple]]:
    """record -> allele -> (status, values of ``columns``), read from ``df``'s columns once.

    Plain tuples rather than a pandas group per record: per-record pandas indexing cost ~6 ms a record, most of
    the time of scoring a VCF with a small model.
    """
    out: dict[int, dict[int, tuple]] = {}
    arrays = [df["record"].to_numpy(), df["allele"].to_numpy(), df["status"].to_numpy()]
    arrays += [df[c].to_numpy() for c in columns]
    for rec, allele, status, *values in zip(*arrays):
        out.setdefault(int(rec), {})[int(allele)] = (status, values)
    return out


def _info_field(old: str, by_allele: dict[int, tuple], columns: list[str], n_alts: int) -> str:
    """INFO column ``old`` with the dnalm keys replaced by the scores of one record (``by_allele``: allele ->
    (status, values of ``columns``))."""
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    kept = [kv for kv in (old.split(";") if old not in (".", "") else []) if kv.split("=", 1)[0] not in ours]
    added = []
    if n_alts > 0:
        for i, c in enumerate(columns):
            added.append(
                f"{_info_id(c)}="
                + ",".join(
                    _format_value(by_allele[a][1][i]) if a in by_allele else "."
                    for a in range(1, n_alts + 1)
                )
            )
    statuses = [by_allele[a][0] if a in by_allele else "missing" for a in range(1, max(n_alts, 1) + 1)]
    added.append(f"{STATUS_INFO_ID}=" + ",".join(statuses))
    return ";".join(kept + added)


def vcf_record_lines(df, lines: list[str], columns: list[str], records: list[int] | None = None) -> list[str]:
    """The input VCF's record ``lines`` with the dnalm INFO fields of ``df`` (the rows of those records).

    ``records`` are the record numbers of ``lines`` (default: consecutive from the first record of ``df``).
    """
    groups = _alleles_by_record(df, columns)
    first = int(df["record"].min()) if len(df) else 0
    records = records if records is not None else range(first, first + len(lines))
    out = []
    for rec, line in zip(records, lines):
        cols = line.split("\t")
        n_alts = 0 if cols[4] in (".", "") else len(cols[4].split(","))
        cols[7] = _info_field(cols[7], groups[rec], columns, n_alts)
        out.append("\t".join(cols))
    return out


def vcf_header_from_vcf(header: list[str], columns: list[str], meta: dict) -> list[str]:
    """The input VCF's header lines with the dnalm ``##INFO`` lines (old ones of ours replaced)."""
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    header = [
        h
        for h in header
        if not (h.startswith("##INFO=<ID=") and h[len("##INFO=<ID=") :].split(",", 1)[0] in ours)
        and not h.startswith("##dnalm_score_variants=")
    ]
    return header[:-1] + _info_header_lines(columns, meta) + header[-1:]


def table_record_lines(df, columns: list[str]) -> list[str]:
    """Fresh VCF record lines for variants read from a table (one line per record)."""
    out = []
    alleles = _alleles_by_record(df, columns)
    for rec, g in df.groupby("record", sort=True):
        first = g.iloc[0]
        alts = [a for a in g.sort_values("allele")["alt"] if a not in ("", ".")]
        vid = first["id"] if isinstance(first["id"], str) and first["id"] else "."
        cols = [str(first["chrom"]), str(int(first["pos"])), vid, first["ref"] or "N", ",".join(alts) or ".", ".", ".", "."]
        cols[7] = _info_field(".", alleles[int(rec)], columns, len(alts))
        out.append("\t".join(cols))
    return out


def vcf_header_for_table(genome, chroms: list[str], columns: list[str], meta: dict) -> list[str]:
    """A fresh VCF header: the genome's contigs, then ``chroms`` the genome lacks, then the dnalm INFO lines."""
    header = ["##fileformat=VCFv4.2"]
    contigs = list(genome.chrom_sizes.items()) if genome is not None else []
    known = {c for c, _ in contigs}
    header += [f"##contig=<ID={c},length={n}>" for c, n in contigs]
    header += [f"##contig=<ID={c}>" for c in dict.fromkeys(chroms) if c not in known]
    header += _info_header_lines(columns, meta)
    header.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    return header


def table_sep(out: str | os.PathLike) -> str:
    """Column separator of a score table: ``,`` for .csv(.gz), else tab."""
    return "," if Path(out).name.lower().endswith((".csv", ".csv.gz")) else "\t"


def write_variant_scores(
    scores,
    out: str | os.PathLike,
    source: str | os.PathLike | None = None,
    genome=None,
    meta: dict | None = None,
) -> Path:
    """Write :func:`score_variants` results as TSV/CSV, or as VCF with the scores in INFO (atomically).

    VCF output keeps the input header and every input record (from ``source`` when it is a VCF), adds
    ``##INFO`` lines (Number=A) for the score columns and ``DNALM_STATUS`` (per ALT: ``ok`` or the reason the
    allele was not scored). ``.vcf.gz`` is bgzip-compressed and tabix-indexed (records sorted by contig and
    position for the index; a sorted input keeps its order).

    Args:
        scores: DataFrame from :func:`score_variants`.
        out: ``.vcf``, ``.vcf.gz``, ``.bcf``, ``.tsv``, ``.tsv.gz`` or ``.csv`` path.
        source: the variant file that was scored (a VCF keeps its header and lines); None or a table builds a
            new VCF from the rows.
        genome: :class:`dnalm.Genome` for the contig lines of a new VCF.
        meta: key=value pairs for the ``##dnalm_score_variants`` header line.

    Returns:
        ``out`` as a Path.
    """
    from dnalm.io.variants import VariantChunks, is_vcf

    out = Path(out)
    kind = output_kind(out)
    with scratch_path(out, ".body") as body:
        if kind == "table":
            scores.to_csv(body, sep=table_sep(out), index=False, header=False, na_rep="NaN")
            assemble_scores(body, out, header=[table_sep(out).join(map(str, scores.columns))])
            return out
        columns = score_columns(scores)
        meta = dict(meta or {})
        if source is not None and not isinstance(source, (str, os.PathLike)):
            source = None
        if source is not None and is_vcf(Path(source)):
            chunks = VariantChunks(source, chunk_records=None)
            lines = [line for _, part in chunks for line in part]
            n_records = int(scores["record"].max()) + 1 if len(scores) else 0
            if n_records != len(lines):
                raise InputError(f"{source}: read {len(lines)} records but the scores cover {n_records}")
            records = vcf_record_lines(scores, lines, columns)
            header = vcf_header_from_vcf(chunks.header or [], columns, meta)
        else:
            records = table_record_lines(scores, columns)
            header = vcf_header_for_table(genome, list(scores["chrom"].astype(str)), columns, meta)
        body.write_text("".join(line + "\n" for line in records))
        assemble_scores(body, out, header=header)
    return out


def assemble_scores(body: Path, out: Path, header: list[str]) -> Path:
    """Write ``out`` (atomically) from header lines and a file of record lines; memory does not grow with it.

    ``.vcf.gz`` is bgzip-compressed and tabix-indexed; ``.bcf`` is BCF (pysam/htslib) with a ``.csi`` index; their
    records are sorted by contig (header order) and position when the body is not (the sort holds three numbers
    per record, never the lines). A table or VCF named ``.gz`` is gzip-compressed.
    """
    import gzip
    import shutil

    kind = output_kind(out)
    head = "".join(h + "\n" for h in header).encode()
    if kind not in ("vcf.gz", "bcf"):
        with atomic_path(out) as tmp:
            opener = gzip.open if out.name.lower().endswith(".gz") else open
            with opener(tmp, "wb") as dst, open(body, "rb") as src:
                dst.write(head)
                shutil.copyfileobj(src, dst, 1 << 20)
        return out
    import pysam

    order = _sort_order(body, header)
    tbi = Path(str(out) + (".csi" if kind == "bcf" else ".tbi"))
    with scratch_path(out, ".vcf") as plain:
        with open(plain, "wb") as dst, open(body, "rb") as src:
            dst.write(head)
            if order is None:
                shutil.copyfileobj(src, dst, 1 << 20)
            else:
                for offset in order:
                    src.seek(int(offset))
                    dst.write(src.readline())
        if kind == "bcf":  # the same records through htslib's VCF parser and BCF encoder
            with atomic_path(out) as tmp_bcf, atomic_path(tbi) as tmp_csi:
                with pysam.VariantFile(str(plain)) as src, pysam.VariantFile(str(tmp_bcf), "wb", header=src.header) as dst:
                    for rec in src:
                        dst.write(rec)
                pysam.tabix_index(str(tmp_bcf), preset="vcf", csi=True, force=True, index=str(tmp_csi))
            return out
        with atomic_path(out) as tmp_gz, atomic_path(tbi) as tmp_tbi:
            pysam.tabix_compress(str(plain), str(tmp_gz), force=True)
            pysam.tabix_index(str(tmp_gz), preset="vcf", force=True, index=str(tmp_tbi))
    return out


def _sort_order(body: Path, header: list[str]):
    """None when the record lines are sorted by (contig in header order, position), else their offsets in order."""
    from array import array

    rank: dict[str, int] = {}
    for h in header:
        m = re.match(r"##contig=<ID=([^,>]+)", h)
        if m:
            rank.setdefault(m.group(1), len(rank))
    ranks, positions, offsets = array("q"), array("q"), array("q")
    offset = 0
    with open(body, "rb") as fh:
        for line in fh:
            chrom, pos = line.split(b"\t", 2)[:2]
            ranks.append(rank.setdefault(chrom.decode(), len(rank)))
            positions.append(int(pos))
            offsets.append(offset)
            offset += len(line)
    r, p = np.frombuffer(ranks, dtype=np.int64), np.frombuffer(positions, dtype=np.int64)
    if len(r) < 2 or bool(np.all((r[1:] > r[:-1]) | ((r[1:] == r[:-1]) & (p[1:] >= p[:-1])))):
        return None
    return np.frombuffer(offsets, dtype=np.int64)[np.lexsort((p, r))]

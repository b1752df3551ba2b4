"""Write variant scores: a TSV/CSV table, or the input VCF with the scores as INFO fields (bgzip + tabix).

The reader is :mod:`dnalm.io.variants`; the scores come from :func:`dnalm.variants.score_variants`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from dnalm.errors import InputError

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
    """``"vcf"``, ``"vcf.gz"`` or ``"table"`` from the output name; anything else is an :class:`InputError`."""
    name = Path(out).name.lower()
    if name.endswith((".vcf.gz", ".vcf.bgz")):
        return "vcf.gz"
    if name.endswith(".vcf"):
        return "vcf"
    if name.endswith((".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")):
        return "table"
    raise InputError(f"{out}: output must end in .vcf, .vcf.gz, .tsv (or .tsv.gz / .csv)")


def _score_columns(df) -> list[str]:
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


def _info_field(old: str, rows, columns: list[str], n_alts: int) -> str:
    """INFO column ``old`` with the dnalm keys replaced by the scores of ``rows`` (one per ALT, by allele)."""
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    kept = [kv for kv in (old.split(";") if old not in (".", "") else []) if kv.split("=", 1)[0] not in ours]
    by_allele = {int(r.allele): r for r in rows.itertuples()}
    added = []
    if n_alts > 0:
        for c in columns:
            added.append(
                f"{_info_id(c)}="
                + ",".join(
                    _format_value(getattr(by_allele[a], c)) if a in by_allele else "."
                    for a in range(1, n_alts + 1)
                )
            )
    statuses = [by_allele[a].status if a in by_allele else "missing" for a in range(1, max(n_alts, 1) + 1)]
    added.append(f"{STATUS_INFO_ID}=" + ",".join(statuses))
    return ";".join(kept + added)


def _vcf_lines_from_vcf(source: Path, df, columns: list[str], meta: dict) -> tuple[list[str], list[tuple]]:
    """Header lines and (contig, pos, line) of every record of the input VCF, with the dnalm INFO fields."""
    import pysam

    verbosity = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(source)) as vin:
            records = [str(rec).rstrip("\n") for rec in vin]
            # read after the records: contigs and INFO keys that htslib added on the fly are declared
            header = str(vin.header).rstrip("\n").split("\n")
    finally:
        pysam.set_verbosity(verbosity)
    n_records = int(df["record"].max()) + 1 if len(df) else 0
    if n_records != len(records):
        raise InputError(f"{source}: read {len(records)} records but the scores cover {n_records}")
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    header = [
        h
        for h in header
        if not (h.startswith("##INFO=<ID=") and h[len("##INFO=<ID=") :].split(",", 1)[0] in ours)
        and not h.startswith("##dnalm_score_variants=")
    ]
    header = header[:-1] + _info_header_lines(columns, meta) + header[-1:]
    groups = {k: g for k, g in df.groupby("record", sort=False)}
    out = []
    for i, line in enumerate(records):
        cols = line.split("\t")
        n_alts = 0 if cols[4] in (".", "") else len(cols[4].split(","))
        cols[7] = _info_field(cols[7], groups[i], columns, n_alts)
        out.append((cols[0], int(cols[1]), "\t".join(cols)))
    return header, out


def _vcf_lines_from_table(df, genome, columns: list[str], meta: dict) -> tuple[list[str], list[tuple]]:
    """A fresh VCF (header with the genome's contigs) for variants read from a table."""
    header = ["##fileformat=VCFv4.2"]
    contigs = list(genome.chrom_sizes.items()) if genome is not None else []
    known = {c for c, _ in contigs}
    header += [f"##contig=<ID={c},length={n}>" for c, n in contigs]
    extra = [c for c in dict.fromkeys(df["chrom"].astype(str)) if c not in known]
    header += [f"##contig=<ID={c}>" for c in extra]
    header += _info_header_lines(columns, meta)
    header.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    out = []
    for _, g in df.groupby("record", sort=True):
        first = g.iloc[0]
        alts = [a for a in g.sort_values("allele")["alt"] if a not in ("", ".")]
        vid = first["id"] if isinstance(first["id"], str) and first["id"] else "."
        cols = [
            str(first["chrom"]),
            str(int(first["pos"])),
            vid,
            first["ref"] or "N",
            ",".join(alts) or ".",
            ".",
            ".",
            ".",
        ]
        cols[7] = _info_field(".", g, columns, len(alts))
        out.append((cols[0], int(cols[1]), "\t".join(cols)))
    return header, out


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
        out: ``.vcf``, ``.vcf.gz``, ``.tsv``, ``.tsv.gz`` or ``.csv`` path.
        source: the variant file that was scored (a VCF keeps its header and lines); None or a table builds a
            new VCF from the rows.
        genome: :class:`dnalm.Genome` for the contig lines of a new VCF.
        meta: key=value pairs for the ``##dnalm_score_variants`` header line.

    Returns:
        ``out`` as a Path.
    """
    import pysam

    from dnalm.io.variants import is_vcf
    from dnalm.utils import atomic_path, atomic_write

    out = Path(out)
    kind = output_kind(out)
    if kind == "table":
        sep = "," if out.name.lower().endswith((".csv", ".csv.gz")) else "\t"
        with atomic_path(out) as tmp:
            scores.to_csv(tmp, sep=sep, index=False, na_rep="NaN")
        return out
    columns = _score_columns(scores)
    meta = dict(meta or {})
    if source is not None and not isinstance(source, (str, os.PathLike)):
        source = None
    if source is not None and is_vcf(Path(source)):
        header, records = _vcf_lines_from_vcf(Path(source), scores, columns, meta)
    else:
        header, records = _vcf_lines_from_table(scores, genome, columns, meta)
    if kind == "vcf":
        with atomic_write(out) as fh:
            fh.write("\n".join(header) + "\n")
            fh.writelines(line + "\n" for _, _, line in records)
        return out
    # .vcf.gz: tabix needs records grouped by contig and sorted by position
    rank = {}
    for h in header:
        m = re.match(r"##contig=<ID=([^,>]+)", h)
        if m:
            rank.setdefault(m.group(1), len(rank))
    for chrom, _, _ in records:
        rank.setdefault(chrom, len(rank))
    records = sorted(records, key=lambda r: (rank[r[0]], r[1]))
    tbi = Path(str(out) + ".tbi")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, plain = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".vcf", dir=out.parent)
    os.close(fd)
    try:
        Path(plain).write_text("\n".join(header) + "\n" + "".join(line + "\n" for _, _, line in records))
        with atomic_path(out) as tmp_gz, atomic_path(tbi) as tmp_tbi:
            pysam.tabix_compress(plain, str(tmp_gz), force=True)
            pysam.tabix_index(str(tmp_gz), preset="vcf", force=True, index=str(tmp_tbi))
    finally:
        Path(plain).unlink(missing_ok=True)
    return out

"""Summary of a scored VCF: status counts, score statistics, per-class means and AUROCs, and a figure of the score
distributions per class beside the ROC curves.

Class labels come from an INFO key. VEP's ``CSQ`` and SnpEff's ``ANN`` hold ``|``-separated fields per annotation
(their order is given in the header's Description: ``Format: Allele|Consequence|...`` for VEP,
``'Allele | Annotation | ...'`` for SnpEff); the class of an ALT allele is the consequence field of its first
annotation for that allele, first term (``stop_gained&splice_region_variant`` -> ``stop_gained``; both tools list the
most severe first). Any other key, or one whose header has no field list, is taken as the class as it stands.

Without consequences in the VCF, ``regions`` labels each allele by the annotation it falls in: a GFF3/GTF file by
feature type, the first of ``region_types`` that covers the allele's first reference base (CDS before UTRs before
exons before introns; ``intergenic`` when none does), or a BED file by its name column (``outside`` when none). The
lookup is a sorted-interval search written here (merged intervals per chromosome and type, ``numpy.searchsorted``):
pyranges/bioframe would do it too, but would be a dependency for forty lines.

Baseline: with a reference genome, the same AUROCs for the LLR of order-k Markov chains (k = 0..K, fitted on the
genome's chromosomes minus the excluded ones, e.g. the language model's held-out chromosomes): the log-likelihood
ratio of the alt and ref sequences, which differ in the k + 1 positions whose context or target is the variant. A
zero-shot model has to beat these k-mer statistics before its scores say anything about function.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dnalm.errors import InputError

SCORE_KEYS = ("DNALM_LLR", "DNALM_LLR_SUM", "DNALM_EMB_COS")
HIGHER_IS_DAMAGING = {"DNALM_EMB_COS"}  # cosine distance; for the LLRs lower is more damaging


CONSEQUENCE_FIELDS = ("Consequence", "Annotation")  # VEP, SnpEff


def annotation_fields(description: str) -> list[str]:
    """Field names of a VEP ``CSQ`` / SnpEff ``ANN`` INFO header Description ([] if it lists none)."""
    import re

    m = re.search(r"Format:\s*([^\"]+)", description) or re.search(r"'([^']*\|[^']*)'", description)
    if not m or "|" not in m.group(1):
        return []
    return [f.strip() for f in m.group(1).strip().strip("'").split("|")]


def allele_class(value, alt: str, fields: list[str]) -> str | None:
    """The class of ``alt`` from an INFO value: a consequence parsed by field, or the value itself."""
    if value is None:
        return None
    entries = list(value) if isinstance(value, tuple) else [value]
    if not fields:
        return str(entries[0])
    where = next((fields.index(f) for f in CONSEQUENCE_FIELDS if f in fields), None)
    if where is None:
        return str(entries[0])
    allele = fields.index("Allele") if "Allele" in fields else None
    parts = [str(e).split("|") for e in entries]
    chosen = next((q for q in parts if allele is not None and allele < len(q) and q[allele] == alt), parts[0])
    term = chosen[where] if where < len(chosen) else ""
    return term.split("&")[0] or None


def read_scored_vcf(path: str | Path, label_info: str = "CSQ") -> pd.DataFrame:
    """One row per ALT allele: chrom, pos, ref, alt, status, the DNALM_* scores and the label (if any)."""
    import pysam

    path = Path(path)
    try:
        vf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as VCF ({exc})") from None
    keys = [k for k in SCORE_KEYS if k in vf.header.info]
    if "DNALM_STATUS" not in vf.header.info:
        raise InputError(f"{path}: no DNALM_STATUS INFO field; is this the output of dnalm score-variants?")
    has_label = label_info in vf.header.info
    fields = annotation_fields(vf.header.info[label_info].description or "") if has_label else []
    rows = []
    with vf:
        for rec in vf:
            alts = rec.alts or (".",)
            status = rec.info.get("DNALM_STATUS")
            status = status if isinstance(status, tuple) else (status,)
            value = rec.info.get(label_info) if has_label else None
            for i, alt in enumerate(alts):
                row = {"chrom": rec.chrom, "pos": rec.pos, "ref": rec.ref, "alt": alt,
                       "status": status[i] if i < len(status) else status[-1],
                       "label": allele_class(value, alt, fields)}
                for k in keys:
                    v = rec.info.get(k)
                    v = v[i] if isinstance(v, tuple) and i < len(v) else v
                    row[k] = float("nan") if v is None else float(v)
                rows.append(row)
    return pd.DataFrame(rows)


REGION_TYPES = ("CDS", "five_prime_UTR", "three_prime_UTR", "exon", "intron", "gene")
GFF_SUFFIXES = (".gff", ".gff3", ".gtf")


def _merged(intervals: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, merged 0-based half-open intervals as (starts, ends)."""
    starts, ends = [], []
    for a, b in sorted(intervals):
        if starts and a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def read_regions(path: str | Path, types: tuple[str, ...] | list[str] = REGION_TYPES
                 ) -> tuple[list[str], str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Annotation intervals by label: (labels in precedence order, label of uncovered positions, label -> chrom ->
    (starts, ends)), 0-based half-open and merged.

    GFF3/GTF (by file name, ``.gz`` allowed): features whose type (column 3) is one of ``types``, in that order of
    precedence. BED (anything else): the name column (4th) is the label, in order of first appearance.
    """
    from dnalm.data.bed import read_bed
    from dnalm.io.compression import open_maybe_gzip

    path = Path(path)
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    raw: dict[str, dict[str, list[tuple[int, int]]]] = {}
    if name.lower().endswith(GFF_SUFFIXES):
        labels, other = list(types), "intergenic"
        wanted = set(types)
        try:
            fh = open_maybe_gzip(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
        with fh:
            for n, line in enumerate(fh, 1):
                if not line.strip() or line.startswith("#"):
                    if line.startswith("##FASTA"):
                        break
                    continue
                f = line.rstrip("\n").split("\t")
                if len(f) < 9:
                    raise InputError(f"{path}, line {n}: a GFF/GTF feature line has 9 tab-separated columns, found "
                                     f"{len(f)}")
                if f[2] not in wanted:
                    continue
                try:
                    start, end = int(f[3]), int(f[4])
                except ValueError:
                    raise InputError(f"{path}, line {n}: start/end {f[3]!r}, {f[4]!r} are not integers") from None
                if start < 1 or end < start:
                    raise InputError(f"{path}, line {n}: bad coordinates {start}..{end} (1-based, start <= end)")
                raw.setdefault(f[2], {}).setdefault(f[0], []).append((start - 1, end))
        if not raw:
            raise InputError(f"{path}: no feature of the types {', '.join(types)}")
    else:
        bed = read_bed(path)
        if "name" not in bed:
            raise InputError(f"{path}: a BED file of regions needs a name column (the 4th) to label the variants")
        labels, other = list(dict.fromkeys(bed["name"].astype(str))), "outside"
        for chrom, a, b, lab in zip(bed["chrom"], bed["start"], bed["end"], bed["name"].astype(str)):
            raw.setdefault(lab, {}).setdefault(str(chrom), []).append((int(a), int(b)))
    merged = {lab: {c: _merged(iv) for c, iv in by_chrom.items()} for lab, by_chrom in raw.items()}
    return [lab for lab in labels if lab in merged], other, merged


def region_labels(df: pd.DataFrame, path: str | Path, types: tuple[str, ...] | list[str] = REGION_TYPES) -> pd.Series:
    """The annotation label of each allele (rows with ``chrom`` and 1-based ``pos``): see :func:`read_regions`."""
    labels, other, merged = read_regions(path, types)
    chroms = {c for by_chrom in merged.values() for c in by_chrom}
    if len(df) and not set(df["chrom"].astype(str)) & chroms:
        raise InputError(f"{path}: none of the VCF's chromosomes ({', '.join(sorted(set(df['chrom'].astype(str)))[:5])}"
                         f") is named in the regions (e.g. {', '.join(sorted(chroms)[:5])}): check the naming")
    out = np.full(len(df), other, dtype=object)
    todo = np.ones(len(df), dtype=bool)
    chrom = df["chrom"].astype(str).to_numpy()
    pos0 = df["pos"].to_numpy(dtype=np.int64) - 1
    for lab in labels:  # precedence: an allele keeps the first label that covers it
        for c, (starts, ends) in merged[lab].items():
            sel = np.flatnonzero(todo & (chrom == c))
            if not len(sel):
                continue
            i = np.searchsorted(starts, pos0[sel], side="right") - 1
            hit = (i >= 0) & (pos0[sel] < ends[np.maximum(i, 0)])
            out[sel[hit]] = lab
            todo[sel[hit]] = False
    return pd.Series(out, index=df.index, name="label")


_CODE_OF = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE_OF[ord(_b)] = _CODE_OF[ord(_b.lower())] = _i


def _codes(seq: str) -> np.ndarray:
    """A, C, G, T -> 0..3 (either case), anything else 4 (the codes of :mod:`dnalm.evaluate_lm`)."""
    return _CODE_OF[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def markov_llrs(df: pd.DataFrame, fasta: str | Path, max_k: int = 8, exclude: list[str] | tuple = (),
                alpha: float = 1.0) -> pd.DataFrame:
    """LLR (log2 P(alt) - log2 P(ref)) of each SNV row of ``df`` under order-k Markov chains, k = 0..max_k.

    The chains are fitted on every chromosome of ``fasta`` except ``exclude``. Returns one column ``MARKOV_K{k}``
    per order (NaN for rows that are not SNVs or whose REF disagrees with the genome).
    """
    from dnalm.evaluate_lm import MarkovChains
    from dnalm.io.genome import Genome

    with Genome(fasta) as genome:
        excluded = {genome.resolve(c) for c in exclude if c in genome}  # names of another genome: nothing to drop
        train = [c for c in genome.names if c not in excluded]
        if not train:
            raise InputError(f"{fasta}: no chromosome left to fit the Markov baseline on (all excluded)")
        chains = MarkovChains.fit([_codes(genome.fetch(c, 0, genome.length(c))) for c in train], max_k=max_k, alpha=alpha)
        out = np.full((len(df), max_k + 1), np.nan)
        for i, (chrom, pos, ref, alt) in enumerate(zip(df["chrom"], df["pos"], df["ref"], df["alt"])):
            if len(ref) != 1 or len(alt) != 1 or alt.upper() not in "ACGT" or chrom not in genome:
                continue
            c = genome.resolve(chrom)
            start = max(0, pos - 1 - max_k)
            window = genome.fetch(c, start, min(genome.length(c), pos + max_k))
            j = pos - 1 - start
            if window[j].upper() != ref.upper():
                continue
            a = _codes(window)
            b = a.copy()
            b[j] = _codes(alt)[0]
            for k in range(max_k + 1):
                # only targets j..j+k see the variant (as the base or in their context)
                scored = np.zeros(len(a), dtype=bool)
                scored[j : j + k + 1] = True
                scored[0] &= start > 0  # a chromosome's first base has no context: never scored (as in evaluate-lm)
                out[i, k] = np.nansum(chains.log2_probs(b, k, scored & (b < 4))) - np.nansum(chains.log2_probs(a, k, scored & (a < 4)))
    return pd.DataFrame(out, columns=[f"MARKOV_K{k}" for k in range(max_k + 1)], index=df.index)


def summarise_scored_vcf(path: str | Path, label_info: str = "CSQ", out: str | Path | None = None,
                         fasta: str | Path | None = None, markov_k: int = 8,
                         markov_exclude: list[str] | tuple = (), regions: str | Path | None = None,
                         region_types: tuple[str, ...] | list[str] = REGION_TYPES) -> pd.DataFrame:
    """Rows of (what, group, n, score, mean, median, auroc) describing a scored VCF; written as TSV to ``out``.

    ``auroc`` is the AUROC of the score for telling the class from the other classes, oriented so that 1.0
    means the class looks most damaging (lowest LLR, largest embedding distance). With ``fasta``, rows with
    ``what == "baseline"`` give the same for the LLRs of order-0..``markov_k`` Markov chains (see
    :func:`markov_llrs`), on the same alleles. With ``regions`` the classes are the annotation labels of
    :func:`region_labels` instead of the VCF's consequences.
    """
    from sklearn.metrics import roc_auc_score

    from dnalm.utils import atomic_write

    df = read_scored_vcf(path, label_info)
    if regions is not None:
        df["label"] = region_labels(df, regions, region_types)
    rows = [{"what": "records", "group": "all", "n": len(df)}]
    for status, n in df["status"].value_counts().items():
        rows.append({"what": "status", "group": status, "n": int(n)})
    ok = df[df["status"] == "ok"]
    scores = [k for k in SCORE_KEYS if k in df]
    for k in scores:
        v = ok[k].dropna()
        rows.append({"what": "score", "group": "ok", "score": k, "n": len(v), "mean": v.mean(), "median": v.median()})
    labels = ok["label"].dropna()
    baselines: list[str] = []
    if fasta is not None and labels.nunique() >= 2:
        ok = pd.concat([ok, markov_llrs(ok, fasta, markov_k, markov_exclude)], axis=1)
        baselines = [c for c in ok.columns if c.startswith("MARKOV_K")]
    if labels.nunique() >= 2:
        for cls in sorted(labels.unique()):
            is_cls = (ok["label"] == cls).to_numpy()
            for k in scores + baselines:
                v = ok[k].to_numpy()
                keep = ~np.isnan(v) & ok["label"].notna().to_numpy()
                # damaging variants lower the likelihood (low LLR) and move the embedding (high distance)
                sign = 1.0 if k in HIGHER_IS_DAMAGING else -1.0
                auc = roc_auc_score(is_cls[keep], sign * v[keep]) if 0 < is_cls[keep].sum() < keep.sum() else math.nan
                rows.append({"what": "baseline" if k in baselines else "class", "group": cls, "score": k,
                             "n": int(is_cls.sum()),
                             "mean": float(np.nanmean(v[is_cls])), "median": float(np.nanmedian(v[is_cls])),
                             "auroc": auc})
    table = pd.DataFrame(rows, columns=["what", "group", "score", "n", "mean", "median", "auroc"])
    if out is not None:
        with atomic_write(out) as fh:
            table.to_csv(fh, sep="\t", index=False, float_format="%.5g")
        if scores and len(ok):
            plot_scores_by_class(ok, scores[0], Path(out).with_suffix(".png"))
    return table


def plot_scores_by_class(ok: pd.DataFrame, score: str, out: str | Path, max_classes: int = 8) -> Path:
    """PNG: the distribution of ``score`` per class (left) and each class's ROC curve against the others (right;
    oriented as the AUROC of :func:`summarise_scored_vcf`). Without labels, one distribution of all variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from dnalm.utils import atomic_path

    v = ok[score].to_numpy(dtype=float)
    labels = ok["label"].astype(object).where(ok["label"].notna(), None).to_numpy()
    keep = ~np.isnan(v)
    classes = pd.Series(labels[keep]).dropna().value_counts().index[:max_classes].tolist()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = [(c, v[keep & (labels == c)]) for c in classes] or [("all", v[keep])]
    bins = np.histogram_bin_edges(v[keep], bins=40) if keep.any() else 10
    for name, vals in groups:
        ax1.hist(vals, bins=bins, histtype="step", density=True, linewidth=1.5, label=f"{name} (n={len(vals)})")
    ax1.set_xlabel(score)
    ax1.set_ylabel("density")
    ax1.set_title(f"{score} by class")
    ax1.legend(fontsize=8)
    sign = 1.0 if score in HIGHER_IS_DAMAGING else -1.0
    labelled = keep & pd.notna(labels)
    if len(classes) >= 2:
        for c in classes:
            y = labels[labelled] == c
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = roc_curve(y, sign * v[labelled])
                ax2.plot(fpr, tpr, label=str(c))
        ax2.legend(fontsize=8, title="class vs the rest")
    else:
        ax2.text(0.5, 0.5, "ROC needs two or more classes", ha="center", va="center", transform=ax2.transAxes)
    ax2.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax2.set_xlabel("false positive rate")
    ax2.set_ylabel("true positive rate")
    ax2.set_title(f"ROC ({'higher' if sign > 0 else 'lower'} {score} = more damaging)")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out

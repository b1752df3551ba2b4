"""Summary of a scored VCF: status counts, score statistics, and per-class means and AUROCs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dnalm.errors import InputError

SCORE_KEYS = ("DNALM_LLR", "DNALM_LLR_SUM", "DNALM_EMB_COS")
HIGHER_IS_DAMAGING = {"DNALM_EMB_COS"}  # cosine distance; for the LLRs lower is more damaging


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
    rows = []
    with vf:
        for rec in vf:
            alts = rec.alts or (".",)
            status = rec.info.get("DNALM_STATUS")
            status = status if isinstance(status, tuple) else (status,)
            label = rec.info.get(label_info) if label_info in vf.header.info else None
            if isinstance(label, tuple):
                label = label[0]
            for i, alt in enumerate(alts):
                row = {"chrom": rec.chrom, "pos": rec.pos, "ref": rec.ref, "alt": alt,
                       "status": status[i] if i < len(status) else status[-1], "label": label}
                for k in keys:
                    v = rec.info.get(k)
                    v = v[i] if isinstance(v, tuple) and i < len(v) else v
                    row[k] = float("nan") if v is None else float(v)
                rows.append(row)
    return pd.DataFrame(rows)


def summarise_scored_vcf(path: str | Path, label_info: str = "CSQ", out: str | Path | None = None) -> pd.DataFrame:
    """Rows of (what, group, n, score, mean, median, auroc) describing a scored VCF; written as TSV to ``out``.

    ``auroc`` is the AUROC of the score for telling the class from the other classes, oriented so that 1.0
    means the class looks most damaging (lowest LLR, largest embedding distance).
    """
    from sklearn.metrics import roc_auc_score

    from dnalm.utils import atomic_write

    df = read_scored_vcf(path, label_info)
    rows = [{"what": "records", "group": "all", "n": len(df)}]
    for status, n in df["status"].value_counts().items():
        rows.append({"what": "status", "group": status, "n": int(n)})
    ok = df[df["status"] == "ok"]
    scores = [k for k in SCORE_KEYS if k in df]
    for k in scores:
        v = ok[k].dropna()
        rows.append({"what": "score", "group": "ok", "score": k, "n": len(v), "mean": v.mean(), "median": v.median()})
    labels = ok["label"].dropna()
    if labels.nunique() >= 2:
        for cls in sorted(labels.unique()):
            is_cls = (ok["label"] == cls).to_numpy()
            for k in scores:
                v = ok[k].to_numpy()
                keep = ~np.isnan(v) & ok["label"].notna().to_numpy()
                # damaging variants lower the likelihood (low LLR) and move the embedding (high distance)
                sign = 1.0 if k in HIGHER_IS_DAMAGING else -1.0
                auc = roc_auc_score(is_cls[keep], sign * v[keep]) if 0 < is_cls[keep].sum() < keep.sum() else math.nan
                rows.append({"what": "class", "group": cls, "score": k, "n": int(is_cls.sum()),
                             "mean": float(np.nanmean(v[is_cls])), "median": float(np.nanmedian(v[is_cls])),
                             "auroc": auc})
    table = pd.DataFrame(rows, columns=["what", "group", "score", "n", "mean", "median", "auroc"])
    if out is not None:
        with atomic_write(out) as fh:
            table.to_csv(fh, sep="\t", index=False, float_format="%.5g")
    return table

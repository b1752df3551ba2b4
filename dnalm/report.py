"""The pipeline's results page: a headline table (each stage's result beside its honest baseline, with a verdict),
then one section per stage with its tables and plots, as Markdown (+ PNG files) and a self-contained HTML page.

A stage is a *section builder*: a function ``(results_dir) -> (headlines, Section) | None`` that reads the files the
pipeline wrote for that stage (``None`` when the stage did not run). :data:`SECTION_BUILDERS` lists them in page
order; a new stage adds one function there. Free-form sections (a title and a list of files: Markdown, CSV/TSV,
PNG) can be appended with ``extra``. Missing inputs are said in the page, never shown as ``nan``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dnalm.errors import InputError


# --------------------------------------------------------------------------------------------- page model
@dataclass
class Headline:
    """One row of the headline table: a stage's result beside its baseline."""

    stage: str
    metric: str
    model: str  # what produced the result (e.g. "fine-tuned hybridna-tiny")
    value: float | None
    baseline: str  # what it is compared with (e.g. "k-mer (k=1..6) + logistic")
    baseline_value: float | None
    higher_is_better: bool = True
    target: float | None = None  # a bar the result should also clear (e.g. AUROC 0.55), named in the verdict

    @property
    def difference(self) -> float | None:
        if self.value is None or self.baseline_value is None:
            return None
        return self.value - self.baseline_value

    @property
    def verdict(self) -> str:
        d = self.difference
        if d is None or math.isnan(d):
            return "not run"
        better = d > 0 if self.higher_is_better else d < 0
        verdict = "beats baseline" if better else ("ties baseline" if d == 0 else "does not beat baseline")
        if self.target is not None and self.value is not None:
            met = self.value >= self.target if self.higher_is_better else self.value <= self.target
            verdict += f"; target {self.target:g} {'met' if met else 'not met'}"
        return verdict


@dataclass
class Figure:
    """A PNG plot of a section."""

    name: str  # file stem (report_files/NAME.png)
    caption: str
    png: bytes


@dataclass
class Section:
    """A titled part of the page: paragraphs (Markdown), tables and figures, in that order."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (caption, table)
    figures: list[Figure] = field(default_factory=list)


SectionBuilder = Callable[[Path], "tuple[list[Headline], Section] | None"]


def _fmt(v, digits: int = 4) -> str:
    """A number for a table cell ("—" for missing); other values as text."""
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        if math.isnan(float(v)):
            return "—"
        v = float(v)
        if v == 0 or 1e-3 <= abs(v) < 1e4:
            return f"{v:.{digits}f}"
        return f"{v:.{digits - 1}e}" if abs(v) < 1e-3 else f"{v:,.0f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


def _signed(v: float | None) -> str:
    return "—" if v is None or math.isnan(v) else f"{v:+.4f}"


def headline_table(rows: list[Headline]) -> pd.DataFrame:
    """The headline rows as display strings (stage, metric, model, baseline, difference, verdict)."""
    return pd.DataFrame([{
        "stage": h.stage, "metric": h.metric,
        "model": f"{_fmt(h.value)} ({h.model})" if h.value is not None else f"— ({h.model})",
        "baseline": f"{_fmt(h.baseline_value)} ({h.baseline})" if h.baseline_value is not None else f"— ({h.baseline})",
        "difference": _signed(h.difference) + ("" if h.higher_is_better else " (lower is better)"),
        "verdict": h.verdict,
    } for h in rows], columns=["stage", "metric", "model", "baseline", "difference", "verdict"])


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------------------------- stages
def language_model_section(results: Path) -> tuple[list[Headline], Section] | None:
    """Pretraining curve and held-out bits per base against order-k Markov chains (k chosen on validation)."""
    lm = _read_json(results / "evaluate_lm" / "results.json")
    ckpt = _read_json(results / "evaluate_lm" / "checkpoint.json")  # a shipped model the downstream stages use
    metrics_csv = results / "pretrain" / "metrics.csv"
    if lm is None and not metrics_csv.exists():
        return None
    sec = Section("Pretraining and held-out language modelling")
    heads: list[Headline] = []
    markov = pd.DataFrame(lm["markov"]) if lm and lm.get("markov") else pd.DataFrame()
    chosen = None
    if lm:
        chroms = sorted({r["chrom"] for r in lm.get("regions", [])})
        where = ", ".join(chroms) or "held-out chromosomes"
        if len(markov):
            chosen = markov[markov["k"] == lm["chosen_k"]].iloc[0]
        baseline = f"Markov k={lm['chosen_k']}, k chosen on validation" if chosen is not None else "Markov chain"
        heads.append(Headline(
            "pretraining (this run)", f"held-out bits/base ({where})", "pretrained model", lm["model_bits_per_base"],
            baseline, float(chosen["bits_per_base"]) if chosen is not None else None, higher_is_better=False,
        ))
        if ckpt:
            record = _training_record(ckpt.get("model", ""))
            heads.append(Headline(
                "pretraining (shipped checkpoint)", f"held-out bits/base ({where})",
                f"checkpoint{record and f' ({record})'}", ckpt["model_bits_per_base"], baseline,
                float(chosen["bits_per_base"]) if chosen is not None else None, higher_is_better=False,
            ))
            sec.text.append(
                f"The downstream stages start from the shipped checkpoint `{ckpt.get('model')}`"
                f"{record and f' ({record})'}, made by the project's own recipe "
                "(`dnalm pretrain --config config/pretrain/checkpoint.yaml`), because the tokens that beat the Markov "
                f"chains do not fit in this pipeline's time. It scores **{ckpt['model_bits_per_base']:.4f} bits/base** "
                f"on the same bases; this run's own pretraining is reported beside it.")
        sec.text.append(
            f"The model scores {_fmt(lm['n_bases'])} bases of {where} (windows of {lm['length']} tokens) at "
            f"**{lm['model_bits_per_base']:.4f} bits/base**. Baselines: order-k Markov chains fitted on "
            f"{_fmt(lm.get('markov_train_bases'))} bases of the training chromosomes; the honest one is the k chosen "
            f"on a validation tail (k={lm['chosen_k']}), not the k that happens to be best on the test bases.")
        if len(markov):
            tab = pd.DataFrame({
                "k": markov["k"].astype(int),
                "validation bits/base": markov["val_bits_per_base"].map(_fmt),
                "held-out bits/base": markov["bits_per_base"].map(_fmt),
                "next-base accuracy": markov["accuracy"].map(lambda v: f"{v:.3f}"),
                "": ["chosen on validation" if k == lm["chosen_k"] else "" for k in markov["k"]],
            })
            model_rows = [{"k": "this run's model", "validation bits/base": "—",
                           "held-out bits/base": _fmt(lm["model_bits_per_base"]),
                           "next-base accuracy": f"{lm['model_accuracy']:.3f}", "": ""}]
            if ckpt:
                model_rows.append({"k": "shipped checkpoint", "validation bits/base": "—",
                                   "held-out bits/base": _fmt(ckpt["model_bits_per_base"]),
                                   "next-base accuracy": f"{ckpt['model_accuracy']:.3f}", "": "downstream model"})
            model_row = pd.DataFrame(model_rows)
            sec.tables.append(("Held-out bits per base: the model and the Markov chains",
                               pd.concat([model_row, tab], ignore_index=True)))
    if metrics_csv.exists():
        m = pd.read_csv(metrics_csv)
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 3.8))
        tr = m.dropna(subset=["train_loss"])
        ax.plot(tr["tokens"] / 1e6, tr["train_loss"] / math.log(2), lw=1, alpha=0.6, label="train (bits/base)")
        va = m.dropna(subset=["val_bits_per_base"])
        ax.plot(va["tokens"] / 1e6, va["val_bits_per_base"], "o-", label="validation (bits/base)")
        if len(markov):
            for k, style in ((lm["chosen_k"], "--"), (lm.get("best_k_le3", 3), ":")):
                row = markov[markov["k"] == k]
                if len(row):  # the held-out chromosome(s) of evaluate-lm (the pipeline validates on them too)
                    ax.axhline(float(row["bits_per_base"].iloc[0]), ls=style, color="grey",
                               label=f"Markov k={k}" + (" (chosen on validation)" if k == lm["chosen_k"] else ""))
        lo = min(va["val_bits_per_base"].min() if len(va) else 2.0, markov["bits_per_base"].min() if len(markov) else 2.0)
        if ckpt:
            ax.axhline(ckpt["model_bits_per_base"], ls="-.", color="tab:green",
                       label="shipped checkpoint (held-out)")
            lo = min(lo, ckpt["model_bits_per_base"])
        ax.set_ylim(lo - 0.02, max(2.0, lo + 0.1))
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("bits per base")
        ax.legend(fontsize=8)
        ax.set_title("Pretraining curve with the Markov baselines", fontsize=10)
        sec.figures.append(Figure("pretraining_curve", "Training and validation loss (bits/base) with the order-k "
                                  "Markov chains' bits/base on the held-out bases drawn in.", _png(fig)))
        last = m.iloc[-1]
        sec.text.append(f"Pretraining ran {int(last['step'])} steps, {_fmt(int(last['tokens']))} tokens, in "
                        f"{last['elapsed_s'] / 60:.1f} min.")
    return heads, sec


def _training_record(model_dir: str) -> str:
    """'N steps, M tokens' from a model folder's config.json (its pretraining record), or ''."""
    cfg = _read_json(Path(model_dir) / "config.json") if model_dir else None
    rec = ((cfg or {}).get("extra") or {}).get("pretrain") or {}
    if not rec.get("step"):
        return ""
    return f"{int(rec['step']):,} steps, {int(rec.get('tokens', 0)) / 1e6:.1f} M tokens"


def _benchmark_rows(results: Path) -> pd.DataFrame | None:
    path = results / "benchmark" / "results.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    df = df[df["status"] == "ok"].copy()
    extra = [json.loads(s) if isinstance(s, str) else {} for s in df.get("test_metrics", [""] * len(df))]
    for key in ("auroc", "mcc"):
        df[f"test_{key}"] = [e.get(key) if e.get(key) is not None else np.nan for e in extra]
    return df


def benchmark_section(results: Path) -> tuple[list[Headline], Section] | None:
    """Fine-tuned model vs k-mer, GC-content and frozen-probe baselines on each task (test MCC and AUROC)."""
    df = _benchmark_rows(results)
    if df is None or not len(df):
        return None
    sec = Section("Fine-tuning benchmark")
    heads = []
    plt = _plt()
    for task, g in df.groupby("task", sort=False):
        metric = g["metric"].iloc[0]
        tab = pd.DataFrame({
            "method": g["method"],
            f"test {metric}": g["test"].map(_fmt), f"dev {metric}": g["dev"].map(_fmt),
            "test AUROC": g["test_auroc"].map(_fmt),
            "train / dev / test rows": [f"{int(a):,} / {int(b):,} / {int(c):,}"
                                        for a, b, c in zip(g["n_train"], g["n_dev"], g["n_test"])],
            "seconds": g["seconds"].map(lambda v: "—" if pd.isna(v) else f"{v:.0f}"),
        })
        sec.tables.append((f"{task}: test and dev metrics per method", tab))
        ft = g[g["method"].str.startswith("fine-tuned")]
        km = g[g["method"].str.startswith("k-mer") & ~g["method"].str.contains("full train")]
        if len(ft) and len(km):
            f, k = ft.iloc[0], km.iloc[0]
            heads.append(Headline(f"fine-tuning: {task}", f"test {metric.upper()}", f["method"], float(f["test"]),
                                  k["method"], float(k["test"])))
            if not pd.isna(f["test_auroc"]) and not pd.isna(k["test_auroc"]):
                heads.append(Headline(f"fine-tuning: {task}", "test AUROC", f["method"], float(f["test_auroc"]),
                                      k["method"], float(k["test_auroc"])))
            gap = abs(float(f["test"]) - float(f["dev"]))
            sec.text.append(f"**{task}**: fine-tuned test {metric} {float(f['test']):.3f}, dev {float(f['dev']):.3f} "
                            f"(gap {gap:.3f}); k-mer baseline test {float(k['test']):.3f}.")
        fig, ax = plt.subplots(figsize=(7, 3.6))
        x = np.arange(len(g))
        ax.bar(x - 0.2, g["test"], 0.4, label=f"test {metric}")
        ax.bar(x + 0.2, g["test_auroc"], 0.4, label="test AUROC")
        for xi, (a, b) in enumerate(zip(g["test"], g["test_auroc"])):
            ax.annotate(_fmt(a, 2), (xi - 0.2, max(a, 0)), ha="center", va="bottom", fontsize=7)
            if not pd.isna(b):
                ax.annotate(_fmt(b, 2), (xi + 0.2, b), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([m.replace(" + ", "\n+ ") for m in g["method"]], fontsize=7)
        ax.set_ylim(min(0, float(np.nanmin(g["test"]))) - 0.02, 1.05)
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.legend(fontsize=8)
        ax.set_title(f"{task}: fine-tuned model vs baselines (test split)", fontsize=10)
        sec.figures.append(Figure(f"benchmark_{task}", f"{task}: test {metric} and AUROC of every method.", _png(fig)))
    return heads, sec


def variants_section(results: Path) -> tuple[list[Headline], Section] | None:
    """Zero-shot variant scores: LLR distributions per consequence and the ROC of −LLR for the damaging class."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from dnalm.variant_summary import read_scored_vcf

    vcfs = sorted((results / "variants").glob("*.vcf.gz")) if (results / "variants").exists() else []
    if not vcfs:
        return None
    sec = Section("Zero-shot variant effects")
    heads = []
    plt = _plt()
    for path in vcfs:
        name = path.name[: -len(".vcf.gz")]
        df = read_scored_vcf(path)
        ok = df[(df["status"] == "ok") & df["DNALM_LLR"].notna()] if "DNALM_LLR" in df else df.iloc[:0]
        counts = df["status"].value_counts()
        sec.text.append(f"**{name}**: {len(df):,} alleles; " + ", ".join(f"{s}: {n:,}" for s, n in counts.items()) +
                        ". LLR = log P(alt) − log P(ref) over the window; a damaging allele should get a low LLR.")
        matching = _vcf_header_value(path, "dnalm_matching")
        if matching:
            sec.text.append(f"The set is matched: {matching}, so that which base changes (base composition) cannot "
                            "separate the classes; only what the change does to the codon can.")
        labels = ok["label"].dropna()
        if labels.nunique() < 2:
            got = _region_classes(results / "variants" / f"{name}.summary.tsv", name)
            if got is not None:
                heads.append(got[0])
                sec.text.append(got[1])
                sec.tables.append(got[2])
                if got[3] is not None:
                    sec.figures.append(got[3])
            continue
        classes = sorted(labels.unique())
        damaging = "stop_gained" if "stop_gained" in classes else classes[0]
        y = (ok["label"] == damaging).to_numpy()
        auc = float(roc_auc_score(y, -ok["DNALM_LLR"]))
        other = "synonymous" if "synonymous" in classes and len(classes) == 2 else "the other classes"
        markov = _markov_variant_aurocs(results / "variants" / f"{name}.summary.tsv", damaging)
        lm = _read_json(results / "evaluate_lm" / "results.json") or {}
        k = lm.get("chosen_k")
        if markov and k is not None and k in markov:
            base, base_value = f"Markov k={k} LLR (k chosen on validation)", markov[k]
        else:
            base, base_value = "chance", 0.5
        heads.append(Headline("variant effects", f"AUROC(−LLR), {damaging} vs {other}", "pretrained model (zero-shot)",
                              auc, base, base_value, target=0.55))
        if markov:
            rows = [{"score": "model −LLR", "AUROC": _fmt(auc)}]
            if "DNALM_EMB_COS" in ok and ok["DNALM_EMB_COS"].notna().all():
                rows.append({"score": "model embedding cosine distance",
                             "AUROC": _fmt(float(roc_auc_score(y, ok["DNALM_EMB_COS"])))})
            rows += [{"score": f"Markov k={kk} −LLR" + (" (k chosen on validation)" if kk == k else ""),
                      "AUROC": _fmt(v)} for kk, v in sorted(markov.items())]
            sec.tables.append((f"{name}: AUROC for {damaging} vs {other}, the model beside order-k Markov chains "
                               "(fitted on the training chromosomes)", pd.DataFrame(rows)))
        per = pd.DataFrame([{"class": c, "alleles": int((ok["label"] == c).sum()),
                             "mean LLR": f"{float(ok.loc[ok['label'] == c, 'DNALM_LLR'].mean()):.3g}",
                             "median LLR": f"{float(ok.loc[ok['label'] == c, 'DNALM_LLR'].median()):.3g}"}
                            for c in classes])
        sec.tables.append((f"{name}: LLR per consequence", per))
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        lo, hi = np.percentile(ok["DNALM_LLR"], [1, 99])
        bins = np.linspace(lo, hi, 40)
        for c in classes:
            a1.hist(ok.loc[ok["label"] == c, "DNALM_LLR"], bins=bins, alpha=0.5, density=True, label=c)
        a1.set_xlabel("LLR (nats)")
        a1.set_ylabel("density")
        a1.legend(fontsize=8)
        a1.set_title("score distributions", fontsize=10)
        fpr, tpr, _ = roc_curve(y, -ok["DNALM_LLR"])
        a2.plot(fpr, tpr, label=f"−LLR, AUROC {auc:.3f}")
        a2.plot([0, 1], [0, 1], ":", color="grey", label="chance")
        a2.set_xlabel("false positive rate")
        a2.set_ylabel("true positive rate")
        a2.legend(fontsize=8)
        a2.set_title(f"ROC: {damaging} vs {other}", fontsize=10)
        sec.figures.append(Figure(f"variants_{name}", f"{name}: LLR by consequence and the ROC of −LLR.", _png(fig)))
    return heads, sec


def _vcf_header_value(path: Path, key: str) -> str:
    """The value of a ``##key=value`` header line of a VCF ('' if absent or unreadable)."""
    import pysam

    try:
        with pysam.VariantFile(str(path)) as vf:
            return next((str(r.value) for r in vf.header.records if r.key == key), "")
    except (OSError, ValueError):
        return ""


def _region_classes(summary_tsv: Path, name: str):
    """(headline, text, table, figure) for a VCF whose classes are annotated regions (variant-summary --regions):
    the per-class AUROC of the model's −LLR beside the best Markov chain's; None without class rows."""
    if not summary_tsv.exists():
        return None
    t = pd.read_csv(summary_tsv, sep="\t")
    cls = t[(t["what"] == "class") & (t["score"] == "DNALM_LLR")].set_index("group")
    if len(cls) < 2:
        return None
    best = {}  # region -> (k, AUROC) of the strictest Markov chain
    for region in cls.index:
        markov = _markov_variant_aurocs(t, region)
        if markov:
            best[region] = max(markov.items(), key=lambda kv: kv[1])
    rows = [{"region": region, "alleles": int(r["n"]), "mean LLR": f"{float(r['mean']):.3g}",
             "model AUROC(−LLR)": _fmt(float(r["auroc"])),
             "best Markov AUROC(−LLR)": f"{_fmt(best[region][1])} (k={best[region][0]})" if region in best else "—"}
            for region, r in cls.iterrows()]
    first = "CDS" if "CDS" in cls.index else cls.index[0]
    baseline, value = ((f"best Markov LLR (k={best[first][0]}, the strictest)", best[first][1]) if first in best
                       else ("chance", 0.5))
    head = Headline("variant effects", f"AUROC(−LLR), {first} vs other regions ({name})",
                    "pretrained model (zero-shot)", float(cls.loc[first, "auroc"]), baseline, value)
    text = ("The VCF carries no consequences: its alleles are classed by the annotated region they fall in "
            "(`dnalm variant-summary --regions`). AUROC(−LLR) of a region is how well a low LLR picks its alleles "
            "out from the rest; constraint makes coding alleles look more damaging, but so can base composition, "
            "which the Markov chains (fitted on the same reference) measure.")
    png = summary_tsv.with_suffix(".png")
    fig = None
    if png.exists():
        fig = Figure(f"variants_{name}", f"{name}: LLR by region and the ROC of −LLR.", png.read_bytes())
    return head, text, (f"{name}: AUROC(−LLR) per region, one vs the rest", pd.DataFrame(rows)), fig


def _markov_variant_aurocs(summary: Path | pd.DataFrame, damaging: str) -> dict[int, float]:
    """k -> AUROC of the order-k Markov LLR for ``damaging`` (rows 'baseline' of dnalm variant-summary --fasta), from
    the summary TSV or the table already read from it."""
    if isinstance(summary, pd.DataFrame):
        t = summary
    elif summary.exists():
        t = pd.read_csv(summary, sep="\t")
    else:
        return {}
    t = t[(t["what"] == "baseline") & (t["group"] == damaging) & t["score"].astype(str).str.startswith("MARKOV_K")]
    return {int(s[len("MARKOV_K"):]): float(a) for s, a in zip(t["score"], t["auroc"]) if not pd.isna(a)}


def cre_section(results: Path) -> tuple[list[Headline], Section] | None:
    """CRE design: the oracle's held-out correlation, and the oracle's view of the generated classes."""
    oracle = _read_json(results / "cre" / "oracle" / "oracle.json")
    summary = _read_json(results / "cre" / "evaluation" / "summary.json")
    if oracle is None and summary is None:
        return None
    sec = Section("CRE design")
    heads = []
    report = (oracle or {}).get("report", oracle or {})
    heldout = report.get("heldout", {}) if isinstance(report, dict) else {}
    for target, m in heldout.items():
        split = report.get("split", "random (seeded)")
        heads.append(Headline("CRE oracle", f"held-out Spearman, {target}", "CNN oracle", m.get("spearman"),
                              "no signal", 0.0, target=0.3))
        sec.text.append(f"The oracle predicts **{target}** on {m.get('n', 0):,} held-out rows (split: {split}) with "
                        f"Spearman {_fmt(m.get('spearman'), 3)} and Pearson {_fmt(m.get('pearson'), 3)}.")
    if summary:
        gen = _read_json(results / "cre" / "generated.fa.json") or {}
        weight = (gen.get("settings") or {}).get("guidance") or 0
        if weight:
            sec.text.append(f"The sequences were sampled with guidance w = {float(weight):g}: each base is drawn "
                            "from p(x | class)^(1+w) / p(x)^w, where p(x) mixes every class, so the generator's own "
                            "class evidence is sharpened (one decoded row per class). On the demo, without guidance a "
                            "short fine-tuning reproduces the classes' base composition but little of what the oracle "
                            "reads.")
        for prop, t in (summary.get("high_vs_low") or {}).items():
            heads.append(Headline("CRE generation", f"oracle AUC, generated {prop} class {t['high_class']} vs "
                                  f"{t['low_class']}", "conditional generator", t["auc_high_vs_low"], "chance", 0.5,
                                  target=0.65))
            sec.text.append(f"Generated **{prop}={t['high_class']}** vs **{prop}={t['low_class']}** sequences "
                            f"({t['n_high']} and {t['n_low']}): oracle means {_fmt(t['oracle_mean_high'], 3)} vs "
                            f"{_fmt(t['oracle_mean_low'], 3)}, AUC {t['auc_high_vs_low']:.3f}, one-sided Mann-Whitney "
                            f"p = {t['p_high_greater']:.2g}.")
            if t.get("real_auc_high_vs_low") is not None:
                sec.text.append(
                    f"Real held-out sequences of the same two classes ({t['real_n_high']} and {t['real_n_low']}) "
                    f"score AUC {t['real_auc_high_vs_low']:.3f} with the same oracle: what this oracle can tell "
                    "apart at all, so a generator cannot be shown to do better than that with it.")
            top = t.get("top_n")
            if top:
                sec.text.append(
                    f"Best designs vs best real sequences (top {top['n']} each, one oracle): the top {top['n']} "
                    f"{prop}={t['high_class']} designs (picked by the oracle) score "
                    f"{_fmt(top['generated_top_oracle_mean'], 3)}; "
                    f"the {top['n']} real held-out rows with the highest measured {prop} score "
                    f"{_fmt(top['real_top_by_measured_oracle_mean'], 3)} (AUC designs vs them "
                    f"{top['auc_generated_top_vs_real_top_measured']:.3f}), and the real top {top['n']} picked by the "
                    f"oracle, as the designs were, {_fmt(top['real_top_by_oracle_oracle_mean'], 3)}.")
        rows = []
        for r in summary.get("conditions", []):
            row = {"condition": r.get("condition", "")}
            for k, v in r.items():
                if k.endswith(":oracle_mean") or k in ("diversity_mean_distance", "novelty_median_distance", "gc"):
                    row[k.replace(":", " ")] = _fmt(v, 3) if isinstance(v, float) else _fmt(v)
            rows.append(row)
        if rows:
            sec.tables.append(("Generated sequences per condition", pd.DataFrame(rows)))
        fig = _cre_plot(results, summary)
        if fig is not None:
            sec.figures.append(Figure("cre_activity", "Oracle-predicted activity of generated sequences per condition, "
                                      "beside the real sequences of each class.", fig))
    return heads, sec


def _cre_plot(results: Path, summary: dict) -> bytes | None:
    path = results / "cre" / "evaluation" / "sequences.tsv"
    if not path.exists():
        return None
    seqs = pd.read_csv(path, sep="\t")
    cols = [c for c in seqs.columns if c.startswith("oracle_")]
    if not cols:
        return None
    col = cols[0]
    prop = col[len("oracle_"):]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    groups = list(dict.fromkeys(seqs["condition"]))
    data = [seqs.loc[seqs["condition"] == g, col].to_numpy() for g in groups]
    ax.boxplot(data, showfliers=False)
    for i, d in enumerate(data, 1):
        ax.scatter(np.full(len(d), i) + np.random.default_rng(i).uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.4)
    real = (summary.get("real_by_class") or {}).get(prop, {})
    for k, v in real.items():
        if v.get("n"):
            ax.axhline(v["oracle_mean"], ls=":", lw=1, color=f"C{int(k) + 2}", label=f"real class {k}: oracle mean")
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(f"oracle prediction ({prop})")
    ax.set_title("CRE activity by condition (oracle)", fontsize=10)
    if real:
        ax.legend(fontsize=7)
    return _png(fig)


SECTION_BUILDERS: list[SectionBuilder] = [language_model_section, benchmark_section, variants_section, cre_section]


# --------------------------------------------------------------------------------------------- rendering
def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _flatten(d, prefix: str = "") -> dict:
    """Scalar entries of nested JSON objects under dotted keys (lists are left out: no raw lists in cells)."""
    out = {}
    for k, v in (d or {}).items() if isinstance(d, dict) else []:
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, list) and v is not None:
            out[f"{prefix}{k}"] = v
    return out


def _file_section(title: str, files: list[str]) -> Section:
    """A free-form section from files: Markdown as text, CSV/TSV and JSON (scalars, dotted keys) as tables, PNG as
    figures."""
    sec = Section(title)
    for f in files:
        p = Path(f)
        if not p.exists():
            sec.text.append(f"_missing: `{f}`_")
        elif p.suffix.lower() == ".png":
            sec.figures.append(Figure(p.stem, p.name, p.read_bytes()))
        elif p.suffix.lower() in (".csv", ".tsv"):
            table = pd.read_csv(p, sep="," if p.suffix.lower() == ".csv" else "\t")
            if table.empty:  # say so: an empty table reads as a rendering fault
                sec.text.append(f"`{p.name}` has no rows.")
            else:
                sec.tables.append((p.name, table.head(30)))
        elif p.suffix.lower() == ".json":
            flat = _flatten(_read_json(p))
            sec.tables.append((p.name, pd.DataFrame({"key": list(flat), "value": pd.Series(list(flat.values()), dtype=object)}).head(30)))
        else:
            sec.text.append(p.read_text())
    return sec


def collect(results: str | os.PathLike, builders: list[SectionBuilder] | None = None) -> tuple[list[Headline], list[Section]]:
    """Run every section builder on a results folder: (headline rows, sections) of the stages that ran."""
    heads, sections = [], []
    for build in builders if builders is not None else SECTION_BUILDERS:
        got = build(Path(results))
        if got is not None:
            heads += got[0]
            sections.append(got[1])
    return heads, sections


def build_results_page(results: str | os.PathLike | None, out: str | os.PathLike, title: str = "dnalm pipeline report",
                       extra: list[tuple[str, list[str]]] | None = None, notes: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``out`` (Markdown, with its plots in ``<out stem>_files/``) and ``out`` with suffix ``.html`` (plots
    embedded as data URIs: one file to share). Returns both paths.

    Args:
        results: the pipeline's results folder (None: only the ``extra`` sections, no headline table).
        out: the Markdown file to write.
        title: page title.
        extra: free-form sections (title, files) appended after the stages.
        notes: lines shown under the headline table (e.g. run time, machine load).
    """
    from dnalm.utils import atomic_path, atomic_write

    out = Path(out)
    if results is not None and not Path(results).is_dir():
        raise InputError(f"{results}: results folder not found")
    heads, sections = collect(results) if results is not None else ([], [])
    sections += [_file_section(t, f) for t, f in extra or []]
    fig_dir = out.parent / f"{out.stem}_files"
    head_df = headline_table(heads)
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if results is not None:
        md += ["## Headline: each stage against its baseline", ""]
        body.append("<h2>Headline: each stage against its baseline</h2>")
        if len(head_df):
            md += [_md_table(head_df), ""]
            body.append(_html_table(head_df, verdict=True))
        else:
            md += ["_No stage produced results._", ""]
            body.append("<p><em>No stage produced results.</em></p>")
    for n in notes or []:
        md += [f"- {n}"]
        body.append(f"<p>{html.escape(n)}</p>")
    for sec in sections:
        md += ["", f"## {sec.title}", ""]
        body.append(f"<h2>{html.escape(sec.title)}</h2>")
        for t in sec.text:
            md += [t, ""]
            body.append(f"<p>{_inline_md(t)}</p>")
        for caption, df in sec.tables:
            md += [f"*{caption}*", "", _md_table(df), ""]
            body.append(f"<p><em>{html.escape(caption)}</em></p>" + _html_table(df))
        for fig in sec.figures:
            fig_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(fig_dir / f"{fig.name}.png") as tmp:
                Path(tmp).write_bytes(fig.png)
            md += [f"![{fig.caption}]({fig_dir.name}/{fig.name}.png)", ""]
            data = base64.b64encode(fig.png).decode()
            body.append(f'<figure><img alt="{html.escape(fig.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
    with atomic_write(out) as fh:
        fh.write("\n".join(md).rstrip() + "\n")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;"
            "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%;text-align:left}"
            "td.good{background:#e3f6e3}td.bad{background:#fbe3e3}img{max-width:100%}figcaption{font-size:85%;"
            "color:#555}</style></head><body>" + "\n".join(body) + "</body></html>")
    html_path = out.with_suffix(".html")
    with atomic_write(html_path) as fh:
        fh.write(page)
    return out, html_path


def _inline_md(text: str) -> str:
    """Markdown bold/code of a paragraph as HTML (the rest escaped)."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _html_table(df: pd.DataFrame, verdict: bool = False) -> str:
    cells = ["<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr>"]
    for row in df.itertuples(index=False):
        tds = []
        for c, v in zip(df.columns, row):
            cls = ""
            if verdict and c == "verdict":
                cls = " class='good'" if v.startswith("beats baseline") and "not met" not in v else " class='bad'"
            tds.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    return "".join(cells) + "</table>"


def build_report(sections: list[tuple[str, list[str]]], out: str | os.PathLike, title: str = "dnalm report",
                 max_rows: int = 30) -> tuple[Path, Path]:
    """A page of free-form sections only (title, files): no headline table. See :func:`build_results_page`."""
    del max_rows  # tables are cut at 30 rows
    return build_results_page(None, out, title, extra=sections)

"""The results page: headline table (stage vs baseline with a verdict), sections with plots, no raw JSON or nan in
cells, and a self-contained HTML page whose images decode as PNG."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pysam
import pytest

from dnalm.cli import main
from dnalm.report import Headline, build_results_page, headline_table


def _fake_results(root):
    """The files a pipeline run writes, with made-up numbers (one per stage)."""
    (root / "pretrain").mkdir(parents=True)
    pd.DataFrame({"step": [10, 20, 30], "tokens": [1000, 2000, 3000], "train_loss": [1.40, 1.36, 1.34],
                  "val_loss": [np.nan, np.nan, 1.33], "val_bits_per_base": [np.nan, np.nan, 1.925],
                  "elapsed_s": [10, 20, 30]}).to_csv(root / "pretrain" / "metrics.csv", index=False)
    (root / "evaluate_lm").mkdir()
    markov = [{"k": k, "val_bits_per_base": 1.95 - 0.002 * k, "bits_per_base": 1.94 - 0.002 * k, "accuracy": 0.34}
              for k in range(5)]
    (root / "evaluate_lm" / "results.json").write_text(json.dumps({
        "model": "m", "regions": [{"chrom": "chrXVI", "start": 0, "end": 100}], "n_bases": 100, "length": 64,
        "model_bits_per_base": 1.92, "model_accuracy": 0.35, "markov": markov, "chosen_k": 4, "best_k_le3": 3,
        "markov_train_bases": 1000}))
    ckpt = root / "ckpt"  # a shipped checkpoint the downstream stages use, with its pretraining record
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"extra": {"pretrain": {"step": 800, "tokens": 3276800}}}))
    (root / "evaluate_lm" / "checkpoint.json").write_text(json.dumps({
        "model": str(ckpt), "regions": [{"chrom": "chrXVI", "start": 0, "end": 100}], "n_bases": 100, "length": 64,
        "model_bits_per_base": 1.91, "model_accuracy": 0.36, "markov": markov, "chosen_k": 4, "best_k_le3": 3,
        "markov_train_bases": 1000}))
    (root / "benchmark").mkdir()
    rows = []
    for method, mcc, auc in (("k-mer (k=1..6) + logistic", 0.40, 0.75), ("GC content + logistic", 0.0, 0.50),
                             ("frozen mean-pooled embedding + logistic", 0.45, 0.78),
                             ("fine-tuned (mean pooling)", 0.50, 0.80)):
        rows.append({"task": "promoters", "method": method, "metric": "mcc", "test": mcc, "dev": mcc + 0.01,
                     "n_train": 100, "n_dev": 20, "n_test": 20, "param": 1.0, "steps": np.nan, "best_step": np.nan,
                     "seconds": 3.0, "status": "ok", "test_metrics": json.dumps({"mcc": mcc, "auroc": auc})})
    pd.DataFrame(rows).to_csv(root / "benchmark" / "results.csv", index=False)
    (root / "variants").mkdir()
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chrI,length=1000>",
             '##INFO=<ID=CSQ,Number=1,Type=String,Description="c">',
             '##INFO=<ID=DNALM_STATUS,Number=A,Type=String,Description="s">',
             '##INFO=<ID=DNALM_LLR,Number=A,Type=Float,Description="l">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    rng = np.random.default_rng(0)
    for i in range(40):
        csq = "stop_gained" if i % 2 else "synonymous"
        llr = rng.normal(-1.0 if csq == "stop_gained" else 0.0, 0.5)
        lines.append(f"chrI\t{i + 1}\t.\tA\tC\t.\tPASS\tCSQ={csq};DNALM_STATUS=ok;DNALM_LLR={llr:.3f}")
    plain = root / "variants" / "snvs.vcf"
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(root / "variants" / "snvs.vcf.gz"))
    plain.unlink()
    # dnalm variant-summary --fasta: Markov-chain LLR baselines (k = 4 is the one chosen on validation above)
    pd.DataFrame([{"what": "baseline", "group": "stop_gained", "score": f"MARKOV_K{k}", "n": 20, "mean": -0.1,
                   "median": -0.1, "auroc": 0.5 + 0.02 * k} for k in range(5)]).to_csv(
        root / "variants" / "snvs.summary.tsv", sep="\t", index=False)
    (root / "cre" / "oracle").mkdir(parents=True)
    (root / "cre" / "oracle" / "oracle.json").write_text(json.dumps({"report": {
        "heldout": {"cai": {"spearman": 0.35, "pearson": 0.4, "n": 50}}, "split": "given per row"}}))
    (root / "cre" / "evaluation").mkdir()
    (root / "cre" / "evaluation" / "summary.json").write_text(json.dumps({
        "conditions": [{"condition": "cai=0", "cai:oracle_mean": 0.2}, {"condition": "cai=2", "cai:oracle_mean": 0.3}],
        "high_vs_low": {"cai": {"high_class": 2, "low_class": 0, "n_high": 5, "n_low": 5, "oracle_mean_high": 0.3,
                                "oracle_mean_low": 0.2, "auc_high_vs_low": 0.7, "p_high_greater": 0.04,
                                "real_auc_high_vs_low": 0.72, "real_n_high": 30, "real_n_low": 31,
                                "top_n": {"n": 5, "generated_top_oracle_mean": 0.3, "real_top_by_measured_oracle_mean":
                                          0.35, "real_top_by_oracle_oracle_mean": 0.41,
                                          "auc_generated_top_vs_real_top_measured": 0.38}}},
        "real_by_class": {"cai": {"0": {"n": 3, "oracle_mean": 0.19}, "2": {"n": 3, "oracle_mean": 0.31}}}}))
    pd.DataFrame({"id": range(10), "condition": ["cai=0"] * 5 + ["cai=2"] * 5, "sequence": ["ACGT"] * 10,
                  "oracle_cai": np.linspace(0.1, 0.4, 10), "nearest_reference_distance": 3}).to_csv(
        root / "cre" / "evaluation" / "sequences.tsv", sep="\t", index=False)


def test_results_page_has_a_headline_table_sections_and_embedded_images(tmp_path):
    results = tmp_path / "results"
    _fake_results(results)
    assert main(["report", "--results", str(results), "--out", str(results / "report.md")]) == 0
    md = (results / "report.md").read_text()
    page = (results / "report.html").read_text()
    # headline first, one row per stage result, with verdicts computed in the right direction
    head = md.split("## Headline")[1].split("\n## ")[0]
    assert head.count("beats baseline") == 7 and "does not beat" not in head  # bits/base: lower wins
    assert "target 0.3 met" in head and "target 0.65 met" in head
    assert "| pretraining (this run) | held-out bits/base (chrXVI) | 1.9200 (pretrained model) | 1.9320 (Markov k=4" in head
    assert "| pretraining (shipped checkpoint) | held-out bits/base (chrXVI) | 1.9100 (checkpoint (800 steps, 3.3 M tokens))" in head
    # the zero-shot variant AUROC is read against the Markov chain chosen on validation, not against chance
    assert "0.5800 (Markov k=4 LLR (k chosen on validation))" in head
    assert "Markov k=0 −LLR" in md.split("## Zero-shot variant effects")[1]
    assert "(30 and 31) score AUC 0.720 with the same oracle" in md  # the oracle's own ceiling on real sequences
    assert "highest measured cai score 0.350 (AUC designs vs them 0.380)" in md  # best designs vs best real rows
    for section in ("Pretraining and held-out language modelling", "Fine-tuning benchmark", "Zero-shot variant effects",
                    "CRE design"):
        assert f"## {section}" in md and f"<h2>{section}</h2>" in page
    # no raw JSON, lists or nan in any table cell
    cells = [c.strip() for line in md.splitlines() if line.startswith("|") for c in line.strip("|").split("|")]
    assert not [c for c in cells if c.lower() == "nan" or c.startswith(("{", "["))]
    # the HTML is self-contained: every image is an embedded PNG that decodes, none is a file link
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(srcs) == 4  # training curve, benchmark bars, variant distributions + ROC, CRE by condition
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # the Markdown links the same plots as files beside it
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (results / link).exists()


def test_headline_verdicts_and_missing_values():
    rows = headline_table([Headline("lm", "bits", "m", 1.90, "markov", 1.95, higher_is_better=False),
                           Headline("ft", "mcc", "m", 0.3, "kmer", 0.4),
                           Headline("cre", "auc", "m", None, "chance", 0.5),
                           Headline("cre", "rho", "m", 0.1, "none", 0.0, target=0.3)])
    assert list(rows["verdict"]) == ["beats baseline", "does not beat baseline", "not run",
                                     "beats baseline; target 0.3 not met"]
    assert rows["difference"].iloc[2] == "—" and rows["model"].iloc[2].startswith("—")


@pytest.mark.parametrize("stage", ["benchmark", "variants"])
def test_a_stage_that_did_not_run_is_left_out_not_shown_as_nan(tmp_path, stage):
    import shutil

    results = tmp_path / "results"
    _fake_results(results)
    shutil.rmtree(results / stage)
    md, _ = build_results_page(results, tmp_path / "r.md")
    text = md.read_text()
    assert "nan" not in text.lower().replace("nanmean", "")
    assert text.count("beats baseline") == (5 if stage == "benchmark" else 6)


def test_an_empty_table_in_a_free_form_section_is_said_not_drawn(tmp_path):
    """A discovery run that found no pattern writes a header-only patterns.tsv: the page says so in words."""
    (tmp_path / "patterns.tsv").write_text("pattern\tn_seqlets\tmotif_id\n")
    (tmp_path / "counts.csv").write_text("a,b\n1,2\n")
    md, _ = build_results_page(None, tmp_path / "r.md",
                               extra=[("Motifs", [str(tmp_path / "patterns.tsv"), str(tmp_path / "counts.csv")])])
    text = md.read_text()
    assert "`patterns.tsv` has no rows." in text and "| pattern |" not in text
    assert "| 1 | 2 |" in text.replace("  ", " ")


def test_a_vcf_classed_by_region_gets_a_row_against_the_strictest_markov_chain(tmp_path):
    """A VCF without consequences, summarised with variant-summary --regions: the report reads the classes from the
    summary, puts CDS vs the other regions in the headline beside the best Markov chain, and tabulates every region."""
    from dnalm.variant_summary import summarise_scored_vcf

    results = tmp_path / "results"
    (results / "variants").mkdir(parents=True)
    rng = np.random.default_rng(1)
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=I,length=1000>",
             '##INFO=<ID=DNALM_STATUS,Number=A,Type=String,Description="s">',
             '##INFO=<ID=DNALM_LLR,Number=A,Type=Float,Description="l">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"I\t{p}\t.\tA\tC\t.\tPASS\tDNALM_STATUS=ok;DNALM_LLR={rng.normal(-0.5 if p <= 300 else 0):.3f}"
              for p in range(1, 601, 3)]
    plain = results / "variants" / "worm.vcf"
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(results / "variants" / "worm.vcf.gz"))
    plain.unlink()
    fasta = tmp_path / "g.fa"
    fasta.write_text(">I\n" + "".join(rng.choice(list("ACGT"), 1000)) + "\n")
    gff = tmp_path / "a.gff"
    gff.write_text("I\ts\tCDS\t1\t300\t.\t+\t0\tID=a\nI\ts\tintron\t301\t450\t.\t+\t.\tID=b\n")
    summarise_scored_vcf(results / "variants" / "worm.vcf.gz", out=results / "variants" / "worm.summary.tsv",
                         fasta=fasta, markov_k=2, regions=gff)
    t = pd.read_csv(results / "variants" / "worm.summary.tsv", sep="\t")  # what the report reads
    md = build_results_page(results, tmp_path / "r.md")[0].read_text()
    head = md.split("## Headline")[1].split("\n## ")[0]
    cds = t.query("what == 'class' and group == 'CDS' and score == 'DNALM_LLR'")["auroc"].item()
    best = t.query("what == 'baseline' and group == 'CDS'")["auroc"].max()
    assert f"AUROC(−LLR), CDS vs other regions (worm) | {cds:.4f} (pretrained model (zero-shot))" in head
    assert f"{best:.4f} (best Markov LLR (k=" in head
    section = md.split("## Zero-shot variant effects")[1]
    assert "worm: AUROC(−LLR) per region, one vs the rest" in section
    for region in ("CDS", "intron", "intergenic"):
        assert f"| {region} |" in section

"""Evaluate generated CREs: oracle activity per requested class, diversity, novelty, k-mer and motif content.

Inputs are a FASTA from ``dnalm generate`` (each header carries ``condition=A=k``; the sidecar ``<fasta>.json``
carries the generator's bin edges), a trained oracle and the real (training) table. Outputs: ``summary.json``,
``conditions.tsv``, ``sequences.tsv``, ``motifs.tsv`` (with ``--motifs``) and ``activity.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnalm.errors import DnalmError, InputError
from dnalm.explain.motifs import read_motifs, scan_motifs
from generate.conditioning import ConditionSpec, parse_condition_string
from generate.data import PropertyTable
from generate.metrics import diversity, kmer_divergence, nearest_distances
from generate.oracle import load_oracle, match_targets
from generate.sampling import header_condition, read_fasta


@dataclass
class EvalConfig:
    """Settings of :func:`evaluate_cre` (loaded strictly by :func:`dnalm.config.load_config`)."""

    top_k: int = 10  # "top-k mean": mean of the k highest (and k lowest) oracle predictions per set
    top_n: int = 100  # best designs vs best real sequences: the top n of the high class vs the top n real rows
    max_reference: int = 20000  # reference rows used for oracle/k-mer/motif baselines (novelty uses all)
    kmer_sizes: tuple[int, ...] = (4, 6)  # k-mer spectra compared by JS divergence
    motif_threshold: float = 0.85  # relative PWM score threshold for a hit
    max_motif_reference: int = 3000  # reference rows scanned for motif frequencies (a random subset)
    motif_tax_group: str | None = None  # keep only JASPAR matrices of this tax group
    max_pairs: int = 20000  # pairs sampled for diversity when a set is large
    seed: int = 0
    progress: bool = True


def load_generated(path: str | os.PathLike) -> tuple[list[tuple[str, str, str]], dict]:
    """Records of a generated FASTA and its sidecar JSON (``{}`` when absent)."""
    path = Path(path)
    records = read_fasta(path)
    side = Path(str(path) + ".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    return records, meta


def condition_properties(generated: str | os.PathLike, spec=None) -> list[str]:
    """The conditioned property names of a generated FASTA: from ``spec`` (a generator's
    :class:`~generate.conditioning.ConditionSpec`) or else from the FASTA's sidecar JSON.

    Raises:
        DnalmError: neither holds a conditioning spec.
    """
    if spec is None:
        _, meta = load_generated(generated)
        spec = ConditionSpec.from_dict(meta["conditioning"]) if meta.get("conditioning") else None
    if spec is None:
        raise DnalmError("give --property-columns (no conditioning spec in the FASTA's sidecar JSON or --generator)")
    return list(spec.names)


def _groups(records) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, (_, desc, _) in enumerate(records):
        groups.setdefault(header_condition(desc), []).append(i)
    return groups


def _gc(seqs: Sequence[str]) -> float:
    n = sum(len(s) for s in seqs)
    return float(sum(s.count("G") + s.count("C") for s in seqs) / n) if n else float("nan")


def evaluate_cre(
    generated: str | os.PathLike,
    oracle_dir: str | os.PathLike,
    reference: PropertyTable,
    out_dir: str | os.PathLike,
    spec: ConditionSpec | None = None,
    motifs_path: str | os.PathLike | None = None,
    target_map: dict | None = None,
    config: EvalConfig | None = None,
) -> dict:
    """Score a generated FASTA against an oracle and the real sequences; write tables, a plot and a summary.

    Args:
        generated: FASTA written by ``dnalm generate`` (headers with ``condition=...``).
        oracle_dir: directory from ``dnalm train-oracle``.
        reference: the real table (sequences with measured property values; the generator's training data).
        out_dir: output folder.
        spec: the generator's conditioning spec; default: the FASTA's sidecar JSON.
        motifs_path: JASPAR/TRANSFAC file for motif occurrence (optional).
        target_map: property -> oracle target name where they differ.
        config: evaluation settings.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    from scipy.stats import mannwhitneyu

    from dnalm.utils import atomic_write

    cfg = config or EvalConfig()
    out_dir = Path(out_dir)
    records, meta = load_generated(generated)
    if spec is None and meta.get("conditioning"):
        spec = ConditionSpec.from_dict(meta["conditioning"], source=f"{generated}.json")
    groups = _groups(records)
    seqs = [r[2] for r in records]
    oracle = load_oracle(oracle_dir)
    props = spec.names if spec is not None else []
    if not props:
        cond_names = sorted({k for g in groups for k in parse_condition_string(g)})
        props = cond_names
    cols = match_targets(oracle, props, target_map) if props else {}
    # requested classes of every group
    requested = {g: parse_condition_string(g) for g in groups}
    if spec is not None:
        for g, cond in requested.items():
            try:
                spec.parse(cond)
            except DnalmError as exc:
                raise InputError(f"{generated}: condition {g!r} does not match the generator's spec: {exc}") from None

    long = [i for i, s in enumerate(seqs) if len(s) > oracle.config.seq_len]
    if long:
        raise InputError(
            f"{generated}: record {records[long[0]][0]} has {len(seqs[long[0]])} nt, longer than the oracle's input "
            f"length {oracle.config.seq_len}"
        )
    rng = np.random.default_rng(cfg.seed)
    ref_all = reference.sequences
    ref_keep = np.sort(rng.choice(len(ref_all), min(cfg.max_reference, len(ref_all)), replace=False))
    ref_seqs = [ref_all[i] for i in ref_keep]
    ref_vals = reference.values[ref_keep]
    ref_long = [s for s in ref_seqs if len(s) > oracle.config.seq_len]
    if ref_long:
        raise InputError(f"{reference.source}: reference sequences are longer than the oracle's input length {oracle.config.seq_len}")
    pred_gen = oracle.predict(seqs)  # (N, T)
    pred_ref = oracle.predict(ref_seqs)
    ref_cols = {}
    for p in props:
        if p in reference.columns:
            ref_cols[p] = reference.columns.index(p)
        elif len(reference.columns) == 1 and len(props) == 1:
            ref_cols[p] = 0
    ref_bins = spec.bins(ref_vals[:, [ref_cols[p] for p in props]]) if spec is not None and len(ref_cols) == len(props) else None
    # oracle predictions of real sequences are compared only on rows the oracle did not train on (its held-out
    # test rows) when the oracle directory lists them: predictions on training rows are overfit
    heldout = _oracle_heldout(oracle_dir)
    o_mask = np.array([s in heldout for s in ref_seqs], dtype=bool) if heldout else np.zeros(0, bool)
    if o_mask.sum() >= 20:
        real_rows = f"oracle held-out rows ({int(o_mask.sum())})"
    else:
        o_mask = np.ones(len(ref_seqs), dtype=bool)
        real_rows = f"all reference rows ({len(ref_seqs)}; the oracle may have trained on them)"
    pred_o, vals_o = pred_ref[o_mask], ref_vals[o_mask]
    bins_o = ref_bins[o_mask] if ref_bins is not None else None

    novelty_d, _ = nearest_distances(seqs, ref_all, progress=cfg.progress)
    real_n = int(np.median([len(v) for v in groups.values()]))
    sub_idx = rng.choice(len(ref_seqs), min(real_n, len(ref_seqs)), replace=False)
    real_sub = [ref_seqs[i] for i in sub_idx]
    baseline = {
        "n": len(real_sub),
        "diversity": diversity(real_sub, cfg.max_pairs, cfg.seed),
        "gc": _gc(real_sub),
        **{f"kmer{k}_js": kmer_divergence(real_sub, ref_seqs, k) for k in cfg.kmer_sizes},
    }
    # nearest-neighbour distance of real sequences to the *other* real sequences (how close real data are)
    probe = ref_keep[sub_idx[:50]]  # rows of the full reference
    others = np.ones(len(ref_all), dtype=bool)
    others[probe] = False
    d_real, _ = nearest_distances([ref_all[i] for i in probe], [ref_all[i] for i in np.flatnonzero(others)])
    baseline["nearest_real_distance_mean"] = float(d_real.mean())

    rows, per_seq = [], []
    for g, idx in groups.items():
        gs = [seqs[i] for i in idx]
        row = {"condition": g or "(none)", "n": len(idx), "length_mean": float(np.mean([len(s) for s in gs])), "gc": _gc(gs)}
        for p in props:
            col = cols[p]
            pr = pred_gen[idx, col]
            srt = np.sort(pr)
            k = min(cfg.top_k, len(pr))
            row[f"{p}:oracle_mean"] = float(pr.mean())
            row[f"{p}:oracle_std"] = float(pr.std())
            row[f"{p}:oracle_top{cfg.top_k}_mean"] = float(srt[-k:].mean())
            row[f"{p}:oracle_bottom{cfg.top_k}_mean"] = float(srt[:k].mean())
            want = requested[g].get(p)
            if spec is not None and want is not None:
                pb = spec.property_bins(p)
                lo, hi = pb.bounds(want)
                row[f"{p}:requested_class"] = want
                row[f"{p}:fraction_in_class"] = float(np.mean((pr >= lo) & (pr < hi)))
                # the oracle shrinks toward the mean; also compare with the class of real sequences' predictions
                if bins_o is not None:
                    j = props.index(p)
                    rp = pred_o[:, col]
                    levels = [float(np.mean(vals_o[:, ref_cols[p]] < e)) for e in pb.edges]
                    cal_edges = np.quantile(rp, levels)
                    cal_lo = -np.inf if want == 0 else cal_edges[want - 1]
                    cal_hi = np.inf if want == pb.n_bins - 1 else cal_edges[want]
                    row[f"{p}:fraction_in_class_calibrated"] = float(np.mean((pr >= cal_lo) & (pr < cal_hi)))
                    real_pred = rp[bins_o[:, j] == want]
                    row[f"{p}:real_class_oracle_mean"] = float(real_pred.mean()) if len(real_pred) else float("nan")
        div = diversity(gs, cfg.max_pairs, cfg.seed)
        row.update({f"diversity_{k}": v for k, v in div.items()})
        nd = novelty_d[idx]
        row["novelty_min_distance"] = int(nd.min())
        row["novelty_mean_distance"] = float(nd.mean())
        row["novelty_median_distance"] = float(np.median(nd))
        row["exact_copies_of_reference"] = int((nd == 0).sum())
        for k in cfg.kmer_sizes:
            row[f"kmer{k}_js"] = kmer_divergence(gs, ref_seqs, k)
        rows.append(row)
        for i in idx:
            per_seq.append((records[i][0], g, seqs[i], [pred_gen[i, cols[p]] for p in props], int(novelty_d[i])))

    tests = {}
    for p in props:
        classes = sorted({requested[g][p] for g in groups if p in requested[g]})
        if len(classes) < 2:
            continue
        lo_c, hi_c = classes[0], classes[-1]
        col = cols[p]
        lo_idx = [i for g, idx in groups.items() if requested[g].get(p) == lo_c for i in idx]
        hi_idx = [i for g, idx in groups.items() if requested[g].get(p) == hi_c for i in idx]
        a, b = pred_gen[hi_idx, col], pred_gen[lo_idx, col]
        two = mannwhitneyu(a, b, alternative="two-sided")
        one = mannwhitneyu(a, b, alternative="greater")
        tests[p] = {
            "high_class": hi_c, "low_class": lo_c, "n_high": len(a), "n_low": len(b),
            "oracle_mean_high": float(a.mean()), "oracle_mean_low": float(b.mean()),
            "difference": float(a.mean() - b.mean()),
            "mannwhitney_u": float(two.statistic), "p_two_sided": float(two.pvalue), "p_high_greater": float(one.pvalue),
            "auc_high_vs_low": float(two.statistic / (len(a) * len(b))),
        }
        if bins_o is not None:  # the same test on real sequences of the two classes: what this oracle can tell apart
            j = props.index(p)
            ra, rb = pred_o[bins_o[:, j] == hi_c, col], pred_o[bins_o[:, j] == lo_c, col]
            if len(ra) and len(rb):
                tests[p]["real_auc_high_vs_low"] = float(mannwhitneyu(ra, rb).statistic / (len(ra) * len(rb)))
                tests[p]["real_n_high"], tests[p]["real_n_low"] = int(len(ra)), int(len(rb))
        if p in ref_cols and len(vals_o):
            tests[p]["top_n"] = _top_designs(a, pred_o[:, col], vals_o[:, ref_cols[p]], cfg.top_n)

    motif_summary = None
    if motifs_path is not None:
        motif_summary = _motif_tables(motifs_path, groups, seqs, ref_seqs, ref_bins, props, cfg, out_dir)
    elif (out_dir / "motifs.tsv").exists():
        (out_dir / "motifs.tsv").unlink()  # a table from an earlier run would not match this one

    real_by_class = {}
    if bins_o is not None:
        for j, p in enumerate(props):
            pb = spec.property_bins(p)
            real_by_class[p] = {}
            for k in range(pb.n_bins):
                sel = bins_o[:, j] == k
                real_by_class[p][str(k)] = {
                    "n": int(sel.sum()),
                    "measured_mean": float(vals_o[sel, ref_cols[p]].mean()) if sel.any() else float("nan"),
                    "oracle_mean": float(pred_o[sel, cols[p]].mean()) if sel.any() else float("nan"),
                }
    plot = out_dir / "activity.png"
    _plot(plot, props, groups, requested, pred_gen, cols, pred_o, bins_o, spec, real_label="real: " + real_rows)

    summary = {
        "generated": str(generated),
        "n_generated": len(seqs),
        "oracle": str(oracle_dir),
        "oracle_heldout": getattr(oracle, "report", {}).get("heldout", {}),
        "reference": reference.source,
        "n_reference": len(ref_all),
        "property_to_oracle_target": {p: oracle.targets[c] for p, c in cols.items()},
        "conditions": rows,
        "high_vs_low": tests,
        "real_by_class": real_by_class,
        "real_rows_for_oracle": real_rows,
        "real_baseline": baseline,
        "motifs": motif_summary,
        "plot": str(plot),
    }
    with atomic_write(out_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=2, default=float)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_write(out_dir / "conditions.tsv") as fh:
        fh.write("\t".join(keys) + "\n")
        for r in rows:
            fh.write("\t".join(_fmt(r.get(k, "")) for k in keys) + "\n")
    with atomic_write(out_dir / "sequences.tsv") as fh:
        fh.write("id\tcondition\tsequence\t" + "".join(f"oracle_{p}\t" for p in props) + "nearest_reference_distance\n")
        for rid, g, s, preds, nd in per_seq:
            fh.write(f"{rid}\t{g}\t{s}\t" + "".join(f"{v:.5g}\t" for v in preds) + f"{nd}\n")
    return summary


def _top_designs(gen_high: np.ndarray, real_pred: np.ndarray, real_measured: np.ndarray, top_n: int) -> dict:
    """The best designs against the best real sequences (regLM's comparison), all scored by the same oracle.

    gen_high: (G,) oracle predictions of the generated high-class sequences; real_pred, real_measured: (R,) oracle
    predictions and measured values of the real rows the oracle did not train on. The top n designs are picked by
    the oracle that then scores them, which favours them; the real top n are given both ways (by measured value, the
    honest target, and by the oracle, the same selection as the designs).
    """
    from scipy.stats import mannwhitneyu

    n = int(min(top_n, len(gen_high), len(real_pred)))
    gen_top = np.sort(gen_high)[-n:]
    by_measured = real_pred[np.argsort(real_measured, kind="stable")[-n:]]
    by_oracle = np.sort(real_pred)[-n:]
    return {
        "n": n,
        "generated_top_oracle_mean": float(gen_top.mean()),
        "real_top_by_measured_oracle_mean": float(by_measured.mean()),
        "real_top_by_measured_measured_mean": float(np.sort(real_measured)[-n:].mean()),
        "real_top_by_oracle_oracle_mean": float(by_oracle.mean()),
        "real_all_oracle_mean": float(real_pred.mean()),
        # P(a top design scores above a real top-n row by measured value); 0.5 = as good as the best real sequences
        "auc_generated_top_vs_real_top_measured": float(mannwhitneyu(gen_top, by_measured).statistic / (n * n)),
        "fraction_generated_top_above_real_top_median": float(np.mean(gen_top > np.median(by_measured))),
    }


def _oracle_heldout(oracle_dir) -> set[str]:
    """Sequences of the oracle's held-out test rows (``heldout_predictions.tsv``), or an empty set."""
    path = Path(oracle_dir) / "heldout_predictions.tsv"
    if not path.exists():
        return set()
    with open(path) as fh:
        next(fh, None)
        return {line.split("\t", 1)[0] for line in fh if line.strip()}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def _motif_tables(motifs_path, groups, seqs, ref_seqs, ref_bins, props, cfg: EvalConfig, out_dir: Path) -> dict:
    """Fraction of sequences with >= 1 hit of each motif per generated set and per real class; writes motifs.tsv."""
    from scipy.stats import spearmanr

    from dnalm.utils import atomic_write

    ms = read_motifs(motifs_path, tax_group=cfg.motif_tax_group)
    present_gen = scan_motifs(seqs, ms, cfg.motif_threshold) > 0  # (N_generated, M)
    rows = np.arange(len(ref_seqs))
    if len(rows) > cfg.max_motif_reference:  # frequencies from a random subset keep the scan to seconds
        rows = np.sort(np.random.default_rng(cfg.seed).choice(rows, cfg.max_motif_reference, replace=False))
    present_ref = scan_motifs([ref_seqs[i] for i in rows], ms, cfg.motif_threshold) > 0  # (R, M)
    ref_bins = ref_bins[rows] if ref_bins is not None else None
    frac = {f"generated:{g or '(none)'}": present_gen[idx].mean(0) for g, idx in groups.items()}
    frac["real:all"] = present_ref.mean(0)
    if ref_bins is not None and len(props) == 1:
        for k in np.unique(ref_bins[:, 0]):
            frac[f"real:{props[0]}={k}"] = present_ref[ref_bins[:, 0] == k].mean(0)
    names = list(frac)
    with atomic_write(out_dir / "motifs.tsv") as fh:
        fh.write("motif_id\tname\ttax_group\t" + "\t".join(f"frac_{n}" for n in names) + "\n")
        for m in range(len(ms)):
            fh.write(f"{ms.ids[m]}\t{ms.names[m]}\t{ms.tax_groups[m]}\t" + "\t".join(f"{frac[n][m]:.4f}" for n in names) + "\n")
    summary = {"file": ms.source, "n_motifs": len(ms), "threshold": cfg.motif_threshold, "tax_group": cfg.motif_tax_group,
               "n_reference_scanned": len(rows), "sets": {}}
    real = frac["real:all"]
    for g in groups:
        name = f"generated:{g or '(none)'}"
        f = frac[name]
        match = f"real:{g}" if f"real:{g}" in frac else "real:all"
        rho = spearmanr(f, frac[match]).statistic if np.std(f) > 0 and np.std(frac[match]) > 0 else float("nan")
        enrich = np.log2((f + 0.01) / (real + 0.01))
        top = np.argsort(-enrich)[:10]
        summary["sets"][name] = {
            "mean_motifs_hit_per_sequence": float(f.sum()),
            "compared_with": match,
            "spearman_with_real": float(rho),
            "top_enriched_vs_real": [{"motif": ms.ids[i], "name": ms.names[i], "frac": float(f[i]), "frac_real": float(real[i])} for i in top],
        }
    return summary


def _plot(path: Path, props, groups, requested, pred_gen, cols, pred_ref, ref_bins, spec, real_label="real") -> None:
    """Box plots of oracle predictions: generated by requested class beside real sequences by measured class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnalm.utils import atomic_path

    n = max(1, len(props))
    fig, axes = plt.subplots(1, n, figsize=(max(6, 1.6 * 5 + 2), 4.2), squeeze=False)
    for j, p in enumerate(props or [""]):
        ax = axes[0, j]
        if not p:
            ax.text(0.5, 0.5, "no conditioned property", ha="center")
            continue
        col = cols[p]
        n_cls = spec.property_bins(p).n_bins if spec is not None else 1 + max(requested[g].get(p, 0) for g in groups)
        data, pos, colors, labels = [], [], [], []
        for k in range(n_cls):
            gen_idx = [i for g, idx in groups.items() if requested[g].get(p) == k for i in idx]
            if ref_bins is not None:
                rv = pred_ref[ref_bins[:, j] == k, col]
                if len(rv):
                    data.append(rv)
                    pos.append(3 * k)
                    colors.append("#9e9e9e")
            if gen_idx:
                data.append(pred_gen[gen_idx, col])
                pos.append(3 * k + 1)
                colors.append("#1f77b4")
            labels.append(str(k))
        if data:
            bp = ax.boxplot(data, positions=pos, widths=0.8, patch_artist=True, showfliers=False)
            for patch, c in zip(bp["boxes"], colors):
                patch.set_facecolor(c)
        ax.set_xticks([3 * k + 0.5 for k in range(n_cls)])
        ax.set_xticklabels(labels)
        ax.set_xlabel(f"{p} class (real: measured, generated: requested)")
        ax.set_ylabel(f"oracle prediction ({p})")
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="#9e9e9e", label=real_label), Patch(color="#1f77b4", label="generated")], loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)

"""Attributions of a fine-tuned head and the motif they point at, on a task with a known answer.

1. trains a tiny dnalm classifier a few steps to tell random sequences from ones carrying an AP-1 site
   (``TGACTCA``) at a random place;
2. computes integrated-gradient attributions (dinucleotide-shuffled baselines) and ISM for the positives and
   reports how well each ranks the planted bases first (AUROC of site vs other bases);
3. writes ``attributions.npz``, ``summary.tsv`` and a logo of the top sequence with ``write_attributions``;
4. scans the attributed sequences for the planted motif (FIMO-style p-values) and shows that the hits carry the
   attribution;
5. with ``--motifs JASPAR_FILE``: attributes 400 more positives and runs TF-MoDISco on them; the discovered
   pattern is matched to the database (TOMTOM q-values) and drawn beside its best match (``motifs/patterns.png``).

Run: ``python examples/09_explain.py [OUT_DIR] [--steps N] [--motifs FILE]`` (a minute on one CPU thread; a few
more with ``--motifs``, whose first run compiles numba kernels).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import dnalm
from dnalm.explain import HeadTarget, attribute, one_hot
from dnalm.explain.files import write_attributions
from dnalm.explain.motifs import motif_set, scan
from finetune.heads import HeadConfig, SequenceModel

SITE = "TGACTCA"


def planted(n: int, rng: np.random.Generator, length: int = 40):
    """Sequences, labels (every other one carries the site) and site starts (-1 where none)."""
    seqs, labels, starts = [], [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), length))
        start = -1
        if i % 2:
            start = int(rng.integers(0, length - len(SITE)))
            s[start : start + len(SITE)] = SITE
        seqs.append("".join(s))
        labels.append(i % 2)
        starts.append(start)
    return seqs, np.array(labels), np.array(starts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="output folder (default: a temporary one)")
    ap.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    ap.add_argument("--motifs", help="JASPAR/MEME file: also discover motifs (TF-MoDISco) and match them to it")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="dnalm_explain_"))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    # 1. a tiny hybrid backbone with a binary head, trained on the one-hot path the attributions use
    lm = dnalm.build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                           mamba2={"d_state": 16, "headdim": 16, "expand": 2, "chunk_size": 16},
                           attention={"n_heads": 2, "n_kv_heads": 2})
    model = SequenceModel(lm, HeadConfig(kind="binary", pooling="mean", dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(args.steps):
        seqs, y, _ = planted(32, rng)
        x, mask = one_hot(seqs)
        logits = model.forward_onehot(torch.from_numpy(x), torch.from_numpy(mask))[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(y, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    seqs, y, starts = planted(40, np.random.default_rng(1))
    x, mask = one_hot(seqs)
    with torch.no_grad():
        acc = roc_auc_score(y, model.forward_onehot(torch.from_numpy(x), torch.from_numpy(mask))[:, 0].numpy())
    print(f"held-out AUROC of the classifier: {acc:.3f} (final training loss {loss.item():.3f})")

    # 2. attributions of the positives: do they rank the planted bases first?
    pos = y == 1
    is_site = np.zeros((pos.sum(), x.shape[2]), dtype=bool)
    for j, s in enumerate(starts[pos]):
        is_site[j, s : s + len(SITE)] = True
    target = HeadTarget(model)  # the head's logit as a function of one-hot input
    results = {}
    for method in ("ig", "ism"):
        a = attribute(target, x[pos], mask[pos], method=method, n_shuffles=4, steps=16)
        results[method] = a
        auroc = roc_auc_score(is_site.ravel(), a.contributions.sum(1).ravel())
        print(f"{method:>4}: AUROC planted bases vs the rest = {auroc:.3f}")
    ig = results["ig"]
    gap = np.abs(ig.contributions.sum((1, 2)) - (ig.scores - ig.baseline_scores)).mean()
    print(f"  ig completeness: mean |sum(contributions) - (f(x) - f(baseline))| = {gap:.3f} "
          f"(mean |f(x) - f(baseline)| = {np.abs(ig.scores - ig.baseline_scores).mean():.3f})")

    # 3. files: arrays, per-sequence summary, a logo of the top sequence
    names = [f"seq{i}" for i in np.flatnonzero(pos)]
    info = write_attributions(ig, x[pos], mask[pos], names, out / "attributions", top=1)
    print(f"wrote {info['npz']}, {info['summary']} and {info['logos'][0]}")

    # 4. scanning: hits of the planted motif, with the attribution inside each hit
    counts = np.array([[20.0 if b == c else 0.0 for c in SITE] for b in "ACGT"])
    hits = scan(x[pos], motif_set({"AP-1": counts}, pseudocount=0.5), pvalue=1e-3, names=names,
                contributions=ig.contributions, mask=mask[pos])
    print(f"{len(hits)} AP-1 hits (p <= 1e-3) in {pos.sum()} sequences; median share of the sequence's attribution "
          f"inside a hit: {hits.attribution_frac.median():.2f}")
    print(hits.head(5).to_string(index=False))

    # 5. discovery: TF-MoDISco on more positives, patterns matched to a motif database
    if args.motifs:
        from dnalm.explain.discover import discover, write_report
        from dnalm.explain.motifs import read_motifs

        seqs, y, _ = planted(800, np.random.default_rng(2))
        x, mask = one_hot(seqs)
        more = attribute(target, x[y == 1], mask[y == 1], method="ig", n_shuffles=2, steps=8)
        db = read_motifs(args.motifs)
        patterns = discover(x[y == 1], more.hypothetical, db, window=8, flank=3, min_cluster=15)
        report = write_report(patterns, db, out / "motifs", note="Planted AP-1 site (TGACTCA), tiny dnalm classifier.")
        for p in patterns:
            best = p.matches[0]
            print(f"{p.name}: {p.n_seqlets} seqlets, best match {best['motif_id']} {best['motif_name']} "
                  f"(q = {best['q_value']:.2g})")
        print(f"wrote {report} and {out / 'motifs' / 'patterns.png'}")


if __name__ == "__main__":
    main()

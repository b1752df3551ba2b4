"""README figure: TF-MoDISco on attributions that sit on a planted AP-1 8-mer (no model), matched to JASPAR 2024.

Run: python docs/images/explain_planted_modisco.py ../shared/data/jaspar2024_core/jaspar2024_core.transfac.gz OUT
(then copy OUT/patterns.png to docs/images/explain_planted_modisco.png).
"""

import sys

import numpy as np

from dnalm.explain.discover import discover, write_report
from dnalm.explain.motifs import read_motifs
from dnalm.explain.onehot import one_hot

rng = np.random.default_rng(0)
seqs, sites = [], []
for _ in range(300):
    s = list(rng.choice(list("ACGT"), 60)); st = int(rng.integers(5, 47)); s[st:st + 8] = "TGACTCAG"
    seqs.append("".join(s)); sites.append(st)
x, mask = one_hot(seqs)
hyp = rng.normal(0, 0.05, x.shape).astype(np.float32)
for i, st in enumerate(sites):
    hyp[i, :, st:st + 8] += x[i, :, st:st + 8]
db = read_motifs(sys.argv[1])
pats = discover(x, hyp, db, window=10, flank=3, min_cluster=20, n_leiden_runs=2)
write_report(pats, db, sys.argv[2], note="Attributions planted on TGACTCAG (AP-1 site) plus Gaussian noise; no model.")
for p in pats:
    print(p.name, p.n_seqlets, p.cwm.shape[1], [(m["motif_id"], m["motif_name"], f"{m['q_value']:.2g}") for m in p.matches[:3]])

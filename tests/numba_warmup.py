"""Compiles the explain extra's numba kernels into numba's on-disk cache, so the tests that use them load them.

tests/conftest.py starts this script once per test session, in a process of its own beside the tests, when a
collected test asks for the ``numba_warm`` fixture. In a fresh environment TOMTOM (memelite), TF-MoDISco
(modisco-lite) and the dinucleotide shuffle (tangermeme) compile their kernels on their first call, minutes of one
core on a busy 2-core machine; the run's tests meanwhile use the other core, and every later process (a test, an
example, a Snakemake job) loads the kernels from the cache in milliseconds. The calls below pass the argument types
dnalm passes (``dnalm.explain.discover``, ``dnalm.explain.onehot``); a different type would only compile again.

Run: ``python tests/numba_warmup.py`` (conftest passes it a descriptor of a lock file, locked until it exits: the
fixture waits on that lock). Nothing depends on it succeeding: a kernel it did not cache compiles on first call.
"""

from __future__ import annotations

import warnings

import numpy as np


def main() -> None:
    from dnalm.explain.discover import discover, match_patterns
    from dnalm.explain.motifs import motif_set
    from dnalm.explain.onehot import dinucleotide_shuffles, one_hot

    motif = "TGACTCAG"
    rng = np.random.default_rng(0)
    seqs, sites = [], []
    for _ in range(60):
        s = list(rng.choice(list("ACGT"), 30))
        st = int(rng.integers(2, 20))
        s[st : st + 8] = motif
        seqs.append("".join(s))
        sites.append(st)
    x, mask = one_hot(seqs)
    dinucleotide_shuffles(x[:2], mask[:2], n=2)  # tangermeme
    hyp = rng.normal(0, 0.05, x.shape).astype(np.float32)
    for i, st in enumerate(sites):
        hyp[i, :, st : st + 8] += x[i, :, st : st + 8]
    planted = np.array([[20.0 if b == c else 0.5 for c in motif] for b in "ACGT"])
    db = motif_set({"planted": planted, "other": rng.dirichlet(np.full(4, 0.4), size=7).T * 20}, pseudocount=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        discover(x, hyp, db, window=6, flank=2, min_cluster=5, n_leiden_runs=1)  # modisco-lite (+ TOMTOM on a match)
    match_patterns([db.ppms[0]], db)  # TOMTOM, whatever the clustering found


if __name__ == "__main__":
    main()

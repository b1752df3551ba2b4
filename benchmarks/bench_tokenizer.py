"""Tokenizer throughput (Mbp/s on one core): encode_np, encode, batch_encode, reverse complement."""

import time

import numpy as np
import torch

from dnalm.tokenizer import DNATokenizer, reverse_complement


def timeit(fn, n_bp, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_bp / best / 1e6


def main():
    torch.set_num_threads(1)
    tok = DNATokenizer()
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTacgtN"), size=10_000_000))
    short = [seq[i : i + 1000] for i in range(0, 1_000_000, 1000)]
    rows = [
        ("encode_np (10 Mbp string)", timeit(lambda: tok.encode_np(seq), len(seq))),
        ("encode -> list (10 Mbp)", timeit(lambda: tok.encode(seq), len(seq), repeat=2)),
        ("batch_encode (1000 x 1 kb)", timeit(lambda: tok.batch_encode(short), 1_000_000)),
        ("reverse_complement str (10 Mbp)", timeit(lambda: reverse_complement(seq), len(seq))),
    ]
    ids = torch.from_numpy(tok.encode_np(seq))
    rows.append(("reverse_complement ids (10 Mbp)", timeit(lambda: tok.reverse_complement(ids), len(seq))))
    print(f"{'operation':36s} {'Mbp/s':>10s}")
    for name, v in rows:
        print(f"{name:36s} {v:10.1f}")


if __name__ == "__main__":
    main()

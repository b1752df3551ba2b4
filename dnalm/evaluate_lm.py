"""Bits per base of a language model on held-out sequence, beside order-k Markov baselines.

What a DNA language model adds is what it predicts beyond k-mer statistics. :func:`evaluate_lm` scores every base
of the evaluation regions (tiled windows; a region's first base and N positions are not scored) with the model
and with order-k Markov chains (k = 0..K, add-alpha smoothing) fitted on the training chromosomes, k chosen on
a held-out tail of those chromosomes. Both score exactly the same positions.

Markov conventions: the context of base ``i`` is the ``k`` bases before it; where fewer than ``k`` valid bases
precede it inside its region (region start, after an N), the chain backs off to the order of the context that
exists. Probabilities are ``(count(ctx, b) + alpha) / (count(ctx) + 4 alpha)``. The model's probabilities are
renormalised over A, C, G, T so that both are distributions over the same four letters.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dnalm.errors import ConfigError, InputError
from dnalm.io.regions import Region
from dnalm.tokenizer import A_ID, N_ID, T_ID, DNATokenizer
from dnalm.utils import atomic_write

INVALID = 4  # code of N (and anything that is not A, C, G, T)


# ============================================================================================ sequence codes
def to_codes(ids: np.ndarray) -> np.ndarray:
    """Token ids -> uint8 codes A=0 C=1 G=2 T=3, everything else 4."""
    ids = np.asarray(ids)
    codes = (ids - A_ID).astype(np.int64)
    codes[(ids < A_ID) | (ids > T_ID)] = INVALID
    return codes.astype(np.uint8)


def context_lengths(codes: np.ndarray) -> np.ndarray:
    """For each position i, how many consecutive valid bases end at i - 1 (the usable context; 0 at i = 0)."""
    n = len(codes)
    idx = np.arange(n)
    last_bad = np.maximum.accumulate(np.where(codes >= INVALID, idx, -1))  # last invalid position <= i
    run = idx - last_bad  # valid bases ending at i (0 if i itself is invalid)
    out = np.zeros(n, dtype=np.int64)
    out[1:] = run[:-1]
    return out


def context_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Integer code of the k bases before each position (base i-1 is the least significant digit); garbage
    where fewer than k valid bases precede (callers mask with :func:`context_lengths`)."""
    n = len(codes)
    c = np.minimum(codes, 3).astype(np.int64)
    h = np.zeros(n, dtype=np.int64)
    for t in range(1, k + 1):
        h[t:] += c[:-t] * (4 ** (t - 1))
    return h


# ============================================================================================ Markov chains
@dataclass
class MarkovChains:
    """Order-0..K Markov chains over A, C, G, T: ``counts[k]`` is a (4**k, 4) table of next-base counts."""

    max_k: int
    alpha: float = 1.0
    counts: list[np.ndarray] = field(default_factory=list)
    n_bases: int = 0  # training bases (valid targets)

    @classmethod
    def fit(cls, sequences: list[np.ndarray], max_k: int, alpha: float = 1.0) -> MarkovChains:
        """Count (k-context, next base) pairs for k = 0..max_k over code arrays (see :func:`to_codes`).

        Only positions with at least k valid bases before them in their sequence count for order k.
        """
        if max_k < 0 or max_k > 12:
            raise ConfigError(f"max_k must be in 0..12, got {max_k}")
        if alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {alpha}")
        counts = [np.zeros(4 ** (k + 1), dtype=np.int64) for k in range(max_k + 1)]
        n_bases = 0
        for codes in sequences:
            codes = np.asarray(codes, dtype=np.uint8)
            if len(codes) == 0:
                continue
            valid = codes < INVALID
            n_bases += int(valid.sum())
            avail = context_lengths(codes)
            c = np.minimum(codes, 3).astype(np.int64)
            h = np.zeros(len(codes), dtype=np.int64)
            for k in range(max_k + 1):
                if k:
                    h[k:] += c[:-k] * (4 ** (k - 1))
                sel = valid & (avail >= k)
                counts[k] += np.bincount(h[sel] * 4 + c[sel], minlength=4 ** (k + 1))
        return cls(max_k=max_k, alpha=float(alpha), counts=[x.reshape(4**k, 4) for k, x in enumerate(counts)], n_bases=n_bases)

    def log2_probs(self, codes: np.ndarray, k: int, scored: np.ndarray | None = None) -> np.ndarray:
        """log2 P(base i | context) of the order-k chain (backing off where less context exists).

        Args:
            codes: one region's codes.
            k: chain order (<= max_k).
            scored: boolean mask of positions to score (default: valid bases after the first position).

        Returns:
            float64 array, NaN at positions not scored.
        """
        if not 0 <= k <= self.max_k:
            raise ConfigError(f"order {k} outside 0..{self.max_k}")
        codes = np.asarray(codes, dtype=np.uint8)
        n = len(codes)
        if scored is None:
            scored = default_scored(codes)
        out = np.full(n, np.nan)
        avail = context_lengths(codes)
        order = np.minimum(avail, k)
        c = np.minimum(codes, 3).astype(np.int64)
        for j in range(k + 1):
            sel = scored & (order == j)
            if not sel.any():
                continue
            h = context_codes(codes, j)[sel]
            table = self.counts[j].astype(np.float64)
            num = table[h, c[sel]] + self.alpha
            den = table[h].sum(axis=1) + 4 * self.alpha
            out[sel] = np.log2(num / den)
        return out

    def predictions(self, codes: np.ndarray, k: int, scored: np.ndarray | None = None) -> np.ndarray:
        """Arg-max next base (0..3) of the order-k chain at each position (-1 where not scored)."""
        codes = np.asarray(codes, dtype=np.uint8)
        if scored is None:
            scored = default_scored(codes)
        out = np.full(len(codes), -1, dtype=np.int64)
        order = np.minimum(context_lengths(codes), k)
        for j in range(k + 1):
            sel = scored & (order == j)
            if sel.any():
                out[sel] = self.counts[j][context_codes(codes, j)[sel]].argmax(axis=1)
        return out


def default_scored(codes: np.ndarray) -> np.ndarray:
    """Positions scored in a region: valid bases, except the region's first position (no context)."""
    scored = np.asarray(codes) < INVALID
    if len(scored):
        scored = scored.copy()
        scored[0] = False
    return scored


# ============================================================================================ the model
def model_log2_probs(model, ids: np.ndarray, length: int, batch_size: int = 8, device: str = "cpu",
                     progress=None) -> tuple[np.ndarray, np.ndarray]:
    """log2 P(base i | preceding bases of its tile) under ``model`` for one region, renormalised over ACGT.

    The region is cut into windows of ``length + 1`` tokens at stride ``length`` (the last one N-padded), so each
    position i >= 1 is predicted exactly once, from the up to ``length`` bases before it in its window.

    Args:
        model: a DNALM (``model(input_ids).logits``).
        ids: the region's token ids (1-D).
        length: model input length per window.
        batch_size: windows per forward pass.
        device: where to run.
        progress: optional callable(n_positions) called after each batch.

    Returns:
        (log2 probabilities, arg-max base codes 0..3), float64 / int64 arrays of the region's length; NaN / -1 at
        positions that are not scored (position 0, targets that are not A/C/G/T).
    """
    import torch

    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    out = np.full(n, np.nan)
    pred = np.full(n, -1, dtype=np.int64)
    starts = list(range(0, max(n - 1, 0), length))
    base = torch.arange(A_ID, T_ID + 1, device=device)
    for b0 in range(0, len(starts), batch_size):
        chunk = starts[b0 : b0 + batch_size]
        win = np.full((len(chunk), length + 1), N_ID, dtype=np.int64)
        for r, s in enumerate(chunk):
            piece = ids[s : s + length + 1]
            win[r, : len(piece)] = piece
        x = torch.from_numpy(win[:, :-1]).to(device)
        y = win[:, 1:]
        with torch.inference_mode():
            logits = model(x).logits[..., base].float()  # (b, L, 4)
            logp = torch.log_softmax(logits, dim=-1).double().cpu().numpy() / math.log(2.0)
        for r, s in enumerate(chunk):
            m = min(length, n - 1 - s)  # targets s+1 .. s+m are inside the region
            tgt = y[r, :m]
            ok = (tgt >= A_ID) & (tgt <= T_ID)
            pos = s + 1 + np.flatnonzero(ok)
            out[pos] = logp[r, np.flatnonzero(ok), tgt[ok] - A_ID]
            pred[s + 1 : s + 1 + m] = logp[r, :m].argmax(-1)
        if progress is not None:
            progress(sum(min(length, n - 1 - s) for s in chunk))
    pred[np.isnan(out)] = -1
    return out, pred


# ============================================================================================ regions
def split_regions(regions: list[Region], max_bases: int, block: int) -> list[Region]:
    """At most ``max_bases`` bases as evenly spaced blocks of ``block`` bp taken across the regions."""
    blocks = [Region(r.chrom, s, min(s + block, r.end)) for r in regions for s in range(r.start, r.end, block)]
    want = max(1, -(-max_bases // block))
    if want >= len(blocks):
        return regions
    pick = np.unique(np.linspace(0, len(blocks) - 1, want).round().astype(int))
    return [blocks[i] for i in pick]


def _recorded_splits(extra: dict, fasta: Path) -> dict[str, list[str]] | None:
    """The train/validation/test chromosomes a pretraining run recorded for this FASTA, if it used it."""
    from dnalm.data.windows import genome_name

    info = (extra or {}).get("pretrain") or {}
    genomes = [Path(p) for p in info.get("genomes", [])]
    name = genome_name(fasta)
    match = [g for g in genomes if g.resolve() == fasta.resolve() or genome_name(g) == name]
    if not match or not info.get("splits"):
        return None
    gname = genome_name(match[0])
    out = {}
    for split, entries in info["splits"].items():
        out[split] = [e.split(":", 1)[1] for e in entries if e.split(":", 1)[0] == gname]
    return out


# ============================================================================================ entry point
@dataclass
class EvalResult:
    """Results of :func:`evaluate_lm`."""

    model: str
    fasta: str
    regions: list[dict]
    n_bases: int  # scored bases
    length: int
    model_bits_per_base: float
    model_accuracy: float
    markov: list[dict]  # per k: k, val_bits_per_base, bits_per_base, accuracy
    chosen_k: int
    best_k_le3: int
    train_chroms: list[str]
    markov_train_bases: int
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """Human-readable summary."""
        lines = [
            f"model {self.model}: {self.model_bits_per_base:.4f} bits/base, next-base accuracy {self.model_accuracy:.4f}",
            (
                f"  on {self.n_bases:,} bases of {len(self.regions)} region(s) ({_region_summary(self.regions)}), "
                f"windows of {self.length} tokens"
            ),
            (
                f"order-k Markov chains (add-{self.alpha:g} smoothing), fitted on {len(self.train_chroms)} training "
                f"chromosome(s), {self.markov_train_bases:,} bases; k chosen on a held-out tail of them:"
            ),
            f"  {'k':>3} {'val bits/base':>14} {'bits/base':>10} {'accuracy':>9}",
        ]
        for row in self.markov:
            mark = "  <- chosen on validation" if row["k"] == self.chosen_k else ""
            lines.append(
                f"  {row['k']:>3} {row['val_bits_per_base']:>14.4f} {row['bits_per_base']:>10.4f} "
                f"{row['accuracy']:>9.4f}{mark}"
            )
        best3 = next(r for r in self.markov if r["k"] == self.best_k_le3)
        chosen = next(r for r in self.markov if r["k"] == self.chosen_k)
        lines.append(
            f"model vs best Markov with k <= 3 (k={self.best_k_le3}, {best3['bits_per_base']:.4f}): "
            f"{self.model_bits_per_base - best3['bits_per_base']:+.4f} bits/base"
        )
        lines.append(
            f"model vs chosen Markov (k={self.chosen_k}, {chosen['bits_per_base']:.4f}): "
            f"{self.model_bits_per_base - chosen['bits_per_base']:+.4f} bits/base"
        )
        return "\n".join(lines)


def _region_summary(regions: list[dict]) -> str:
    chroms = sorted({r["chrom"] for r in regions})
    return ", ".join(chroms[:6]) + (f", ... ({len(chroms)} chromosomes)" if len(chroms) > 6 else "")


def evaluate_lm(
    model_dir: str | os.PathLike,
    fasta: str | os.PathLike,
    chroms: list[str] | None = None,
    bed: str | os.PathLike | None = None,
    length: int | None = None,
    train_chroms: list[str] | None = None,
    max_k: int = 8,
    alpha: float = 1.0,
    markov_val_frac: float = 0.1,
    batch_size: int = 8,
    max_bases: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    dtype=None,
) -> EvalResult:
    """Score held-out sequence with a model and with order-k Markov chains.

    Args:
        model_dir: a saved model (``save_pretrained``).
        fasta: indexed genome FASTA.
        chroms: chromosomes to evaluate; default the test (else validation) chromosomes the model's pretraining
            run recorded for this genome.
        bed: BED file of regions to evaluate instead of whole chromosomes.
        length: window length (default: the pretraining run's validation length, else 1024).
        train_chroms: chromosomes the Markov chains are fitted on; default the run's training chromosomes for
            this genome, else every chromosome not evaluated.
        max_k: highest Markov order.
        alpha: add-alpha smoothing.
        markov_val_frac: tail fraction of each training chromosome held out to choose k.
        batch_size: windows per forward pass.
        max_bases: score at most this many bases (evenly spaced blocks across the regions).
        device: torch device.
        progress: show a progress bar.
        dtype: torch dtype of the model (None: as saved).

    Returns:
        An :class:`EvalResult`.
    """
    from tqdm.auto import tqdm

    from dnalm.io.genome import Genome
    from dnalm.models.lm import load_model, read_model_config

    fasta = Path(fasta)
    genome = Genome(fasta)
    model_cfg, extra = read_model_config(model_dir)
    model_cfg.require_causal("give next-base probabilities (bits per base)")  # before the baselines' work
    recorded = _recorded_splits(extra, fasta)
    if chroms and bed:
        raise ConfigError("give --chroms or --bed, not both")
    if bed:
        from dnalm.data import read_bed

        df = read_bed(bed, genome=genome)
        regions = [Region(genome.resolve(str(c)), int(s), int(e)) for c, s, e in zip(df["chrom"], df["start"], df["end"])]
        empty = [i for i, r in enumerate(regions) if r.end - r.start < 2]
        if empty:
            raise InputError(f"{bed}: record(s) at line(s) {[int(df['line'].iloc[i]) for i in empty[:5]]} shorter than 2 bp")
    else:
        if not chroms:
            chroms = (recorded or {}).get("test") or (recorded or {}).get("validation")
            if not chroms:
                raise ConfigError(
                    f"no chromosomes to evaluate: give --chroms or --bed (the model in {model_dir} records no "
                    f"held-out chromosomes of {fasta.name})"
                )
        regions = [Region(genome.resolve(c), 0, genome.chrom_sizes[genome.resolve(c)]) for c in chroms]
    eval_chroms = {r.chrom for r in regions}
    if train_chroms:
        train = [genome.resolve(c) for c in train_chroms]
    elif recorded and recorded.get("train"):
        train = [c for c in (genome.resolve(x) for x in recorded["train"]) if c not in eval_chroms]
    else:
        train = [c for c in genome.chroms if c not in eval_chroms]
    overlap = sorted(set(train) & eval_chroms)
    if overlap:
        raise ConfigError(f"training chromosomes {overlap} are also evaluated; the baseline would see the test sequence")
    if not train:
        raise ConfigError("no training chromosomes left for the Markov baseline (give --train-chroms)")
    if length is None:
        length = int(((extra or {}).get("pretrain") or {}).get("val_length") or 1024)
    if length < 1:
        raise ConfigError(f"--length must be >= 1, got {length}")
    if max_bases is not None:
        regions = split_regions(regions, max_bases, block=max(16 * length, 4096))
    if not 0.0 < markov_val_frac < 1.0:
        raise ConfigError(f"markov_val_frac must be in (0, 1), got {markov_val_frac}")

    tok = DNATokenizer()

    def codes_of(chrom, start, end):
        return to_codes(tok.encode_np(genome.fetch(chrom, start, end)))

    # --- Markov chains: choose k on held-out tails, then refit on the whole training chromosomes
    fit_part, val_part, full = [], [], []
    for c in train:
        codes = codes_of(c, 0, genome.chrom_sizes[c])
        cut = int(len(codes) * (1 - markov_val_frac))
        fit_part.append(codes[:cut])
        val_part.append(codes[cut:])
        full.append(codes)
    chains_sel = MarkovChains.fit(fit_part, max_k, alpha)
    val_bits = []
    for k in range(max_k + 1):
        lp = np.concatenate([chains_sel.log2_probs(v, k) for v in val_part])
        val_bits.append(float(-np.nansum(lp) / np.count_nonzero(~np.isnan(lp))))
    chosen = int(np.argmin(val_bits))
    chains = MarkovChains.fit(full, max_k, alpha)
    del fit_part, val_part, full

    # --- the model, on the same positions
    model = load_model(model_dir, device=device, dtype=dtype)
    if length > model.config.max_length:
        raise ConfigError(f"--length {length} exceeds the model's max_length {model.config.max_length}")
    region_codes, model_lp, model_pred = [], [], []
    total = sum(r.end - r.start - 1 for r in regions)
    bar = tqdm(total=total, unit="bp", desc="evaluate-lm", disable=not progress, mininterval=2.0)
    for r in regions:
        ids = tok.encode_np(genome.fetch(r.chrom, r.start, r.end))
        lp, pred = model_log2_probs(model, ids, length, batch_size=batch_size, device=device, progress=bar.update)
        region_codes.append(to_codes(ids))
        model_lp.append(lp)
        model_pred.append(pred)
    bar.close()
    lp_all = np.concatenate(model_lp)
    scored = ~np.isnan(lp_all)
    n = int(scored.sum())
    if n == 0:
        raise InputError("no base to score in the evaluation regions (all N?)")
    codes_all = np.concatenate(region_codes)
    model_bits = float(-lp_all[scored].sum() / n)
    model_acc = float((np.concatenate(model_pred)[scored] == codes_all[scored]).mean())

    rows = []
    for k in range(max_k + 1):
        lp = np.concatenate([chains.log2_probs(c, k) for c in region_codes])
        pr = np.concatenate([chains.predictions(c, k) for c in region_codes])
        if not np.array_equal(~np.isnan(lp), scored):  # both must score exactly the same positions
            raise RuntimeError("internal error: Markov and model scored different positions")
        rows.append({
            "k": k,
            "val_bits_per_base": val_bits[k],
            "bits_per_base": float(-lp[scored].sum() / n),
            "accuracy": float((pr[scored] == codes_all[scored]).mean()),
        })
    best3 = min((r for r in rows if r["k"] <= 3), key=lambda r: r["bits_per_base"])["k"]
    return EvalResult(
        model=str(model_dir), fasta=str(fasta), regions=[asdict(r) for r in regions], n_bases=n, length=length,
        model_bits_per_base=model_bits, model_accuracy=model_acc, markov=rows, chosen_k=chosen, best_k_le3=best3,
        train_chroms=train, markov_train_bases=chains.n_bases, alpha=alpha,
    )


def write_result(result: EvalResult, path: str | os.PathLike) -> Path:
    """Write results as TSV (``.tsv``: one row per predictor) or JSON (anything else), atomically."""
    path = Path(path)
    if path.suffix.lower() == ".tsv":
        with atomic_write(path) as fh:
            fh.write("predictor\tk\tbits_per_base\taccuracy\tval_bits_per_base\tchosen\tn_bases\n")
            fh.write(f"model\t\t{result.model_bits_per_base:.6f}\t{result.model_accuracy:.6f}\t\t\t{result.n_bases}\n")
            for r in result.markov:
                fh.write(
                    f"markov\t{r['k']}\t{r['bits_per_base']:.6f}\t{r['accuracy']:.6f}\t{r['val_bits_per_base']:.6f}\t"
                    f"{'yes' if r['k'] == result.chosen_k else ''}\t{result.n_bases}\n"
                )
    else:
        with atomic_write(path) as fh:
            json.dump(result.to_dict(), fh, indent=2)
    return path

"""In-silico saturation mutagenesis (ISM) with a causal DNA language model.

Every position of a sequence is mutated to every other base; the score is the mean log-likelihood difference
(mutant - reference) over the whole sequence (the reference base scores 0). Positions are handled in chunks that
continue one cache of the sequence read so far.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dnalm.errors import ConfigError, InputError
from dnalm.io.regions import Region, parse_region
from dnalm.tokenizer import BOS_ID, DNATokenizer
from dnalm.variants.plots import plot_ism
from dnalm.variants.scoring import EvalMode, parse_strands, token_logp
from dnalm.variants.windows import model_tokenizer


def _ism_one_strand(
    model, ctx: np.ndarray, a: int, b: int, batch_size: int, reuse_prefix: bool, bar
) -> np.ndarray:
    """LLR of every single-base change at positions [a, b) of ``ctx`` (T,) ids: (b - a, 4), ref base 0."""
    import torch

    device = model.device
    T = len(ctx)
    base_ids = np.asarray(DNATokenizer.base_ids, dtype=np.int64)
    full = torch.from_numpy(np.concatenate([[BOS_ID], ctx])).to(device)[None]  # (1, T+1)
    ref_logp = torch.log_softmax(
        model(full).logits[0, :T].float(), -1
    ).double()  # (T, V): row j predicts ctx[j]
    ref_tok = ref_logp.gather(-1, torch.from_numpy(ctx).to(device)[:, None])[:, 0]  # (T,)
    ref_cum = torch.cat([ref_tok.new_zeros(1), ref_tok.cumsum(0)])  # ref_cum[i] = sum_{j<i}
    ref_sum = float(ref_cum[-1])
    result = np.zeros((b - a, 4))
    # per position the bases to try (all four at an N)
    todo = [(i, [x for x in range(4) if ctx[i] != base_ids[x]]) for i in range(a, b)]
    cache = None
    if reuse_prefix:
        cache = model.allocate_cache(1, T + 1)
        model(full[:, : a + 1], cache=cache, num_last_tokens=1)  # [BOS] + ctx[:a]
    cached_to = a  # the cache holds [BOS] + ctx[:cached_to]
    k = 0
    while k < len(todo):
        # one chunk: consecutive whole positions, at most batch_size mutant rows (at least one position)
        end, n_rows = k, 0
        while end < len(todo) and (end == k or n_rows + len(todo[end][1]) <= batch_size):
            n_rows += len(todo[end][1])
            end += 1
        chunk = [(i, x) for i, xs in todo[k:end] for x in xs]
        i0 = todo[k][0]
        bar.update(end - k)
        k = end
        if not chunk:
            continue
        start = i0 if reuse_prefix else 0
        rows = np.tile(ctx[start:], (len(chunk), 1))  # (n, T - start)
        for r, (i, x) in enumerate(chunk):
            rows[r, i - start] = base_ids[x]
        ids = torch.from_numpy(rows).to(device)
        if reuse_prefix:
            if cached_to < i0:  # advance the shared cache to [BOS] + ctx[:i0]
                model(full[:, cached_to + 1 : i0 + 1], cache=cache, num_last_tokens=1)
                cached_to = i0
            rows_cache = cache.index_select(torch.zeros(len(chunk), dtype=torch.long, device=device))
            logits = model(ids, cache=rows_cache).logits  # (n, T - i0, V)
            ll = ref_cum[i0] + ref_logp[i0][ids[:, 0]]  # prefix terms + the first changed-context token
            if ids.shape[1] > 1:
                ll = ll + token_logp(logits[:, :-1], ids[:, 1:]).double().sum(1)
        else:
            bos = torch.full((len(chunk), 1), BOS_ID, dtype=torch.long, device=device)
            logits = model(torch.cat([bos, ids], 1)).logits  # (n, T + 1, V)
            ll = token_logp(logits[:, :-1], ids).double().sum(1)
        llr = ((ll - ref_sum) / T).cpu().numpy()
        for r, (i, x) in enumerate(chunk):
            result[i - a, x] = llr[r]
    return result


def ism(
    model,
    sequence_or_region: str | Region | tuple,
    genome=None,
    flank: int = 0,
    strands: str = "+",
    batch_size: int = 64,
    reuse_prefix: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """In-silico saturation mutagenesis: the LLR of every single-base substitution.

    Each position is changed to each of A, C, G, T; the score is the mean per-token log-likelihood of the mutated
    sequence minus that of the original (over the whole scored context, flanks included), the reference base
    scores exactly 0 (an N position has four scored changes). A bidirectional (masked) model scores instead the
    masked marginal, log p(base) - log p(reference base) with the position masked (:mod:`dnalm.variants.masked`).

    Args:
        model: a :class:`dnalm.models.DNALM`, causal or bidirectional.
        sequence_or_region: a DNA string, a region ``"chr:start-end"`` (1-based inclusive), a
            :class:`Region` or a ``(chrom, start, end)`` tuple (0-based half-open); regions need ``genome``.
        genome: :class:`dnalm.Genome` or FASTA path for regions.
        flank: genome bases added on each side of a region as context (N past the chromosome ends); they are
            read by the model but not mutated.
        strands: ``"+"`` (default), ``"-"`` (score the reverse complement, reported in + coordinates) or
            ``"both"`` (their mean).
        batch_size: mutated sequences per forward pass.
        reuse_prefix: continue one cache of the unmutated prefix instead of running every mutant from scratch.
        progress: tqdm bar over positions.

    Returns:
        (L, 4) float64 array, columns A, C, G, T, rows the positions of the sequence / region.
    """
    from tqdm.auto import tqdm

    tok = model_tokenizer(model)
    if isinstance(sequence_or_region, (Region, tuple)) or (
        isinstance(sequence_or_region, str) and ":" in sequence_or_region
    ):
        if genome is None:
            raise InputError(f"region {sequence_or_region!r} needs a genome (FASTA)")
        from dnalm.io.genome import Genome

        if isinstance(genome, (str, os.PathLike)):
            genome = Genome(genome)
        region = sequence_or_region
        if isinstance(region, tuple):
            region = Region(*region)
        elif isinstance(region, str):
            region = parse_region(region)
        context = genome.fetch(region.chrom, region.start - flank, region.end + flank, pad=True)
        a, b = flank, len(context) - flank
    else:
        context = str(sequence_or_region)
        a, b = 0, len(context)
        if flank:
            raise InputError("flank needs a region and a genome (a plain sequence has no surroundings)")
    if b <= a:
        raise InputError("empty sequence")
    ctx = tok.encode_np(context)
    T = len(ctx)
    if T + 1 > model.config.max_length:
        raise ConfigError(
            f"sequence of {T} bases (+1 [BOS]) is longer than the model's maximum length {model.config.max_length}"
        )
    strand_list = parse_strands(strands)
    results = []
    with (
        EvalMode(model),
        tqdm(total=(b - a) * len(strand_list), desc="ISM", unit="pos", disable=not progress) as bar,
    ):
        one_strand = _ism_one_strand
        if getattr(model, "is_bidirectional", False):  # masked LM: masked marginal per position
            from dnalm.variants.masked import ism_masked_one_strand

            def one_strand(model, ctx, a, b, batch_size, reuse_prefix, bar):
                return ism_masked_one_strand(model, ctx, a, b, batch_size, bar)

        for strand in strand_list:
            if strand == "+":
                results.append(one_strand(model, ctx, a, b, batch_size, reuse_prefix, bar))
            else:
                rc = tok.reverse_complement(ctx)
                res = one_strand(model, rc, T - b, T - a, batch_size, reuse_prefix, bar)
                results.append(res[::-1, ::-1].copy())  # back to + positions; A,C,G,T <-> T,G,C,A
    return np.mean(results, 0)


def ism_table(scores: np.ndarray, sequence: str, region: Region | None = None):
    """ISM scores as a DataFrame: position (1-based), chrom (for a region), ref, A, C, G, T, importance.

    ``importance`` is minus the mean LLR of the changes at a position (high = mutations are damaging).
    """
    import pandas as pd

    seq = sequence.upper()
    ref_mask = np.array([[c == base for base in "ACGT"] for c in seq])
    n_alt = np.maximum((~ref_mask).sum(1), 1)
    importance = -(scores * ~ref_mask).sum(1) / n_alt
    df = pd.DataFrame(scores, columns=list("ACGT"))
    first = (region.start + 1) if region is not None else 1
    df.insert(0, "ref", list(seq))
    df.insert(0, "position", np.arange(first, first + len(seq)))
    if region is not None:
        df.insert(0, "chrom", region.chrom)
    df["importance"] = importance
    return df


def ism_to_files(
    model,
    prefix: str | os.PathLike,
    sequence: str | None = None,
    region: str | None = None,
    genome=None,
    flank: int = 0,
    strands: str = "+",
    batch_size: int = 64,
    progress: bool = True,
):
    """Run :func:`ism` and write ``PREFIX.tsv`` and ``PREFIX.png`` (what ``dnalm ism`` runs).

    Returns:
        The ISM table (DataFrame).
    """
    from dnalm.io.genome import Genome
    from dnalm.utils import atomic_path

    if (sequence is None) == (region is None):
        raise InputError("give exactly one of a sequence or a region")
    reg = None
    if region is not None:
        if genome is None:
            raise InputError(f"region {region!r} needs a genome (--fasta)")
        genome = Genome(genome) if isinstance(genome, (str, os.PathLike)) else genome
        reg = parse_region(region)
        reg = Region(genome.resolve(reg.chrom), reg.start, reg.end)
        if reg.end > genome.length(reg.chrom):
            raise InputError(f"region {region}: ends past {reg.chrom} (length {genome.length(reg.chrom):,})")
        seq = genome.fetch(reg.chrom, reg.start, reg.end)
        scores = ism(
            model, reg, genome, flank=flank, strands=strands, batch_size=batch_size, progress=progress
        )
    else:
        seq = sequence.strip().upper()
        model_tokenizer(model).encode_np(seq)  # names a bad character
        scores = ism(model, seq, strands=strands, batch_size=batch_size, progress=progress)
    table = ism_table(scores, seq, reg)
    prefix = Path(prefix)
    tsv = prefix.with_name(prefix.name + ".tsv")
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    plot_ism(table, prefix.with_name(prefix.name + ".png"), title=str(reg) if reg else None)
    return table

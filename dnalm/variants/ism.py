"""In-silico saturation mutagenesis (ISM) of a DNA language model's likelihood or a fine-tuned head's prediction.

Every position of a sequence is mutated to every other base. With a language model the score is the mean
log-likelihood difference (mutant - reference) over the whole sequence (the reference base scores 0); positions are
handled in chunks that continue one cache of the sequence read so far. With a fine-tuned head
(:func:`ism_head`) the score is the change of one head output: a binary head's logit, a class's logit, a regression
target in its own units, or a per-base head's class logit at one position.
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


def ism_head(model, context: str, a: int = 0, b: int | None = None, output: int = 0, position: int | None = None,
             batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """ISM of a fine-tuned head: ``f(context with base c at i) - f(context)`` for positions ``a <= i < b``.

    ``f`` is the head's output before its link function, as :meth:`finetune.heads.SequenceModel.forward` gives it
    on token ids (the path ``dnalm predict`` runs): a binary logit, the logit of class ``output``, a per-base head's
    class-``output`` logit at base ``position`` of the context; a regression head's target ``output`` in the
    targets' own units (the standardised output times the target's std, i.e. the change of the prediction).

    Args:
        model: a :class:`finetune.heads.SequenceModel` (``SequenceModel.load(folder)``).
        context: the sequence the head reads (flanks included).
        a, b: the positions mutated (default all).
        output: output column (class of a multiclass or per-base head, target of a regression head; 0 for binary).
        position: per-base heads: the base (0-based in ``context``) whose output is scored.
        batch_size: mutant sequences per forward pass.

    Returns:
        (b - a, 4) float64, columns A, C, G, T; the reference base scores 0 (an N position has four changes).
    """
    import torch
    from tqdm.auto import tqdm

    b = len(context) if b is None else b
    cfg = model.config
    if not 0 <= output < cfg.num_outputs:
        raise ConfigError(f"output {output} is out of range: the {cfg.kind} head has {cfg.num_outputs} output(s)")
    if model.per_token and (position is None or not 0 <= position < len(context)):
        raise ConfigError(f"a per-base ({cfg.kind}) head needs --position in [0, {len(context)}) to score one base")
    tok = model.tokenizer
    device = next(model.parameters()).device
    enc = tok.batch_encode([context])  # bases only, no special tokens: column i is base i
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # (1, L)
    base_ids = torch.as_tensor(DNATokenizer.base_ids, device=device)  # A, C, G, T
    scale = float(model.target_std[output]) if cfg.kind == "regression" else 1.0

    def f(batch: torch.Tensor) -> np.ndarray:
        out = model(batch, mask.expand(len(batch), -1))  # (B, k) or (B, L, C)
        out = out[:, position] if out.dim() == 3 else out
        return out[:, output].double().cpu().numpy() * scale

    todo = [(i, c) for i in range(a, b) for c in range(4) if ids[0, i] != base_ids[c]]
    result = np.zeros((b - a, 4))
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), tqdm(total=len(todo), desc="ISM (head)", unit="mut", disable=not progress) as bar:
            ref = f(ids)[0]
            for s in range(0, len(todo), batch_size):
                part = todo[s : s + batch_size]
                batch = ids.repeat(len(part), 1)  # (B, L)
                rows = torch.arange(len(part), device=device)
                batch[rows, torch.as_tensor([i for i, _ in part], device=device)] = base_ids[[c for _, c in part]]
                for (i, c), v in zip(part, f(batch)):
                    result[i - a, c] = v - ref
                bar.update(len(part))
    finally:
        model.train(was)
    return result


def is_head_model(model) -> bool:
    """Whether ``model`` is a fine-tuned model (backbone + head, as ``dnalm predict`` loads) rather than an LM."""
    return hasattr(model, "forward_onehot") and hasattr(getattr(model, "config", None), "kind")


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
    output: int = 0,
    position: int | None = None,
):
    """Run :func:`ism` (a language model) or :func:`ism_head` (a fine-tuned model) on one sequence or region and
    write ``PREFIX.tsv`` and ``PREFIX.png`` (what ``dnalm ism`` runs).

    Args:
        output, position: a fine-tuned head's output column and, for a per-base head, the scored base (0-based in
            the sequence or region, flanks not counted); see :func:`ism_head`.

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
        reg = parse_region(region) if isinstance(region, str) else region
        reg = Region(genome.resolve(reg.chrom), reg.start, reg.end)
        if reg.end > genome.length(reg.chrom):
            raise InputError(f"region {region}: ends past {reg.chrom} (length {genome.length(reg.chrom):,})")
        seq = genome.fetch(reg.chrom, reg.start, reg.end)
    else:
        seq = sequence.strip().upper()
        model_tokenizer(model).encode_np(seq)  # names a bad character
    scores = _ism_any(model, seq, reg, genome, flank, strands, batch_size, progress, output, position)
    table = ism_table(scores, seq, reg)
    prefix = Path(prefix)
    tsv = prefix.with_name(prefix.name + ".tsv")
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    plot_ism(table, prefix.with_name(prefix.name + ".png"), title=str(reg) if reg else None,
             score=_score_name(model, output, position))
    return table


def _ism_any(model, seq: str, reg: Region | None, genome, flank: int, strands: str, batch_size: int,
             progress: bool, output: int, position: int | None) -> np.ndarray:
    """(L, 4) ISM scores of ``seq`` (the region ``reg`` of ``genome`` when given) by a language model or a head."""
    if not is_head_model(model):
        if reg is not None:
            return ism(model, reg, genome, flank=flank, strands=strands, batch_size=batch_size, progress=progress)
        if flank:
            raise InputError("flank needs a region and a genome (a plain sequence has no surroundings)")
        return ism(model, seq, strands=strands, batch_size=batch_size, progress=progress)
    if strands != "+":
        raise ConfigError("a fine-tuned head reads the sequence as it was trained to (strand_average in its "
                          "head.json); --strands is for language models: leave it at +")
    context, a = seq, 0
    if reg is not None and flank:
        context, a = genome.fetch(reg.chrom, reg.start - flank, reg.end + flank, pad=True), flank
    elif flank:
        raise InputError("flank needs a region and a genome (a plain sequence has no surroundings)")
    pos = None if position is None else position + a
    return ism_head(model, context.upper(), a, a + len(seq), output=output, position=pos, batch_size=batch_size,
                    progress=progress)


def _score_name(model, output: int, position: int | None) -> str:
    if not is_head_model(model):
        return "LLR"
    cfg = model.config
    what = {"binary": "logit", "regression": f"prediction {output}"}.get(cfg.kind, f"logit {output}")
    if cfg.classes and cfg.kind in ("multiclass", "token_classification", "multilabel"):
        what = f"logit of {cfg.classes[output]}"
    return f"{cfg.kind} head {what}" + (f" at base {position}" if position is not None else "")


def ism_records_to_files(model, out_dir: str | os.PathLike, records, genome=None, flank: int = 0,
                         strands: str = "+", batch_size: int = 64, progress: bool = True, output: int = 0,
                         position: int | None = None):
    """ISM of every record of a sequence input (:func:`dnalm.data.sequences.read_sequence_input`: FASTA, a table,
    or BED intervals + genome): ``OUT/ism.tsv`` (the records' tables one after another, with a ``name`` column
    first) and one plot per record, ``OUT/plots/NNN_<name>.png``.

    BED intervals are mutagenised on the genome's + strand and reported in 1-based genome coordinates (as
    ``--region``; ``flank`` adds context); FASTA and table records are numbered from 1.

    Returns:
        The combined table (DataFrame).
    """
    import pandas as pd

    from dnalm.io.genome import Genome
    from dnalm.utils import atomic_path

    out = Path(out_dir)
    if genome is not None and isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    coords = records.coords
    tables = []
    for k in range(len(records)):
        reg = None
        if coords is not None:
            reg = Region(str(coords["chrom"][k]), int(coords["start"][k]), int(coords["end"][k]))
            seq = genome.fetch(reg.chrom, reg.start, reg.end, pad=True).upper()
        else:
            seq = records.sequences[k]
            model_tokenizer(model).encode_np(seq)  # names a bad character
        scores = _ism_any(model, seq, reg, genome, flank, strands, batch_size, progress, output, position)
        table = ism_table(scores, seq, reg)
        name = str(records.names[k])
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:60]
        (out / "plots").mkdir(parents=True, exist_ok=True)
        plot_ism(table, out / "plots" / f"{k + 1:03d}_{safe}.png", title=name,
                 score=_score_name(model, output, position))
        table.insert(0, "name", name)
        tables.append(table)
    combined = pd.concat(tables, ignore_index=True)
    with atomic_path(out / "ism.tsv") as tmp:
        combined.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return combined

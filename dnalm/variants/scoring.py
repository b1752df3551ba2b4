"""Zero-shot variant scoring with a causal DNA language model: LLR, embedding distance, head deltas.

Scores of one variant (:func:`score_variants`):

- ``llr`` (Evo 2's convention): mean per-token log-likelihood of the ALT window minus that of the REF window,
  both exactly ``window`` bases long and centred on the variant (:mod:`dnalm.variants.windows`); negative = ALT
  less likely = more damaging. ``llr_sum`` is the same difference summed over the window (``llr * window``).
- ``embedding_cosine`` (BEND's convention): 1 - cosine similarity of the mean-pooled final hidden states of the
  REF and ALT windows; 0 = no change.
- ``head``: ``head(alt_ids) - head(ref_ids)`` for any callable (a fine-tuned head) taking a (B, L) id tensor.

``strands="both"`` averages the + and - scores.

Speed. Because the first-read flank is shared by REF and ALT, a causal model runs it once into an inference cache,
the cache is copied per row, and only the rest of the window runs twice (REF and ALT); identical prefixes and
suffixes in a batch (several ALTs at one site, duplicate records) are computed once. Log-likelihood terms of the
shared prefix cancel in ALT - REF. ``reuse_prefix=False`` scores full windows from scratch (the reference path;
same scores).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from dnalm.errors import ConfigError, InputError
from dnalm.tokenizer import BOS_ID
from dnalm.variants.windows import WindowPair, make_pair, model_tokenizer, windows_in_span

log = logging.getLogger(__name__)

SCORE_NAMES = ("llr", "llr_sum", "embedding_cosine", "masked_marginal")  # the last for bidirectional models
DEFAULT_WINDOW = 1024


def check_window(model, window: int) -> None:
    """Refuse a window that is not an integer >= 2 or does not fit the model with its [BOS] token."""
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise ConfigError(f"window must be an integer >= 2, got {window!r}")
    if window + 1 > model.config.max_length:
        raise ConfigError(
            f"window {window} (+1 [BOS] token) is longer than the model's maximum length {model.config.max_length}"
        )


def token_logp(logits, targets):
    """log p(target) from (B, T, V) logits and (B, T) targets, float32 -> (B, T)."""
    import torch

    return torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0]


class WindowPairScorer:
    """Scores batches of REF/ALT window pairs: per pair the log-likelihood sums and mean embeddings."""

    def __init__(self, model, want_embedding: bool):
        self.model = model
        self.want_embedding = want_embedding

    def full(self, pairs: list[WindowPair]) -> dict[str, np.ndarray]:
        """Reference path: both full windows of every pair from scratch."""
        import torch

        rows = np.stack([p.ref for p in pairs] + [p.alt for p in pairs])  # (2n, W)
        bos = np.full((len(rows), 1), BOS_ID, dtype=np.int64)
        ids = torch.from_numpy(np.concatenate([bos, rows], 1)).to(self.model.device)  # (2n, W+1)
        out = self.model(ids, return_hidden=self.want_embedding)
        ll = token_logp(out.logits[:, :-1], ids[:, 1:]).double().sum(1)  # (2n,)
        n = len(pairs)
        result = {"ll_ref": ll[:n], "ll_alt": ll[n:]}
        if self.want_embedding:
            emb = out.hidden_states[:, 1:].double().mean(1)  # (2n, d) over the window tokens
            result["emb_ref"], result["emb_alt"] = emb[:n], emb[n:]
        return {k: v.cpu().numpy() for k, v in result.items()}

    def reuse(self, pairs: list[WindowPair]) -> dict[str, np.ndarray]:
        """Prefix once, suffixes per REF/ALT; all pairs must share ``split``. Identical rows are run once.

        The log-likelihood sums cover the suffix only (the shared prefix terms cancel in ALT - REF).
        """
        import torch

        model, device = self.model, self.model.device
        W, s = len(pairs[0].ref), pairs[0].split
        prefix_index: dict[bytes, int] = {}
        suffix_index: dict[tuple[int, bytes], int] = {}
        prefixes, suffixes, suffix_prefix = [], [], []
        row_of = []  # (ref suffix row, alt suffix row) per pair
        for p in pairs:
            key = p.ref[:s].tobytes()
            if key not in prefix_index:
                prefix_index[key] = len(prefixes)
                prefixes.append(p.ref[:s])
            k = prefix_index[key]
            rows = []
            for seq in (p.ref, p.alt):
                skey = (k, seq[s:].tobytes())
                if skey not in suffix_index:
                    suffix_index[skey] = len(suffixes)
                    suffixes.append(seq[s:])
                    suffix_prefix.append(k)
                rows.append(suffix_index[skey])
            row_of.append(rows)
        pre = np.stack(prefixes)  # (n_pre, s)
        pre = np.concatenate([np.full((len(pre), 1), BOS_ID, dtype=np.int64), pre], 1)  # (n_pre, s+1)
        pre_ids = torch.from_numpy(pre).to(device)
        cache = model.allocate_cache(len(pre), W + 1)
        out = model(pre_ids, cache=cache, num_last_tokens=1, return_hidden=self.want_embedding)
        first_logp = torch.log_softmax(out.logits[:, -1].float(), -1)  # (n_pre, V): distribution of token s
        link = torch.as_tensor(suffix_prefix, device=device)
        suf_ids = torch.from_numpy(np.stack(suffixes)).to(device)  # (n_suf, W - s)
        out2 = model(suf_ids, cache=cache.index_select(link), return_hidden=self.want_embedding)
        ll = first_logp[link].gather(-1, suf_ids[:, :1])[:, 0].double()  # (n_suf,)
        if W - s > 1:
            ll = ll + token_logp(out2.logits[:, :-1], suf_ids[:, 1:]).double().sum(1)
        row = torch.as_tensor(row_of, device=device)  # (n, 2)
        result = {"ll_ref": ll[row[:, 0]], "ll_alt": ll[row[:, 1]]}
        if self.want_embedding:
            hsum = out2.hidden_states.double().sum(1)  # (n_suf, d)
            if s > 0:
                hsum = hsum + out.hidden_states[:, 1:].double().sum(1)[link]
            emb = hsum / W
            result["emb_ref"], result["emb_alt"] = emb[row[:, 0]], emb[row[:, 1]]
        return {k: v.cpu().numpy() for k, v in result.items()}


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return 1.0 - num / np.maximum(den, 1e-300)


def _reuse_batches(pairs: list[WindowPair], batch_size: int):
    """Index batches for the prefix-reuse path: one split per batch (the cache has one offset), the pairs of one
    prefix (the ALTs of a site on one strand) kept together, at most ``2 * batch_size`` distinct REF/ALT
    suffix rows per batch (as many rows as a from-scratch batch of ``batch_size`` pairs)."""
    groups: dict[int, dict[bytes, list[int]]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.split, {}).setdefault(p.ref[: p.split].tobytes(), []).append(i)
    for split in sorted(groups):
        batch: list[int] = []
        rows: set[tuple[bytes, bytes]] = set()
        for key, members in groups[split].items():
            for m0 in range(0, len(members), batch_size):  # a site with very many ALTs is split
                part = members[m0 : m0 + batch_size]
                new = {(key, seq[split:].tobytes()) for i in part for seq in (pairs[i].ref, pairs[i].alt)}
                if batch and len(rows | new) > 2 * batch_size:
                    yield batch
                    batch, rows = [], set()
                batch += part
                rows |= new
        if batch:
            yield batch


def _score_pairs(
    model,
    pairs: list[WindowPair],
    scores: Sequence[str],
    batch_size: int,
    reuse_prefix: bool,
    bar=None,
) -> dict[str, np.ndarray]:
    """Scores of each pair (all windows of one length), in input order; the caller sets eval/inference mode."""
    n = len(pairs)
    if getattr(model, "is_bidirectional", False):  # masked LM: masked marginal (dnalm.variants.masked)
        from dnalm.variants.masked import score_pairs_masked

        return score_pairs_masked(model, pairs, scores, batch_size, bar)
    out = {name: np.full(n, np.nan) for name in scores}
    if n == 0:
        return out
    want_emb = "embedding_cosine" in scores
    scorer = WindowPairScorer(model, want_emb)
    W = len(pairs[0].ref)
    if reuse_prefix:
        batches = _reuse_batches(pairs, batch_size)
    else:
        batches = (list(range(b0, min(n, b0 + batch_size))) for b0 in range(0, n, batch_size))
    for chunk in batches:
        batch = [pairs[i] for i in chunk]
        res = scorer.reuse(batch) if reuse_prefix else scorer.full(batch)
        delta = res["ll_alt"] - res["ll_ref"]
        if "llr" in out:
            out["llr"][chunk] = delta / W
        if "llr_sum" in out:
            out["llr_sum"][chunk] = delta
        if want_emb:
            out["embedding_cosine"][chunk] = _cosine_distance(res["emb_ref"], res["emb_alt"])
        if bar is not None:
            bar.update(len(chunk))
    return out


class EvalMode:
    """``model.eval()`` + ``torch.inference_mode()`` for a block, restoring the training flag after."""

    def __init__(self, model):
        import torch

        self.model = model
        self.inference = torch.inference_mode()

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.inference.__enter__()
        return self

    def __exit__(self, *exc):
        self.inference.__exit__(*exc)
        self.model.train(self.was_training)



def score_sequence_pairs(
    model,
    ref_seqs: Sequence[str],
    alt_seqs: Sequence[str],
    scores: Sequence[str] | None = None,
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Scores of REF/ALT sequence pairs (each pair of equal length; all pairs one length).

    Args:
        model: a :class:`dnalm.models.DNALM` (causal, or bidirectional: see :func:`scores_for_model`).
        ref_seqs, alt_seqs: DNA strings, pairwise of equal length.
        scores: any of ``llr``, ``llr_sum``, ``embedding_cosine`` (causal) or ``masked_marginal``,
            ``embedding_cosine`` (bidirectional); None = the model kind's default.
        batch_size: pairs per forward pass.
        reuse_prefix: run the shared prefix once (inference cache) instead of both full sequences.
        progress: show a tqdm bar.

    Returns:
        ``{score name: (n,) float64 array}``.
    """
    scores = scores_for_model(model, scores)
    if len(ref_seqs) != len(alt_seqs):
        raise InputError(f"{len(ref_seqs)} REF sequences but {len(alt_seqs)} ALT sequences")
    tok = model_tokenizer(model)
    pairs = [make_pair(tok, r, a) for r, a in zip(ref_seqs, alt_seqs)]
    lengths = {len(p.ref) for p in pairs}
    if len(lengths) > 1:
        raise InputError(f"all pairs must have one length, got lengths {sorted(lengths)}")
    if pairs:
        check_window(model, len(pairs[0].ref))
    from tqdm.auto import tqdm

    with (
        EvalMode(model),
        tqdm(total=len(pairs), desc="scoring pairs", unit="pair", disable=not progress) as bar,
    ):
        return _score_pairs(model, pairs, scores, batch_size, reuse_prefix, bar)


def check_scores(scores: Sequence[str] | str) -> tuple[str, ...]:
    """Score names from a list or a comma-separated string, checked against :data:`SCORE_NAMES`."""
    if isinstance(scores, str):
        scores = [s.strip() for s in scores.split(",") if s.strip()]
    unknown = [s for s in scores if s not in SCORE_NAMES]
    if unknown:
        raise ConfigError(f"unknown score(s) {', '.join(unknown)}; choose from {', '.join(SCORE_NAMES)}")
    return tuple(dict.fromkeys(scores))


def scores_for_model(model, scores: Sequence[str] | str | None) -> tuple[str, ...]:
    """The zero-shot scores, chosen by model kind when None: ``llr`` + ``embedding_cosine`` for a causal model,
    ``masked_marginal`` + ``embedding_cosine`` for a bidirectional (masked) one; asked-for scores are checked."""
    bidirectional = getattr(model, "is_bidirectional", False)
    if scores is None:
        scores = ("masked_marginal", "embedding_cosine") if bidirectional else ("llr", "embedding_cosine")
    scores = check_scores(scores)
    if bidirectional:
        from dnalm.variants.masked import check_masked_scores

        check_masked_scores(scores)
    elif "masked_marginal" in scores:
        raise ConfigError("masked_marginal needs a bidirectional (masked) language model; this model is causal "
                          "(use llr)")
    return scores


def parse_strands(strands: str) -> list[str]:
    """``"both"`` -> ``["+", "-"]``; ``"+"`` / ``"-"`` -> themselves."""
    if strands == "both":
        return ["+", "-"]
    if strands in ("+", "-"):
        return [strands]
    raise ConfigError(f"strands must be 'both', '+' or '-', got {strands!r}")


# ---------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------


def _head_deltas(
    head: Callable, model, ref_seqs, alt_seqs, batch_size: int, special_tokens: bool
) -> np.ndarray:
    """head(alt) - head(ref) for each pair: (n, k)."""
    import torch

    tok = model_tokenizer(model)
    device = model.device
    out = []
    with torch.inference_mode():
        for b0 in range(0, len(ref_seqs), batch_size):
            seqs = list(ref_seqs[b0 : b0 + batch_size]) + list(alt_seqs[b0 : b0 + batch_size])
            ids = tok.batch_encode(seqs, add_special_tokens=special_tokens)["input_ids"].to(device)
            if callable(
                getattr(head, "predict", None)
            ):  # a fine-tuned finetune.SequenceModel: predict(ids, mask)
                y = head.predict(ids, torch.ones_like(ids))
            else:
                y = head(ids)
            y = torch.as_tensor(y).float().reshape(len(seqs), -1).cpu().numpy()  # (2b, k)
            m = len(seqs) // 2
            out.append(y[m:] - y[:m])
    return np.concatenate(out, 0)


def _as_variant_table(variants, genome, strict: bool):
    import pandas as pd

    from dnalm.io.variants import VARIANT_COLUMNS, read_variants

    if isinstance(variants, pd.DataFrame) and all(c in variants.columns for c in VARIANT_COLUMNS):
        return variants.reset_index(drop=True)  # already read (and checked) by read_variants
    return read_variants(variants, genome, strict=strict)


def score_variants(
    model,
    genome,
    variants,
    window: int | None = None,
    strands: str = "both",
    scores: Sequence[str] | None = None,
    head: Callable | None = None,
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = True,
    strict: bool = False,
    head_special_tokens: bool = False,
    report_skipped: bool = True,
):
    """Score variants against a reference genome (zero-shot LLR, embedding distance, head delta).

    Args:
        model: a :class:`dnalm.models.DNALM` (``dnalm.load_model(dir)``), causal or bidirectional.
        genome: :class:`dnalm.Genome` or a FASTA path.
        variants: VCF / VCF.gz / BCF path, CSV/TSV path, or a DataFrame with chrom, pos (1-based), ref, alt
            (read with :func:`dnalm.read_variants`: REF is checked, multi-allelic records give one row per ALT).
        window: bases per REF/ALT window (default 1024, or the model's maximum length - 1 if shorter).
        strands: ``"both"`` (mean of the + and - strand scores), ``"+"`` or ``"-"``.
        scores: any of ``llr`` (mean per-token log-likelihood difference ALT - REF), ``llr_sum`` (summed),
            ``embedding_cosine`` (1 - cosine of mean-pooled embeddings); for a bidirectional model
            ``masked_marginal`` (log p(ALT) - log p(REF) at the masked site, substitutions only) instead of the
            LLRs. None (default) = by model kind: llr + embedding_cosine, or masked_marginal + embedding_cosine.
        head: optional callable taking (B, L) input ids and returning (B,) or (B, k) predictions, or an object
            with ``predict(ids, mask)`` (a fine-tuned ``finetune.SequenceModel``); adds column ``head`` (or
            ``head_0`` .. ``head_{k-1}``) = prediction(ALT) - prediction(REF), averaged over ``strands``.
        batch_size: variant windows per forward pass.
        reuse_prefix: compute the flank shared by REF and ALT once (inference cache); False runs both full
            windows from scratch (same scores, slower).
        progress: show a tqdm progress bar.
        strict: raise :class:`InputError` at the first variant that cannot be scored.
        head_special_tokens: give ``head`` its windows as ``[BOS] seq [EOS]`` (as ``batch_encode``) instead of
            bare base ids (the default, what ``finetune`` models take).
        report_skipped: log a warning counting the alleles that were not scored.

    Returns:
        DataFrame with columns chrom, pos, id, ref, alt, the score columns, status, message, record, allele,
        genome_chrom (one row per ALT allele, input order). Rows whose status is not ``"ok"`` have NaN scores.
    """
    from tqdm.auto import tqdm

    from dnalm.io.genome import Genome

    if isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    scores = scores_for_model(model, scores)
    strand_list = parse_strands(strands)
    if window is None:
        window = min(DEFAULT_WINDOW, model.config.max_length - 1)
    check_window(model, window)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    df = _as_variant_table(variants, genome, strict)
    ok = np.flatnonzero((df["status"] == "ok").to_numpy())
    tok = model_tokenizer(model)
    chroms = np.where(df["genome_chrom"].map(lambda c: isinstance(c, str)), df["genome_chrom"], df["chrom"])
    positions, refs, alts = df["pos"].to_numpy(), df["ref"].to_numpy(), df["alt"].to_numpy()
    n_str = len(strand_list)
    values = {name: np.full(len(df), np.nan) for name in scores}
    head_values = None
    # variants in chunks, so that memory stays bounded for large VCFs (the windows of a chunk only)
    chunk_size = max(1024, 32 * batch_size)
    with (
        EvalMode(model),
        tqdm(total=len(ok) * n_str, desc="scoring variants", unit="window pair", disable=not progress) as bar,
    ):
        for c0 in range(0, len(ok), chunk_size):
            rows = ok[c0 : c0 + chunk_size]
            pairs: list[WindowPair] = []  # ordered (variant, strand)
            windows: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in strand_list}
            for i in rows:
                p, ref, alt = int(positions[i]) - 1, refs[i], alts[i]
                span = genome.fetch(chroms[i], p - window, p + len(ref) + window, pad=True)
                for strand in strand_list:
                    ref_w, alt_w = windows_in_span(span, window, ref, alt, window, strand)
                    pairs.append(make_pair(tok, ref_w, alt_w))
                    if head is not None:
                        windows[strand][0].append(ref_w)
                        windows[strand][1].append(alt_w)
            per_pair = _score_pairs(model, pairs, scores, batch_size, reuse_prefix, bar)
            for name in scores:
                values[name][rows] = per_pair[name].reshape(len(rows), n_str).mean(1)  # mean over strands
            if head is not None:
                deltas = np.mean(
                    [
                        _head_deltas(head, model, *windows[s], batch_size, head_special_tokens)
                        for s in strand_list
                    ],
                    0,
                )  # (n, k)
                if head_values is None:
                    head_values = np.full((len(df), deltas.shape[1]), np.nan)
                head_values[rows] = deltas
    result = df[["chrom", "pos", "id", "ref", "alt"]].copy()
    for name in scores:
        result[name] = values[name]
    if head is not None:
        if head_values is None:  # nothing scorable: one NaN column
            head_values = np.full((len(df), 1), np.nan)
        k = head_values.shape[1]
        for j, name in enumerate(["head"] if k == 1 else [f"head_{j}" for j in range(k)]):
            result[name] = head_values[:, j]
    for c in ("status", "message", "record", "allele", "genome_chrom"):
        result[c] = df[c].to_numpy()
    if "masked_marginal" in scores:  # not defined for indels: NaN, said in the message
        from dnalm.variants.masked import INDEL_MESSAGE

        indel = (result["status"] == "ok") & (result["ref"].str.len() != result["alt"].str.len())
        result.loc[indel, "masked_marginal"] = np.nan
        result.loc[indel, "message"] = INDEL_MESSAGE
    result.attrs.update(df.attrs)
    zero_shot = "masked_marginal" if getattr(model, "is_bidirectional", False) else "llr"
    result.attrs.update({"window": int(window), "strands": strands, "scores": list(scores), "zero_shot": zero_shot})
    if report_skipped and len(ok) < len(df):
        log.warning(
            "%d of %d variant allele(s) not scored (NaN): %s",
            len(df) - len(ok),
            len(df),
            ", ".join(f"{n} {s}" for s, n in df.loc[df["status"] != "ok", "status"].value_counts().items()),
        )
    return result

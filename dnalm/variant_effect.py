"""Zero-shot variant-effect scores and in-silico mutagenesis (ISM) with a causal DNA language model.

Scores of one variant (``score_variants``):

- ``llr`` (Evo 2's convention): mean per-token log-likelihood of the ALT window minus that of the REF window,
  both exactly ``window`` bases long and centred on the variant; negative = ALT less likely = more damaging.
  ``llr_sum`` is the same difference summed over the window (``llr * window``).
- ``embedding_cosine`` (BEND's convention): 1 - cosine similarity of the mean-pooled final hidden states of the
  REF and ALT windows; 0 = no change.
- ``head``: ``head(alt_ids) - head(ref_ids)`` for any callable (a fine-tuned head) taking a (B, L) id tensor.

Windows (``variant_windows``). On the + strand the window reads ``L = window // 2`` genome bases left of the
variant, then the allele, then the genome from just after REF until the window holds ``window`` bases (N past a
chromosome end). REF and ALT windows therefore share their first ``L`` bases, and an indel only moves where the
right flank stops: a deletion pulls in more genome on the right, an insertion pushes it out. An allele longer
than the room left is cut at the window end. The - strand is the mirror image: the reverse complement of
(genome left of the variant, allele, ``R = window - L - 1`` bases right of REF), where the *right* flank is
fixed and the left flank absorbs the length change. For an SNV the - strand window is exactly the reverse
complement of the + strand window, and in both directions the flank that the model reads first is identical for
REF and ALT. ``strands="both"`` averages the + and - scores.

Speed. Because that first-read flank is shared, a causal model runs it once into an inference cache, the cache is
copied per row, and only the rest of the window runs twice (REF and ALT); identical prefixes and suffixes in a
batch (several ALTs at one site, duplicate records) are computed once. Log-likelihood terms of the shared prefix
cancel in ALT - REF. ``reuse_prefix=False`` scores full windows from scratch (the reference path; same scores).

ISM (``ism``): every position of a sequence mutated to every other base; the score is the same mean
log-likelihood difference over the whole sequence (the reference base scores 0). Positions are handled in
chunks that continue one cache of the sequence read so far.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnalm.errors import ConfigError, InputError
from dnalm.tokenizer import BOS_ID, DNATokenizer, reverse_complement

log = logging.getLogger(__name__)

SCORE_NAMES = ("llr", "llr_sum", "embedding_cosine")
DEFAULT_WINDOW = 1024
# score column -> VCF INFO ID
INFO_IDS = {"llr": "DNALM_LLR", "llr_sum": "DNALM_LLR_SUM", "embedding_cosine": "DNALM_EMB_COS"}
STATUS_INFO_ID = "DNALM_STATUS"
_INFO_DESCRIPTIONS = {
    "llr": "dnalm zero-shot log-likelihood ratio: mean per-token log-likelihood of the ALT window minus the REF "
    "window (equal-length windows centred on the variant; negative = ALT less likely)",
    "llr_sum": "dnalm log-likelihood ratio summed over the window (llr x window)",
    "embedding_cosine": "dnalm embedding distance: 1 - cosine similarity of mean-pooled REF and ALT window embeddings",
}


# ---------------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------------


def window_split(window: int, strand: str = "+") -> int:
    """Bases of genome flank the model reads before the allele: ``window // 2`` on +, ``window - window//2 - 1``
    on - (so that an SNV's - strand window is the reverse complement of its + strand window)."""
    left = window // 2
    return left if strand == "+" else window - left - 1


def _assemble(left: str, allele: str, right: str, window: int, strand: str) -> str:
    """left + allele + right cut to ``window``: on + the left flank is fixed, on - the right flank is."""
    if strand == "+":
        return (left + allele + right)[:window]
    s = left + allele + right
    return reverse_complement(s[len(s) - window :])


def variant_windows(
    genome, chrom: str, pos: int, ref: str, alt: str, window: int, strand: str = "+"
) -> tuple[str, str]:
    """The REF and ALT windows of one variant, each exactly ``window`` bases (see the module docstring).

    Args:
        genome: :class:`dnalm.Genome` (the windows' flanks come from it, N-padded past the chromosome ends).
        chrom: chromosome name (aliases allowed).
        pos: 1-based position of the first REF base (VCF POS).
        ref, alt: alleles (REF is written into the REF window as given; it should match the genome).
        window: window length in bases.
        strand: ``"+"`` or ``"-"`` (the - strand windows are reverse complemented).

    Returns:
        (ref_window, alt_window), upper case, in the strand's reading direction.
    """
    if strand not in ("+", "-"):
        raise InputError(f"strand must be '+' or '-', got {strand!r}")
    p = pos - 1
    # every base either window can use
    span = genome.fetch(chrom, p - window, p + len(ref) + window, pad=True)
    return _windows_in_span(span, window, ref, alt, window, strand)


def _windows_in_span(span: str, off: int, ref: str, alt: str, window: int, strand: str) -> tuple[str, str]:
    """:func:`variant_windows` on a pre-fetched stretch ``span`` in which REF starts at index ``off``
    (``span`` holds at least ``window`` bases on either side of REF)."""
    r = len(ref)
    ref, alt = ref.upper(), alt.upper()
    short = min(len(ref), len(alt))
    if strand == "+":
        n_left = window_split(window, "+")
        n_right = max(0, window - n_left - short)  # enough right flank for the shorter allele
    else:
        n_right = window_split(window, "-")
        n_left = max(0, window - n_right - short)
    left = span[off - n_left : off]
    right = span[off + r : off + r + n_right]
    return (_assemble(left, ref, right, window, strand), _assemble(left, alt, right, window, strand))


# ---------------------------------------------------------------------------------------------------------------
# Scoring pairs of equal-length windows
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Pair:
    """One REF/ALT window pair (a variant on one strand) and where the two first differ."""

    ref: np.ndarray  # (W,) token ids
    alt: np.ndarray  # (W,)
    split: int  # first index where ref and alt differ (capped at W - 1)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if len(diff) else len(a) - 1


def _check_window(model, window: int) -> None:
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise ConfigError(f"window must be an integer >= 2, got {window!r}")
    if window + 1 > model.config.max_length:
        raise ConfigError(
            f"window {window} (+1 [BOS] token) is longer than the model's maximum length {model.config.max_length}"
        )


def _token_logp(logits, targets):
    """log p(target) from (B, T, V) logits and (B, T) targets, float32 -> (B, T)."""
    import torch

    return torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0]


class _PairScorer:
    """Scores batches of REF/ALT window pairs: per pair the log-likelihood sums and mean embeddings."""

    def __init__(self, model, want_embedding: bool):
        self.model = model
        self.want_embedding = want_embedding

    def full(self, pairs: list[_Pair]) -> dict[str, np.ndarray]:
        """Reference path: both full windows of every pair from scratch."""
        import torch

        rows = np.stack([p.ref for p in pairs] + [p.alt for p in pairs])  # (2n, W)
        bos = np.full((len(rows), 1), BOS_ID, dtype=np.int64)
        ids = torch.from_numpy(np.concatenate([bos, rows], 1)).to(self.model.device)  # (2n, W+1)
        out = self.model(ids, return_hidden=self.want_embedding)
        ll = _token_logp(out.logits[:, :-1], ids[:, 1:]).double().sum(1)  # (2n,)
        n = len(pairs)
        result = {"ll_ref": ll[:n], "ll_alt": ll[n:]}
        if self.want_embedding:
            emb = out.hidden_states[:, 1:].double().mean(1)  # (2n, d) over the window tokens
            result["emb_ref"], result["emb_alt"] = emb[:n], emb[n:]
        return {k: v.cpu().numpy() for k, v in result.items()}

    def reuse(self, pairs: list[_Pair]) -> dict[str, np.ndarray]:
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
            ll = ll + _token_logp(out2.logits[:, :-1], suf_ids[:, 1:]).double().sum(1)
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


def _reuse_batches(pairs: list[_Pair], batch_size: int):
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
    pairs: list[_Pair],
    scores: Sequence[str],
    batch_size: int,
    reuse_prefix: bool,
    bar=None,
) -> dict[str, np.ndarray]:
    """Scores of each pair (all windows of one length), in input order; the caller sets eval/inference mode."""
    n = len(pairs)
    out = {name: np.full(n, np.nan) for name in scores}
    if n == 0:
        return out
    want_emb = "embedding_cosine" in scores
    scorer = _PairScorer(model, want_emb)
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


class _EvalMode:
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


def _tokenizer(model) -> DNATokenizer:
    return getattr(model, "tokenizer", None) or DNATokenizer()


def _make_pair(tok: DNATokenizer, ref_seq: str, alt_seq: str) -> _Pair:
    ref_ids, alt_ids = tok.encode_np(ref_seq), tok.encode_np(alt_seq)
    if len(ref_ids) != len(alt_ids):
        raise InputError(f"REF and ALT windows differ in length ({len(ref_ids)} vs {len(alt_ids)})")
    return _Pair(ref_ids, alt_ids, _first_difference(ref_ids, alt_ids))


def score_sequence_pairs(
    model,
    ref_seqs: Sequence[str],
    alt_seqs: Sequence[str],
    scores: Sequence[str] = ("llr", "embedding_cosine"),
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Scores of REF/ALT sequence pairs (each pair of equal length; all pairs one length).

    Args:
        model: a causal :class:`dnalm.models.DNALM`.
        ref_seqs, alt_seqs: DNA strings, pairwise of equal length.
        scores: any of ``llr``, ``llr_sum``, ``embedding_cosine``.
        batch_size: pairs per forward pass.
        reuse_prefix: run the shared prefix once (inference cache) instead of both full sequences.
        progress: show a tqdm bar.

    Returns:
        ``{score name: (n,) float64 array}``.
    """
    scores = _check_scores(scores)
    if len(ref_seqs) != len(alt_seqs):
        raise InputError(f"{len(ref_seqs)} REF sequences but {len(alt_seqs)} ALT sequences")
    tok = _tokenizer(model)
    pairs = [_make_pair(tok, r, a) for r, a in zip(ref_seqs, alt_seqs)]
    lengths = {len(p.ref) for p in pairs}
    if len(lengths) > 1:
        raise InputError(f"all pairs must have one length, got lengths {sorted(lengths)}")
    if pairs:
        _check_window(model, len(pairs[0].ref))
    from tqdm.auto import tqdm

    with (
        _EvalMode(model),
        tqdm(total=len(pairs), desc="scoring pairs", unit="pair", disable=not progress) as bar,
    ):
        return _score_pairs(model, pairs, scores, batch_size, reuse_prefix, bar)


def _check_scores(scores: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(scores, str):
        scores = [s.strip() for s in scores.split(",") if s.strip()]
    unknown = [s for s in scores if s not in SCORE_NAMES]
    if unknown:
        raise ConfigError(f"unknown score(s) {', '.join(unknown)}; choose from {', '.join(SCORE_NAMES)}")
    return tuple(dict.fromkeys(scores))


def _strand_list(strands: str) -> list[str]:
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

    tok = _tokenizer(model)
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
    scores: Sequence[str] = ("llr", "embedding_cosine"),
    head: Callable | None = None,
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = True,
    strict: bool = False,
    head_special_tokens: bool = False,
):
    """Score variants against a reference genome (zero-shot LLR, embedding distance, head delta).

    Args:
        model: a causal :class:`dnalm.models.DNALM` (``dnalm.load_model(dir)``).
        genome: :class:`dnalm.Genome` or a FASTA path.
        variants: VCF / VCF.gz / BCF path, CSV/TSV path, or a DataFrame with chrom, pos (1-based), ref, alt
            (read with :func:`dnalm.read_variants`: REF is checked, multi-allelic records give one row per ALT).
        window: bases per REF/ALT window (default 1024, or the model's maximum length - 1 if shorter).
        strands: ``"both"`` (mean of the + and - strand scores), ``"+"`` or ``"-"``.
        scores: any of ``llr`` (mean per-token log-likelihood difference ALT - REF), ``llr_sum`` (summed),
            ``embedding_cosine`` (1 - cosine of mean-pooled embeddings).
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

    Returns:
        DataFrame with columns chrom, pos, id, ref, alt, the score columns, status, message, record, allele,
        genome_chrom (one row per ALT allele, input order). Rows whose status is not ``"ok"`` have NaN scores.
    """
    from tqdm.auto import tqdm

    from dnalm.io.genome import Genome

    if isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    scores = _check_scores(scores)
    strand_list = _strand_list(strands)
    if window is None:
        window = min(DEFAULT_WINDOW, model.config.max_length - 1)
    _check_window(model, window)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    df = _as_variant_table(variants, genome, strict)
    ok = np.flatnonzero((df["status"] == "ok").to_numpy())
    tok = _tokenizer(model)
    chroms = np.where(df["genome_chrom"].map(lambda c: isinstance(c, str)), df["genome_chrom"], df["chrom"])
    positions, refs, alts = df["pos"].to_numpy(), df["ref"].to_numpy(), df["alt"].to_numpy()
    n_str = len(strand_list)
    values = {name: np.full(len(df), np.nan) for name in scores}
    head_values = None
    # variants in chunks, so that memory stays bounded for large VCFs (the windows of a chunk only)
    chunk_size = max(1024, 32 * batch_size)
    with (
        _EvalMode(model),
        tqdm(total=len(ok) * n_str, desc="scoring variants", unit="window pair", disable=not progress) as bar,
    ):
        for c0 in range(0, len(ok), chunk_size):
            rows = ok[c0 : c0 + chunk_size]
            pairs: list[_Pair] = []  # ordered (variant, strand)
            windows: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in strand_list}
            for i in rows:
                p, ref, alt = int(positions[i]) - 1, refs[i], alts[i]
                span = genome.fetch(chroms[i], p - window, p + len(ref) + window, pad=True)
                for strand in strand_list:
                    ref_w, alt_w = _windows_in_span(span, window, ref, alt, window, strand)
                    pairs.append(_make_pair(tok, ref_w, alt_w))
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
    result.attrs.update(df.attrs)
    result.attrs.update({"window": int(window), "strands": strands, "scores": list(scores)})
    if len(ok) < len(df):
        log.warning(
            "%d of %d variant allele(s) not scored (NaN): %s",
            len(df) - len(ok),
            len(df),
            ", ".join(f"{n} {s}" for s, n in df.loc[df["status"] != "ok", "status"].value_counts().items()),
        )
    return result


# ---------------------------------------------------------------------------------------------------------------
# Writing scores: TSV or the input VCF with INFO fields
# ---------------------------------------------------------------------------------------------------------------


def _output_kind(out: str | os.PathLike) -> str:
    name = Path(out).name.lower()
    if name.endswith((".vcf.gz", ".vcf.bgz")):
        return "vcf.gz"
    if name.endswith(".vcf"):
        return "vcf"
    if name.endswith((".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")):
        return "table"
    raise InputError(f"{out}: output must end in .vcf, .vcf.gz, .tsv (or .tsv.gz / .csv)")


def _score_columns(df) -> list[str]:
    return [c for c in df.columns if c in SCORE_NAMES or c == "head" or re.fullmatch(r"head_\d+", c)]


def _info_id(column: str) -> str:
    return INFO_IDS.get(column) or "DNALM_" + column.upper()


def _format_value(x: float) -> str:
    return "." if not np.isfinite(x) else f"{x:.7g}"


def _info_header_lines(columns: list[str], meta: dict) -> list[str]:
    from dnalm.io.variants import VARIANT_STATUSES

    lines = []
    for c in columns:
        desc = _INFO_DESCRIPTIONS.get(c, f"dnalm fine-tuned head prediction change ALT - REF ({c})")
        lines.append(f'##INFO=<ID={_info_id(c)},Number=A,Type=Float,Description="{desc}">')
    codes = "; ".join(f"{k}: {v}" for k, v in VARIANT_STATUSES.items()).replace('"', "'")
    lines.append(
        f'##INFO=<ID={STATUS_INFO_ID},Number=.,Type=String,Description="dnalm scoring status per ALT allele '
        f'(scores are missing unless ok). {codes}">'
    )
    lines.append("##dnalm_score_variants=" + ";".join(f"{k}={v}" for k, v in meta.items()))
    return lines


def _info_field(old: str, rows, columns: list[str], n_alts: int) -> str:
    """INFO column ``old`` with the dnalm keys replaced by the scores of ``rows`` (one per ALT, by allele)."""
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    kept = [kv for kv in (old.split(";") if old not in (".", "") else []) if kv.split("=", 1)[0] not in ours]
    by_allele = {int(r.allele): r for r in rows.itertuples()}
    added = []
    if n_alts > 0:
        for c in columns:
            added.append(
                f"{_info_id(c)}="
                + ",".join(
                    _format_value(getattr(by_allele[a], c)) if a in by_allele else "."
                    for a in range(1, n_alts + 1)
                )
            )
    statuses = [by_allele[a].status if a in by_allele else "missing" for a in range(1, max(n_alts, 1) + 1)]
    added.append(f"{STATUS_INFO_ID}=" + ",".join(statuses))
    return ";".join(kept + added)


def _vcf_lines_from_vcf(source: Path, df, columns: list[str], meta: dict) -> tuple[list[str], list[tuple]]:
    """Header lines and (contig, pos, line) of every record of the input VCF, with the dnalm INFO fields."""
    import pysam

    verbosity = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(source)) as vin:
            records = [str(rec).rstrip("\n") for rec in vin]
            # read after the records: contigs and INFO keys that htslib added on the fly are declared
            header = str(vin.header).rstrip("\n").split("\n")
    finally:
        pysam.set_verbosity(verbosity)
    n_records = int(df["record"].max()) + 1 if len(df) else 0
    if n_records != len(records):
        raise InputError(f"{source}: read {len(records)} records but the scores cover {n_records}")
    ours = {_info_id(c) for c in columns} | {STATUS_INFO_ID}
    header = [
        h
        for h in header
        if not (h.startswith("##INFO=<ID=") and h[len("##INFO=<ID=") :].split(",", 1)[0] in ours)
        and not h.startswith("##dnalm_score_variants=")
    ]
    header = header[:-1] + _info_header_lines(columns, meta) + header[-1:]
    groups = {k: g for k, g in df.groupby("record", sort=False)}
    out = []
    for i, line in enumerate(records):
        cols = line.split("\t")
        n_alts = 0 if cols[4] in (".", "") else len(cols[4].split(","))
        cols[7] = _info_field(cols[7], groups[i], columns, n_alts)
        out.append((cols[0], int(cols[1]), "\t".join(cols)))
    return header, out


def _vcf_lines_from_table(df, genome, columns: list[str], meta: dict) -> tuple[list[str], list[tuple]]:
    """A fresh VCF (header with the genome's contigs) for variants read from a table."""
    header = ["##fileformat=VCFv4.2"]
    contigs = list(genome.chrom_sizes.items()) if genome is not None else []
    known = {c for c, _ in contigs}
    header += [f"##contig=<ID={c},length={n}>" for c, n in contigs]
    extra = [c for c in dict.fromkeys(df["chrom"].astype(str)) if c not in known]
    header += [f"##contig=<ID={c}>" for c in extra]
    header += _info_header_lines(columns, meta)
    header.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    out = []
    for _, g in df.groupby("record", sort=True):
        first = g.iloc[0]
        alts = [a for a in g.sort_values("allele")["alt"] if a not in ("", ".")]
        vid = first["id"] if isinstance(first["id"], str) and first["id"] else "."
        cols = [
            str(first["chrom"]),
            str(int(first["pos"])),
            vid,
            first["ref"] or "N",
            ",".join(alts) or ".",
            ".",
            ".",
            ".",
        ]
        cols[7] = _info_field(".", g, columns, len(alts))
        out.append((cols[0], int(cols[1]), "\t".join(cols)))
    return header, out


def write_variant_scores(
    scores,
    out: str | os.PathLike,
    source: str | os.PathLike | None = None,
    genome=None,
    meta: dict | None = None,
) -> Path:
    """Write :func:`score_variants` results as TSV/CSV, or as VCF with the scores in INFO (atomically).

    VCF output keeps the input header and every input record (from ``source`` when it is a VCF), adds
    ``##INFO`` lines (Number=A) for the score columns and ``DNALM_STATUS`` (per ALT: ``ok`` or the reason the
    allele was not scored). ``.vcf.gz`` is bgzip-compressed and tabix-indexed (records sorted by contig and
    position for the index; a sorted input keeps its order).

    Args:
        scores: DataFrame from :func:`score_variants`.
        out: ``.vcf``, ``.vcf.gz``, ``.tsv``, ``.tsv.gz`` or ``.csv`` path.
        source: the variant file that was scored (a VCF keeps its header and lines); None or a table builds a
            new VCF from the rows.
        genome: :class:`dnalm.Genome` for the contig lines of a new VCF.
        meta: key=value pairs for the ``##dnalm_score_variants`` header line.

    Returns:
        ``out`` as a Path.
    """
    import pysam

    from dnalm.io.variants import _is_vcf
    from dnalm.utils import atomic_path, atomic_write

    out = Path(out)
    kind = _output_kind(out)
    if kind == "table":
        sep = "," if out.name.lower().endswith((".csv", ".csv.gz")) else "\t"
        with atomic_path(out) as tmp:
            scores.to_csv(tmp, sep=sep, index=False, na_rep="NaN")
        return out
    columns = _score_columns(scores)
    meta = dict(meta or {})
    if source is not None and not isinstance(source, (str, os.PathLike)):
        source = None
    if source is not None and _is_vcf(Path(source)):
        header, records = _vcf_lines_from_vcf(Path(source), scores, columns, meta)
    else:
        header, records = _vcf_lines_from_table(scores, genome, columns, meta)
    if kind == "vcf":
        with atomic_write(out) as fh:
            fh.write("\n".join(header) + "\n")
            fh.writelines(line + "\n" for _, _, line in records)
        return out
    # .vcf.gz: tabix needs records grouped by contig and sorted by position
    rank = {}
    for h in header:
        m = re.match(r"##contig=<ID=([^,>]+)", h)
        if m:
            rank.setdefault(m.group(1), len(rank))
    for chrom, _, _ in records:
        rank.setdefault(chrom, len(rank))
    records = sorted(records, key=lambda r: (rank[r[0]], r[1]))
    tbi = Path(str(out) + ".tbi")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, plain = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".vcf", dir=out.parent)
    os.close(fd)
    try:
        Path(plain).write_text("\n".join(header) + "\n" + "".join(line + "\n" for _, _, line in records))
        with atomic_path(out) as tmp_gz, atomic_path(tbi) as tmp_tbi:
            pysam.tabix_compress(plain, str(tmp_gz), force=True)
            pysam.tabix_index(str(tmp_gz), preset="vcf", force=True, index=str(tmp_tbi))
    finally:
        Path(plain).unlink(missing_ok=True)
    return out


def score_variants_to_file(
    model,
    genome,
    variants: str | os.PathLike,
    out: str | os.PathLike,
    window: int | None = None,
    strands: str = "both",
    scores: Sequence[str] = ("llr", "embedding_cosine"),
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = True,
    strict: bool = False,
    model_name: str | None = None,
    head: Callable | None = None,
):
    """:func:`score_variants` on a file, then :func:`write_variant_scores` (what ``dnalm score-variants`` runs).

    Returns:
        The scores DataFrame.
    """
    from dnalm.io.genome import Genome

    _output_kind(out)  # fail early on a bad extension
    if isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    df = score_variants(
        model,
        genome,
        variants,
        window=window,
        strands=strands,
        scores=scores,
        batch_size=batch_size,
        reuse_prefix=reuse_prefix,
        progress=progress,
        strict=strict,
        head=head,
    )
    meta = {"window": df.attrs["window"], "strands": strands}
    if model_name:
        meta["model"] = model_name
    write_variant_scores(df, out, source=variants, genome=genome, meta=meta)
    return df


# ---------------------------------------------------------------------------------------------------------------
# In-silico mutagenesis
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Region:
    """A genomic interval, 0-based half-open."""

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start + 1}-{self.end}"


def parse_region(text: str) -> Region:
    """``chr:start-end`` (1-based inclusive, as samtools; commas allowed) -> :class:`Region` (0-based half-open)."""
    m = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", str(text))
    if not m:
        raise InputError(
            f"region {text!r}: expected CHROM:START-END (1-based, inclusive), e.g. chrI:1001-1200"
        )
    start, end = int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if start < 1 or end < start:
        raise InputError(f"region {text!r}: need 1 <= START <= END")
    return Region(m.group(1), start - 1, end)


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
                ll = ll + _token_logp(logits[:, :-1], ids[:, 1:]).double().sum(1)
        else:
            bos = torch.full((len(chunk), 1), BOS_ID, dtype=torch.long, device=device)
            logits = model(torch.cat([bos, ids], 1)).logits  # (n, T + 1, V)
            ll = _token_logp(logits[:, :-1], ids).double().sum(1)
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
    scores exactly 0 (an N position has four scored changes).

    Args:
        model: a causal :class:`dnalm.models.DNALM`.
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

    tok = _tokenizer(model)
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
    strand_list = _strand_list(strands)
    results = []
    with (
        _EvalMode(model),
        tqdm(total=(b - a) * len(strand_list), desc="ISM", unit="pos", disable=not progress) as bar,
    ):
        for strand in strand_list:
            if strand == "+":
                results.append(_ism_one_strand(model, ctx, a, b, batch_size, reuse_prefix, bar))
            else:
                rc = tok.reverse_complement(ctx)
                res = _ism_one_strand(model, rc, T - b, T - a, batch_size, reuse_prefix, bar)
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


def plot_ism(table, path: str | os.PathLike, title: str | None = None) -> Path:
    """Heatmap of the ISM LLRs and a logomaker logo of the per-position importance (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    from dnalm.utils import atomic_path

    L = len(table)
    mat = table[list("ACGT")].to_numpy().T  # (4, L)
    width = float(np.clip(0.15 * L + 2, 6, 60))
    fig, (ax_logo, ax_map) = plt.subplots(
        2, 1, figsize=(width, 4.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    logo = pd.DataFrame(0.0, index=range(L), columns=list("ACGT"))
    for j, (ref, imp) in enumerate(zip(table["ref"], table["importance"])):
        if ref in "ACGT":
            logo.loc[j, ref] = imp
    logomaker.Logo(logo, ax=ax_logo, color_scheme="classic")
    ax_logo.set_ylabel("importance\n(-mean LLR)")
    lim = float(np.nanmax(np.abs(mat))) or 1e-9
    im = ax_map.imshow(
        mat,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
        extent=(-0.5, L - 0.5, 3.5, -0.5),
    )
    ax_map.set_yticks(range(4), list("ACGT"))
    ax_map.set_xlabel(f"position (from {table['position'].iloc[0]})")
    fig.colorbar(im, ax=[ax_logo, ax_map], shrink=0.6, label="LLR (mutant - reference)")
    if title:
        ax_logo.set_title(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


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
        _tokenizer(model).encode_np(seq)  # names a bad character
        scores = ism(model, seq, strands=strands, batch_size=batch_size, progress=progress)
    table = ism_table(scores, seq, reg)
    prefix = Path(prefix)
    tsv = prefix.with_name(prefix.name + ".tsv")
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    plot_ism(table, prefix.with_name(prefix.name + ".png"), title=str(reg) if reg else None)
    return table


__all__ = [
    "Region",
    "ism",
    "ism_table",
    "ism_to_files",
    "parse_region",
    "plot_ism",
    "score_sequence_pairs",
    "score_variants",
    "score_variants_to_file",
    "variant_windows",
    "window_split",
    "write_variant_scores",
]

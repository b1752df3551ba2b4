"""Conditional sampling and beam search of DNA sequences with exact length and sequence constraints.

Sampling draws only A/C/G/T (``allowed_token_ids``) so every sequence has exactly the requested length; it runs
batched through the model's inference cache (:meth:`DNALM.generate`). GC-content and forbidden-motif constraints are
met by rejection (sampling) or by pruning hypotheses (beam search); both report how many candidates were rejected and
give up with a clear error after ``max_tries`` candidates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from dnalm.errors import DnalmError, InputError

BASES = "ACGT"


@dataclass
class Constraints:
    """Sequence constraints: GC fraction bounds and motifs that must not occur."""

    gc_min: float | None = None  # lowest allowed GC fraction (inclusive)
    gc_max: float | None = None  # highest allowed GC fraction (inclusive)
    forbid: list[str] = field(default_factory=list)  # motifs (A/C/G/T) that must not occur
    reverse_complement: bool = False  # also forbid the reverse complement of each motif

    @property
    def active(self) -> bool:
        return self.gc_min is not None or self.gc_max is not None or bool(self.forbid)

    def patterns(self) -> list[str]:
        """Every forbidden string (motifs and, if asked, their reverse complements)."""
        from dnalm.tokenizer import reverse_complement

        pats = [m.upper() for m in self.forbid]
        if self.reverse_complement:
            pats += [reverse_complement(m) for m in pats]
        return sorted(set(pats), key=lambda m: (len(m), m))

    def allowed_bases(self) -> str:
        """Bases that may be sampled at all (a forbidden single base is removed from the alphabet)."""
        singles = {p for p in self.patterns() if len(p) == 1}
        return "".join(b for b in BASES if b not in singles)

    def gc_count_range(self, length: int) -> tuple[int, int]:
        """Allowed GC counts ``[lo, hi]`` for a sequence of ``length``."""
        eps = 1e-9
        lo = 0 if self.gc_min is None else math.ceil(self.gc_min * length - eps)
        hi = length if self.gc_max is None else math.floor(self.gc_max * length + eps)
        return lo, hi

    def validate(self, length: int, prompt: str = "") -> list[str]:
        """Raise :class:`DnalmError` for constraints no sequence of ``length`` can meet; return warnings."""
        warnings = []
        for name, v in (("gc-min", self.gc_min), ("gc-max", self.gc_max)):
            if v is not None and not 0.0 <= v <= 1.0:
                raise DnalmError(f"--{name} {v}: a GC fraction must lie in [0, 1]")
        if self.gc_min is not None and self.gc_max is not None and self.gc_min > self.gc_max:
            raise DnalmError(f"impossible constraints: --gc-min {self.gc_min} is above --gc-max {self.gc_max}")
        for m in self.forbid:
            if not m or any(c not in BASES for c in m.upper()):
                raise DnalmError(f"--forbid-motif {m!r}: a forbidden motif must be a non-empty A/C/G/T string")
        for p in self.patterns():
            if len(p) > length:
                warnings.append(f"forbidden motif {p} is longer than the sequence ({length} nt) and cannot occur")
            if p in prompt:
                raise DnalmError(f"impossible constraints: the prompt {prompt!r} already contains forbidden motif {p}")
        alphabet = self.allowed_bases()
        if not alphabet:
            raise DnalmError("impossible constraints: every base (A, C, G, T) is forbidden")
        lo, hi = self.gc_count_range(length)
        if lo > hi:
            raise DnalmError(
                f"impossible constraints: no GC count of a {length}-nt sequence lies in "
                f"[{self.gc_min}, {self.gc_max}] (would need {lo}..{hi} G/C)"
            )
        g0 = sum(c in "GC" for c in prompt)
        rest = length - len(prompt)
        reach_lo = g0 + (0 if set(alphabet) & set("AT") else rest)
        reach_hi = g0 + (rest if set(alphabet) & set("GC") else 0)
        if reach_hi < lo or reach_lo > hi:
            raise DnalmError(
                f"impossible constraints: with the prompt and allowed bases {alphabet} the GC count lies in "
                f"{reach_lo}..{reach_hi}, outside the required {lo}..{hi}"
            )
        return warnings

    def violation(self, seq: str) -> str | None:
        """The first constraint ``seq`` breaks (``"gc_low"``, ``"gc_high"`` or ``"motif:XYZ"``), or None."""
        if self.gc_min is not None or self.gc_max is not None:
            lo, hi = self.gc_count_range(len(seq))
            g = seq.count("G") + seq.count("C")
            if g < lo:
                return "gc_low"
            if g > hi:
                return "gc_high"
        for p in self.patterns():
            if p in seq:
                return f"motif:{p}"
        return None


@dataclass
class GenerationReport:
    """What one :func:`sample` call did: accepted, generated and rejected candidates by reason."""

    condition: str  # "A=4,B=0" ("" for an unconditioned model)
    requested: int
    accepted: int = 0
    generated: int = 0  # candidates drawn (= accepted + rejected + surplus); beam search: hypotheses scored
    rejected: dict = field(default_factory=dict)  # reason -> count
    surplus: int = 0  # candidates that passed but were not needed (the last batch overshot)
    seed: int | None = None
    method: str = "sampling"  # sampling | beam
    seconds: float = 0.0
    warnings: list = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return int(sum(self.rejected.values()))

    def summary(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        cond = self.condition or "(unconditioned)"
        return (
            f"{cond}: {self.accepted}/{self.requested} sequences, {self.generated} candidates, "
            f"{self.n_rejected} rejected ({why}), {self.surplus} surplus, {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_rejected"] = self.n_rejected
        return d


def _spec_of(model, spec):
    return spec if spec is not None else getattr(model, "conditioning", None)


def prompt_ids(model, condition=None, prompt: str = "", spec=None) -> tuple[list[int], dict]:
    """``[BOS] <cond tokens> prompt`` ids and the validated condition dict.

    Raises:
        DnalmError: a condition the model was not trained with, or a condition for an unconditioned model.
    """
    from dnalm.tokenizer import BOS_ID

    spec = _spec_of(model, spec)
    if spec is None:
        if condition:
            raise DnalmError("the model has no condition tokens (it was not fine-tuned as a generator); omit --condition")
        cond, prefix = {}, []
    else:
        cond = spec.parse(condition)
        prefix = spec.prefix_ids(model.tokenizer, cond)
    try:
        body = model.tokenizer.encode(prompt) if prompt else []
    except InputError as exc:
        raise DnalmError(f"--prompt: {exc}") from None
    if any(i not in model.tokenizer.base_ids for i in body):
        raise DnalmError(f"--prompt {prompt!r}: only A/C/G/T are allowed in a prompt")
    return [BOS_ID, *prefix, *body], cond


def _check_length(model, n_prefix: int, length: int, prompt: str, spec) -> list[str]:
    if length < 1:
        raise DnalmError(f"--length {length}: must be at least 1")
    if len(prompt) > length:
        raise DnalmError(f"the prompt ({len(prompt)} nt) is longer than --length {length}")
    need = n_prefix - len(prompt) + length
    if need > model.config.max_length:
        raise DnalmError(
            f"a {length}-nt sequence needs {need} tokens with [BOS] and condition tokens, more than the model's "
            f"maximum length of {model.config.max_length}"
        )
    warnings = []
    if spec is not None and spec.sequence_lengths and spec.sequence_lengths[1] > 0:
        lo, hi = spec.sequence_lengths
        if not lo <= length <= hi:
            warnings.append(f"length {length} is outside the training sequence lengths {lo}..{hi}")
    return warnings


def sample(
    model,
    condition: str | Mapping[str, int] | None = None,
    num: int = 1,
    length: int = 100,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    batch_size: int = 64,
    gc_min: float | None = None,
    gc_max: float | None = None,
    forbid_motifs: Sequence[str] = (),
    forbid_reverse_complement: bool = False,
    prompt: str = "",
    beam_size: int | None = None,
    guidance: float = 0.0,
    max_tries: int | None = None,
    spec=None,
    return_report: bool = False,
    progress: bool = False,
    on_batch: Callable[[list[str]], None] | None = None,
):
    """Generate ``num`` sequences of exactly ``length`` nt for one condition.

    Args:
        model: a :class:`dnalm.models.DNALM` (from :func:`generate.load_generator`, whose ``conditioning`` spec
            is used unless ``spec`` is given).
        condition: ``"A=4,B=0"`` or ``{"A": 4, "B": 0}``; every conditioned property must be set.
        num: sequences to return.
        length: length of each sequence including ``prompt``.
        temperature / top_k / top_p: sampling settings (temperature 0 = greedy).
        seed: makes the output reproducible (same seed and settings -> same sequences); None draws one
            (recorded in the report).
        batch_size: sequences decoded in parallel.
        gc_min / gc_max: GC fraction bounds (inclusive).
        forbid_motifs: motifs that must not occur (with ``forbid_reverse_complement`` also their reverse
            complements).
        prompt: fixed start of every sequence.
        beam_size: if set, beam search (deterministic, highest total log-probability first) instead of sampling;
            returns the best ``num <= beam_size`` beams.
        guidance: guidance weight w >= 0; sample from p(x_t | c)^(1+w) / p(x_t)^w, where p(x_t) mixes every
            class of the spec weighted by its posterior given the prefix (the generator used as its own
            classifier). 0 = plain conditional sampling; costs one extra decoded row per class.
        max_tries: most candidates to draw before giving up (default ``max(1000, 100 * num)``).
        spec: a :class:`generate.conditioning.ConditionSpec` overriding ``model.conditioning``.
        return_report: also return a :class:`GenerationReport`.
        on_batch: called with each batch's accepted sequences as they are drawn (a writer); they are then not
            kept, so memory does not grow with ``num``, and the returned list is empty.

    Returns:
        The sequences (and the report if asked).

    Raises:
        DnalmError: unknown condition, a length the model cannot produce, impossible constraints, or too few
            sequences passing the constraints within ``max_tries`` candidates.
    """
    spec = _spec_of(model, spec)
    if num < 1:
        raise DnalmError(f"--num {num}: must be at least 1")
    prompt = prompt.upper()
    ids, cond = prompt_ids(model, condition, prompt, spec)
    from generate.conditioning import format_condition

    report = GenerationReport(condition=format_condition(cond), requested=num)
    report.warnings += _check_length(model, len(ids), length, prompt, spec)
    cons = Constraints(gc_min, gc_max, [m.upper() for m in forbid_motifs], forbid_reverse_complement)
    report.warnings += cons.validate(length, prompt)
    alphabet = cons.allowed_bases()
    allowed = [model.tokenizer.vocab[b] for b in alphabet]
    max_tries = max_tries or max(1000, 100 * num)
    t0 = time.time()
    if guidance < 0:
        raise DnalmError(f"--guidance {guidance}: must be >= 0")
    alternatives = None
    if guidance > 0:
        if spec is None:
            raise DnalmError("--guidance needs a conditional generator (a model with condition tokens)")
        if beam_size is not None:
            raise DnalmError("--guidance applies to sampling, not to beam search")
        # one prompt per class combination; the requested one first
        combos = [cond] + [c for c in spec.all_conditions() if c != cond]
        alternatives = [prompt_ids(model, c, prompt, spec)[0] for c in combos]
        report.method = f"sampling+guidance({guidance:g})"
    if beam_size is not None:
        report.method = "beam"
        seqs, _ = beam_search(model, ids, length - len(prompt), beam_size, num, cons, allowed, prompt, report)
        report.seconds = time.time() - t0
        if on_batch is not None:
            on_batch(seqs)
            seqs = []
        return (seqs, report) if return_report else seqs
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    report.seed = seed
    gen = torch.Generator(device="cpu").manual_seed(seed)
    new_tokens = length - len(prompt)
    out: list[str] = []  # accepted sequences not yet handed to on_batch
    n_out = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num, desc=f"generate {report.condition or ''}".strip(), unit="seq")
    while n_out < num:
        if report.generated >= max_tries:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(report.rejected.items()))
            raise DnalmError(
                f"only {n_out} of {num} sequences met the constraints after {report.generated} candidates "
                f"(--max-tries; rejected: {why}); loosen the constraints or raise --max-tries"
            )
        needed = num - n_out
        rate = max(report.accepted / report.generated, 0.05) if report.generated else 1.0
        b = int(min(batch_size, max_tries - report.generated, max(needed, math.ceil(needed / rate))))
        x = torch.tensor([ids] * b, dtype=torch.long)
        if new_tokens > 0 and alternatives is not None:
            y = guided_generate(model, alternatives, b, new_tokens, guidance, temperature, top_k, top_p, gen, allowed)
        elif new_tokens > 0:
            y = model.generate(x, new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen,
                               allowed_token_ids=allowed)
        else:
            y = x
        report.generated += b
        for row in y[:, len(ids):].tolist():
            s = prompt + model.tokenizer.decode(row)
            why = cons.violation(s) if cons.active else None
            if why is not None:
                report.rejected[why] = report.rejected.get(why, 0) + 1
            elif n_out < num:
                out.append(s)
                n_out += 1
                report.accepted += 1
                if bar is not None:
                    bar.update(1)
            else:
                report.surplus += 1
        if on_batch is not None and out:
            on_batch(out)
            out = []
    if bar is not None:
        bar.close()
    report.seconds = time.time() - t0
    return (out, report) if return_report else out


@torch.no_grad()
def guided_generate(
    model,
    prompts: list[list[int]],
    num: int,
    new_tokens: int,
    weight: float,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    allowed: Sequence[int] = (7, 8, 9, 10),
    log_prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample ``num`` continuations of ``prompts[0]`` guided away from the other classes' prompts.

    Every sequence is decoded once per class prompt (all prompts have the same length) through one inference
    cache of ``num * K`` rows. The running log-likelihood of the prefix under each class gives the posterior
    ``p(c | x_<t)``; the marginal ``p(x_t | x_<t) = sum_c p(c | x_<t) p(x_t | c, x_<t)`` is the "unconditional"
    model, and the next base is drawn from ``log p(x_t | c0) + w (log p(x_t | c0) - log p(x_t | x_<t))`` with the
    usual temperature / top-k / top-p. With ``w = 0`` this is plain conditional sampling.

    Args:
        prompts: K prompt id lists (``[BOS] <cond> prompt``), the requested class first.
        num: sequences to sample.
        new_tokens: bases to add.
        weight: guidance weight w.
        allowed: base ids that may be drawn.
        log_prior: (K,) log prior of the classes (default uniform).

    Returns:
        (num, T + new_tokens) ids of the requested-class rows (prompt included).
    """
    from dnalm.models.lm import sample_next

    K, T = len(prompts), len(prompts[0])
    if any(len(p) != T for p in prompts):
        raise DnalmError("guidance needs prompts of equal length for every class")
    dev = model.device
    model.eval()
    V = model.config.vocab_size
    allowed_t = torch.tensor(list(allowed), device=dev)
    x = torch.tensor(prompts, device=dev).repeat(num, 1)  # (num*K, T): row i*K + k = class k of sequence i
    cache = model.allocate_cache(num * K, T + new_tokens)
    logits = model(x, cache=cache, num_last_tokens=1).logits[:, -1]  # (num*K, V)
    cum = (log_prior.to(dev).float() if log_prior is not None else torch.zeros(K, device=dev)).expand(num, K).clone()
    out = []
    for step in range(new_tokens):
        lp = torch.log_softmax(logits.float()[:, allowed_t], -1).view(num, K, -1)  # (num, K, A)
        post = torch.log_softmax(cum, -1)  # (num, K) log p(c | x_<t)
        marginal = torch.logsumexp(post[..., None] + lp, dim=1)  # (num, A) log p(x_t | x_<t)
        guided = lp[:, 0] + weight * (lp[:, 0] - marginal)  # (num, A)
        full = torch.full((num, V), float("-inf"), device=dev)
        full[:, allowed_t] = guided
        nxt = sample_next(full, temperature, top_k, top_p, generator)  # (num,) vocabulary ids
        choice = (nxt[:, None] == allowed_t[None, :]).float().argmax(-1)  # (num,) index into allowed
        cum = cum + lp.gather(2, choice[:, None, None].expand(num, K, 1))[..., 0]
        out.append(nxt)
        if step < new_tokens - 1:
            logits = model(nxt.repeat_interleave(K)[:, None], cache=cache).logits[:, -1]
    return torch.cat([torch.tensor([prompts[0]] * num, device=dev), torch.stack(out, 1)], 1).cpu()


@torch.no_grad()
def beam_search(
    model,
    ids: list[int],
    new_tokens: int,
    beam_size: int,
    num: int,
    constraints: Constraints,
    allowed: list[int],
    prompt: str = "",
    report: GenerationReport | None = None,
) -> tuple[list[str], list[float]]:
    """Beam search over the inference cache for the most probable sequences meeting the constraints.

    Scores are sums of log-probabilities renormalised over the allowed bases. Hypotheses that contain a forbidden
    motif, or whose GC count can no longer land in the allowed range, are pruned at once (counted in ``report``).

    Args:
        ids: prompt ids (``[BOS] <cond> prompt``).
        new_tokens: bases to add after the prompt.
        beam_size: hypotheses kept per step.
        num: beams to return (<= beam_size).
        constraints: GC / motif constraints.
        allowed: base ids that may be chosen.

    Returns:
        ``num`` full sequences (prompt included) and their scores, best first.
    """
    if beam_size < 1 or num > beam_size:
        raise DnalmError(f"--num {num} must not exceed --beam-size {beam_size} (and the beam size must be >= 1)")
    from dnalm.tokenizer import DNATokenizer

    tok = DNATokenizer()
    letters = [tok.id_to_token(i) for i in allowed]
    model.eval()
    length = len(prompt) + new_tokens
    lo, hi = constraints.gc_count_range(length)
    gc_rate_min = 0 if set(letters) & set("AT") else 1
    gc_rate_max = 1 if set(letters) & set("GC") else 0
    patterns = constraints.patterns()
    dev = model.device
    allowed_t = torch.tensor(allowed, device=dev)
    cache = model.allocate_cache(1, len(ids) + new_tokens)
    logits = model(torch.tensor([ids], device=dev), cache=cache, num_last_tokens=1).logits[:, -1]  # (1, V)
    hyps = [prompt]
    scores = torch.zeros(1, device=dev, dtype=torch.float64)
    for step in range(new_tokens):
        logp = torch.log_softmax(logits.float()[:, allowed_t], -1).double()  # (n, A)
        cand = scores[:, None] + logp  # (n, A)
        remaining = new_tokens - step - 1
        mask = torch.zeros_like(cand, dtype=torch.bool)
        for i, h in enumerate(hyps):
            g = h.count("G") + h.count("C")
            for j, b in enumerate(letters):
                s = h + b
                gj = g + (b in "GC")
                why = None
                if gj > hi or gj + remaining * gc_rate_max < lo:
                    why = "gc_high" if gj > hi else "gc_low"
                elif gj + remaining * gc_rate_min > hi:
                    why = "gc_high"
                else:
                    for p in patterns:
                        if s.endswith(p):
                            why = f"motif:{p}"
                            break
                if why is not None:
                    mask[i, j] = True
                    if report is not None:
                        report.rejected[why] = report.rejected.get(why, 0) + 1
        cand = cand.masked_fill(mask, -math.inf)
        flat = cand.flatten()
        k = min(beam_size, int(torch.isfinite(flat).sum()))
        if report is not None:
            report.generated += flat.numel()
        if k == 0:
            raise DnalmError(
                f"beam search: every hypothesis breaks the constraints after {len(hyps[0])} nt; loosen the constraints"
            )
        top = torch.topk(flat, k)  # sorted, best first
        parent = torch.div(top.indices, len(letters), rounding_mode="floor")
        choice = top.indices % len(letters)
        hyps = [hyps[p] + letters[c] for p, c in zip(parent.tolist(), choice.tolist())]
        scores = top.values
        if step < new_tokens - 1:
            cache = cache.index_select(parent)
            nxt = allowed_t[choice][:, None]  # (k, 1)
            logits = model(nxt, cache=cache).logits[:, -1]
    if len(hyps) < num:
        raise DnalmError(f"beam search found only {len(hyps)} sequences meeting the constraints, fewer than --num {num}")
    if report is not None:
        report.accepted = num
    return hyps[:num], scores[:num].tolist()


def sequence_log_prob(model, ids: list[int], seq: str, allowed: list[int]) -> float:
    """Total log-probability of ``seq`` after prompt ids, renormalised over ``allowed`` (full forward, no cache)."""
    tok = model.tokenizer
    body = tok.encode(seq)
    x = torch.tensor([ids + body], device=model.device)
    with torch.no_grad():
        logits = model(x).logits[0, len(ids) - 1 : -1].float()  # (len(seq), V)
    logp = torch.log_softmax(logits[:, allowed], -1)
    pos = torch.tensor([allowed.index(t) for t in body])
    return float(logp[torch.arange(len(body)), pos].double().sum())


# ---------------------------------------------------------------------------------------------------------- FASTA


def fasta_record(rid: str, desc: str, seq: str, width: int = 0) -> str:
    """One FASTA record as text (header ``>id description``; ``width`` > 0 wraps the sequence lines)."""
    lines = [seq[i : i + width] for i in range(0, len(seq), width)] if width > 0 else [seq]
    return (f">{rid} {desc}\n" if desc else f">{rid}\n") + "".join(line + "\n" for line in lines)


def write_fasta(path, records: Sequence[tuple[str, str, str]], width: int = 0) -> None:
    """Write ``(id, description, sequence)`` records atomically; ``width`` > 0 wraps lines."""
    from dnalm.utils import atomic_write

    with atomic_write(path) as fh:
        for rid, desc, seq in records:
            fh.write(fasta_record(rid, desc, seq, width))


def read_fasta(path) -> list[tuple[str, str, str]]:
    """``(id, description, sequence)`` records of a FASTA file (upper case).

    Raises:
        InputError: the file is missing, empty, or has sequence lines before the first header.
    """
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    records, rid, desc, chunks = [], None, "", []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if rid is not None:
                    records.append((rid, desc, "".join(chunks).upper()))
                head = line[1:].split(None, 1)
                if not head:
                    raise InputError(f"{path}: line {n}: empty FASTA header")
                rid, desc, chunks = head[0], head[1] if len(head) > 1 else "", []
            else:
                if rid is None:
                    raise InputError(f"{path}: line {n}: sequence before the first '>' header")
                chunks.append(line)
    if rid is not None:
        records.append((rid, desc, "".join(chunks).upper()))
    if not records:
        raise InputError(f"{path}: no FASTA records")
    return records


def header_condition(desc: str) -> str:
    """The ``condition=...`` field of a generated record's description ("" if absent)."""
    for field_ in desc.split():
        if field_.startswith("condition="):
            return field_[len("condition="):]
    return ""

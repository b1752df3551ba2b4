"""Generate sequences for several conditions into a FASTA file and its JSON sidecar (what ``dnalm generate`` runs).

Each condition gets its own seed derived from ``(seed, condition index)``, so that adding a condition does not
change the sequences of the others; records are named ``gen000001``, ``gen000002``, ... across conditions, and
their headers carry the condition, guidance, length and GC. The sidecar ``OUT.json`` records the generator's
conditioning (bin edges), the settings and one rejection report per condition (used by ``dnalm evaluate-cre``).
The same arguments and seed give the same bytes from Python and from the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from dnalm.errors import DnalmError


def condition_seed(seed: int | None, index: int) -> int | None:
    """The sampling seed of the ``index``-th condition of a run with ``seed`` (None stays None)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1)


def split_motifs(items: Sequence[str]) -> list[str]:
    """Motifs from a list whose items may themselves be comma-separated (``["AAAA,TTTT", "GC"]``)."""
    return [m.strip() for item in items for m in item.split(",") if m.strip()]


def generate_to_fasta(
    model,
    out: str | os.PathLike,
    conditions: Sequence[str | dict | None] | None = None,
    num: int = 1,
    length: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    beam_size: int | None = None,
    guidance: float = 0.0,
    gc_min: float | None = None,
    gc_max: float | None = None,
    forbid_motifs: Sequence[str] = (),
    forbid_reverse_complement: bool = False,
    prompt: str = "",
    batch_size: int = 64,
    max_tries: int | None = None,
    progress: bool = True,
    model_name: str | None = None,
    echo: Callable[[str], None] | None = None,
    return_records: bool = True,
    prompts: Sequence[tuple[str, str]] | None = None,
) -> tuple[list[tuple[str, str, str]], dict]:
    """Sample ``num`` sequences per condition with :func:`generate.sampling.sample`; write FASTA + ``OUT.json``.

    Args:
        model: a generator from :func:`generate.conditioning.load_generator` (``model.conditioning`` may be None).
        out: the FASTA file; the sidecar is ``OUT.json``.
        conditions: one entry per condition (``"activity=4,b=0"``, a mapping, or None for no condition);
            ``"all"`` expands to every class combination of the generator. None or empty: one unconditioned run.
        num: sequences per condition.
        length: sequence length (default: the generator's training length).
        temperature, top_k, top_p, beam_size, guidance, gc_min, gc_max, prompt, batch_size, max_tries: passed to
            :func:`~generate.sampling.sample` for each condition.
        seed: the run's seed; condition ``i`` samples with :func:`condition_seed` ``(seed, i)``.
        forbid_motifs: motifs that must not occur (items may be comma-separated).
        forbid_reverse_complement: also forbid the motifs' reverse complements.
        progress: progress bars.
        model_name: recorded as ``model`` in the sidecar.
        echo: called with each condition's warnings and summary line (``print`` in the command).
        return_records: keep and return the records; False keeps none (the CLI: the FASTA is written batch by
            batch into a temporary file renamed at the end, so memory does not grow with ``num``).
        prompts: ``(name, sequence)`` prompts (e.g. from :func:`dnalm.data.sequences.read_sequence_input`):
            ``num`` sequences per prompt and condition, prompt by prompt, each header with ``prompt=NAME``;
            instead of ``prompt``. Run ``k`` (over prompts, then conditions) samples with seed
            :func:`condition_seed` ``(seed, k)``, so one prompt gives what ``prompt=`` gives.

    Returns:
        ``(records, sidecar)``: the FASTA's ``(id, description, sequence)`` records (empty unless
        ``return_records``) and the sidecar's content (``reports`` holds one rejection report per condition,
        ``n_sequences`` the number written).
    """
    from dnalm.utils import atomic_write
    from generate.conditioning import format_condition
    from generate.sampling import fasta_record, prompt_ids, sample

    spec = getattr(model, "conditioning", None)
    if isinstance(conditions, (str, dict)):
        conditions = [conditions]
    conditions = list(conditions or []) or [None]
    if "all" in conditions:
        if spec is None:
            raise DnalmError("--condition all: the model has no condition tokens")
        conditions = [format_condition(c) for c in spec.all_conditions()]
    if length is None:
        if spec is None or not spec.sequence_lengths[1]:
            raise DnalmError("--length is required for a model without a recorded training length")
        length = int(spec.sequence_lengths[1])
    motifs = split_motifs(forbid_motifs)
    if prompts is not None and prompt:
        raise DnalmError("give one prompt or a file of prompts, not both")
    runs = [(name, seq.upper(), cond) for name, seq in (prompts or [(None, prompt)]) for cond in conditions]
    records, reports = [], []
    written = 0
    with atomic_write(out) as fh:
        for ci, (prompt_name, start, cond) in enumerate(runs):
            label = format_condition(prompt_ids(model, cond, start)[1])  # as the report will name it
            head = f"condition={label} " if label else ""
            head += f"prompt={prompt_name} " if prompt_name is not None else ""
            head += f"guidance={guidance:g} " if guidance else ""

            def write(seqs: list[str], head: str = head) -> None:  # per batch: records go to disk, not a list
                nonlocal written
                for s in seqs:
                    written += 1
                    gc = (s.count("G") + s.count("C")) / len(s)
                    rec = (f"gen{written:06d}", f"{head}length={len(s)} gc={gc:.3f}", s)
                    fh.write(fasta_record(*rec))
                    if return_records:
                        records.append(rec)

            _, rep = sample(
                model, cond, num=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                seed=condition_seed(seed, ci), batch_size=batch_size, gc_min=gc_min, gc_max=gc_max,
                forbid_motifs=motifs, forbid_reverse_complement=forbid_reverse_complement, prompt=start,
                beam_size=beam_size, guidance=guidance, max_tries=max_tries, return_report=True,
                progress=progress, on_batch=write,
            )
            if echo is not None:
                for w in rep.warnings:
                    echo(f"warning: {w}")
                echo(rep.summary())
            reports.append(rep.to_dict() | ({"prompt": prompt_name} if prompt_name is not None else {}))
    settings = {"num": num, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
                "beam_size": beam_size, "guidance": guidance, "gc_min": gc_min, "gc_max": gc_max,
                "prompt": prompt if prompts is None else None, "batch_size": batch_size, "max_tries": max_tries}
    if prompts is not None:
        settings["prompts"] = [name for name, _ in prompts]
    meta = {
        "model": model_name,
        "conditioning": spec.to_dict() if spec is not None else None,
        "length": length,
        "settings": settings,
        "forbid_motifs": motifs,
        "forbid_reverse_complement": forbid_reverse_complement,
        "reports": reports,
        "n_sequences": written,
    }
    with atomic_write(str(out) + ".json") as fh:
        json.dump(meta, fh, indent=2)
    return records, meta


__all__ = ["condition_seed", "generate_to_fasta", "split_motifs"]

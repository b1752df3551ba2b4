"""Score a variant file in chunks, writing as it goes, resumable after a kill (what ``dnalm score-variants`` runs).

Records are read, scored and written a chunk at a time (:class:`dnalm.io.variants.VariantChunks`), so that memory
does not grow with the number of records. The scored lines go to ``OUT.dnalm-resume/body``; after each chunk the
body is flushed to disk and ``OUT.dnalm-resume/progress.json`` records how many records and bytes are done. At the
end the header and the body are assembled into ``OUT`` atomically (:func:`dnalm.io.variant_scores.assemble_scores`)
and the resume folder is removed. A run that is killed (SIGTERM, SIGINT, power loss) keeps that folder; the same
command run again checks that the inputs and settings are the same (else it starts over) and continues after the
last finished chunk. A run that stops on bad input removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dnalm.errors import DnalmError
from dnalm.io.output import atomic_write
from dnalm.io.variant_scores import (
    assemble_scores,
    output_kind,
    score_columns,
    table_record_lines,
    table_sep,
    vcf_header_for_table,
    vcf_header_from_vcf,
    vcf_record_lines,
)

log = logging.getLogger(__name__)

RESUME_SUFFIX = ".dnalm-resume"
CHUNK_RECORDS = 2048  # records per chunk: the unit of memory and of resumption


@dataclass
class ScoreRun:
    """What :func:`score_variants_to_file` did."""

    out: Path
    records: int = 0  # input records
    alleles: int = 0  # scored rows (one per ALT allele)
    status_counts: dict = field(default_factory=dict)
    resumed_records: int = 0  # records a previous, killed run had finished (not scored again)

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {s}" for s, n in sorted(self.status_counts.items(), key=lambda x: -x[1]))
        resumed = f"; resumed after {self.resumed_records:,} record(s) done earlier" if self.resumed_records else ""
        return (
            f"wrote {self.out}: {self.alleles:,} variant allele(s) from {self.records:,} record(s) ({counts}){resumed}"
        )


def resume_folder(out: str | os.PathLike) -> Path:
    """Where an unfinished run on ``out`` keeps its progress."""
    return Path(f"{out}{RESUME_SUFFIX}")


def _file_id(path: str | os.PathLike | None) -> dict | None:
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _model_id(model) -> str:
    """A cheap fingerprint of a model's weights (its config and a hash of every tensor's first values)."""
    h = hashlib.sha1(json.dumps(getattr(model.config, "to_dict", dict)(), sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return h.hexdigest()


def score_variants_to_file(
    model,
    genome,
    variants: str | os.PathLike,
    out: str | os.PathLike,
    window: int | None = None,
    strands: str = "both",
    scores: Sequence[str] | str | None = None,
    batch_size: int = 32,
    reuse_prefix: bool = True,
    progress: bool = True,
    strict: bool = False,
    model_name: str | None = None,
    head: Callable | None = None,
    chunk_records: int = CHUNK_RECORDS,
    resume: bool = True,
    selection=None,
) -> ScoreRun:
    """:func:`~dnalm.variants.score_variants` over a file, chunk by chunk, into ``out`` (see the module docstring).

    Args:
        model, genome, window, strands, scores, batch_size, reuse_prefix, strict, head: as
            :func:`~dnalm.variants.score_variants`.
        variants: VCF / VCF.gz / BCF or a CSV/TSV table (path).
        out: ``.vcf``, ``.vcf.gz`` (bgzip + .tbi), ``.tsv`` / ``.tsv.gz`` / ``.csv``.
        progress: a progress bar over records.
        model_name: recorded in the VCF header.
        chunk_records: records per chunk.
        resume: continue an unfinished run on ``out`` with the same inputs and settings (else start over).
        selection: a :class:`dnalm.variants.shard.Selection` (regions and/or a shard): only its records are
            scored and written (records keep their input numbers; see :func:`dnalm.variants.shard.merge_scores`).

    Returns:
        A :class:`ScoreRun` (counts only: the scores are in ``out``).
    """
    from tqdm.auto import tqdm

    from dnalm.io.genome import Genome
    from dnalm.io.variants import VariantChunks
    from dnalm.variants.scoring import DEFAULT_WINDOW, check_window, score_variants, scores_for_model

    out = Path(out)
    kind = output_kind(out)  # fail early on a bad extension
    if isinstance(genome, (str, os.PathLike)):
        genome = Genome(genome)
    scores = scores_for_model(model, scores)
    if window is None:
        window = min(DEFAULT_WINDOW, model.config.max_length - 1)
    check_window(model, window)
    chunks = VariantChunks(variants, genome, strict=strict, chunk_records=chunk_records, keep_columns=kind == "table")
    zero_shot = "masked_marginal" if getattr(model, "is_bidirectional", False) else "llr"  # chosen by model kind
    meta = {"window": int(window), "strands": strands, "zero_shot": zero_shot}
    if model_name:
        meta["model"] = model_name
    fingerprint = {
        "variants": _file_id(variants), "genome": _file_id(genome.path), "model": _model_id(model),
        "head": _model_id(head) if head is not None and hasattr(head, "state_dict") else repr(head),
        "window": int(window), "strands": strands, "scores": list(scores), "kind": kind,
        "chunk_records": chunk_records, "meta": meta, "strict": strict,
        "selection": selection.to_json() if selection is not None else None,
    }
    folder = resume_folder(out)
    state = _load_state(folder, fingerprint) if resume else None
    if state is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        state = {"fingerprint": fingerprint, "records": 0, "bytes": 0, "alleles": 0, "counts": {}, "columns": None,
                 "chroms": []}
    resumed = state["records"]
    if resumed:
        log.info("%s: resuming after %s record(s) scored by an earlier run", out, f"{resumed:,}")
    body = folder / "body"
    ok = False
    try:
        with open(body, "ab") as fh, tqdm(desc="scoring variants", unit=" record", disable=not progress,
                                          initial=resumed) as bar:
            fh.truncate(state["bytes"])  # a kill between a write and its progress note leaves extra bytes
            fh.seek(state["bytes"])
            for df, lines in chunks:
                end = int(df["record"].max()) + 1 if len(df) else 0
                if end <= state["records"]:
                    continue  # done by an earlier run
                if selection is not None:
                    first = int(df["record"].min()) if len(df) else 0
                    df = df[selection.mask(df)]
                    if lines is not None:
                        lines = [lines[r - first] for r in dict.fromkeys(df["record"].tolist())]
                    if not len(df):
                        state["records"] = end
                        bar.update(end - bar.n)
                        continue
                scored = score_variants(model, genome, df, window=window, strands=strands, scores=scores,
                                        head=head, batch_size=batch_size, reuse_prefix=reuse_prefix, progress=False,
                                        strict=strict, report_skipped=False)
                if chunks.extra_columns:  # a table's other columns, after ours (rows are in df's order)
                    scored = _with_input_columns(scored, df, chunks.extra_columns)
                columns = state["columns"] or score_columns(scored)
                state["columns"] = columns
                if kind == "table":
                    text = scored.to_csv(sep=table_sep(out), index=False, header=False, na_rep="NaN")
                elif lines is not None:
                    records = list(dict.fromkeys(scored["record"].tolist()))
                    text = "".join(line + "\n" for line in vcf_record_lines(scored, lines, columns, records))
                else:
                    text = "".join(line + "\n" for line in table_record_lines(scored, columns))
                    state["chroms"] = list(dict.fromkeys(state["chroms"] + list(scored["chrom"].astype(str))))
                fh.write(text.encode())
                fh.flush()
                os.fsync(fh.fileno())
                counts = Counter(state["counts"])
                counts.update(scored["status"])
                state.update(records=end, bytes=fh.tell(), alleles=state["alleles"] + len(scored), counts=dict(counts),
                             all_columns=list(map(str, scored.columns)))
                with atomic_write(folder / "progress.json") as pf:
                    json.dump(state, pf)
                bar.update(end - bar.n)
        columns = state["columns"] or list(scores)
        if kind == "table":
            extra = [_input_name(c, columns) for c in chunks.extra_columns]
            header = [table_sep(out).join(state.get("all_columns") or _table_columns(columns) + extra)]
        elif chunks.is_vcf:
            header = vcf_header_from_vcf(chunks.header or [], columns, meta)
        else:
            header = vcf_header_for_table(genome, state["chroms"], columns, meta)
        assemble_scores(body, out, header)
        ok = True
    except DnalmError:
        shutil.rmtree(folder, ignore_errors=True)  # bad input: nothing worth resuming
        raise
    finally:
        if ok:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.exists():
            log.warning("%s: progress kept in %s; run the same command again to continue", out, folder)
    run = ScoreRun(out, state["records"], state["alleles"], state["counts"], resumed)
    bad = {s: n for s, n in run.status_counts.items() if s != "ok"}
    if bad:
        log.warning("%s of %s variant allele(s) not scored (NaN): %s", f"{sum(bad.values()):,}", f"{run.alleles:,}",
                    ", ".join(f"{n:,} {s}" for s, n in bad.items()))
    return run


def _table_columns(score_columns: list[str]) -> list[str]:
    return ["chrom", "pos", "id", "ref", "alt", *score_columns, "status", "message", "record", "allele", "genome_chrom"]


def _input_name(column: str, taken) -> str:
    """An input table's column name in the output: prefixed ``input_`` where it clashes with a score column."""
    return f"input_{column}" if column in taken else column


def _with_input_columns(scored, df, extra: list[str]):
    """``scored`` with the input table's ``extra`` columns of ``df`` (same rows, same order) appended."""
    import pandas as pd

    names = [_input_name(c, scored.columns) for c in extra]
    kept = df[extra].set_axis(names, axis=1).reset_index(drop=True)
    return pd.concat([scored.reset_index(drop=True), kept], axis=1)


def _load_state(folder: Path, fingerprint: dict) -> dict | None:
    """The saved progress when it belongs to the same inputs and settings, else None (and why, in the log)."""
    path = folder / "progress.json"
    if not path.exists() or not (folder / "body").exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        log.warning("%s: an unfinished run with other inputs or settings; starting over", folder)
        return None
    if (folder / "body").stat().st_size < state.get("bytes", 0):
        log.warning("%s: the saved scores are shorter than recorded; starting over", folder)
        return None
    return state

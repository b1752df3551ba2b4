"""Shared fixtures: the real data sets under $DNALM_DATA, the demo yeast genome (built once a session), and numba's
kernels compiled once beside the tests (``numba_warm``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


# ------------------------------------------------------------------------------------ order and xdist scheduling
# The README's command runs the suite in 2 processes (pytest-xdist, -n 2): each module goes whole to one worker
# (its module fixtures are built once) in the order below, so the longest modules start first and none of them runs
# alone at the end; the modules that wait for numba's kernels (numba_warm) go last, when the kernels are compiled.
_LONGEST = ("test_workflow.py",)  # the tiny pipeline end to end, with a sharded re-run: minutes


def _module_rank(module: str, items: list) -> int:
    if module.rsplit("/", 1)[-1] in _LONGEST:
        return 0
    if any("numba_warm" in getattr(item, "fixturenames", ()) for item in items):
        return 3
    return 1 if any(item.get_closest_marker("slow") for item in items) else 2


def pytest_collection_modifyitems(config, items):
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ranked = sorted(modules.items(), key=lambda kv: _module_rank(*kv))  # stable: collection order within a rank
    items[:] = [item for _, group in ranked for item in group]
    if not config.option.collectonly:
        try:
            _start_warmup(items)
        except OSError as exc:  # only a speed-up: the kernels then compile on first call
            print(f"numba warm-up not started: {exc}", file=sys.stderr)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N``: whole modules to each worker, in the collection order above (xdist's loadfile, not reordered)."""
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist other than the default
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


# ------------------------------------------------------------------------ numba kernels, compiled beside the tests
# In a fresh environment memelite/modisco-lite/tangermeme compile their numba kernels on first call (minutes of one
# core). The first process that collects a test asking for ``numba_warm`` starts tests/numba_warmup.py, which
# compiles them into numba's on-disk cache while the tests run; ``numba_warm`` waits for it, so the kernels are
# compiled once (not once per test process, example or Snakemake job) and then load from the cache.
_WARMUP = "DNALM_TEST_NUMBA_WARMUP"  # a folder shared by the session's processes (xdist workers inherit it)
_warmup_key = pytest.StashKey[str]()


def _lock_file(folder: str) -> Path:
    return Path(folder) / "lock"


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: one torch thread each, the workers share the cores
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if "torch" in sys.modules and os.environ["OMP_NUM_THREADS"] == "1":
            sys.modules["torch"].set_num_threads(1)
    elif _WARMUP not in os.environ:
        # named here, made only when a warm-up starts
        os.environ[_WARMUP] = os.path.join(tempfile.gettempdir(), f"dnalm-numba-warmup-{os.getpid()}-{time.time_ns()}")
        config.stash[_warmup_key] = os.environ[_WARMUP]


def _start_warmup(items) -> None:
    folder = os.environ.get(_WARMUP)
    if (not folder or sys.platform == "win32" or importlib.util.find_spec("memelite") is None
            or not any("numba_warm" in getattr(item, "fixturenames", ()) for item in items)):
        return
    import fcntl

    os.makedirs(folder, exist_ok=True)
    try:
        fd = os.open(_lock_file(folder), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # another worker of this session started it
    fcntl.flock(fd, fcntl.LOCK_EX)  # held by the child (inherited descriptor) until it exits
    with open(Path(folder) / "log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("numba_warmup.py"))], pass_fds=(fd,),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).parents[1])
    os.close(fd)
    (Path(folder) / "pid").write_text(str(proc.pid))


def pytest_unconfigure(config):
    folder = config.stash.get(_warmup_key, None)
    if folder is None:
        return
    os.environ.pop(_WARMUP, None)
    pid = Path(folder) / "pid"
    if pid.exists():
        import fcntl

        with open(_lock_file(folder)) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # still compiling (a run of a few tests): stop it
                try:
                    os.kill(int(pid.read_text()), signal.SIGTERM)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def numba_warm() -> None:
    """Waits (at most 15 minutes) until tests/numba_warmup.py has compiled numba's kernels into the cache: a test
    that calls memelite/modisco-lite (itself or in a subprocess) asks for it before that first call."""
    folder = os.environ.get(_WARMUP)
    if not folder:
        return
    import fcntl

    try:
        with open(_lock_file(folder)) as fh:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                try:
                    fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    time.sleep(0.5)
    except FileNotFoundError:  # no warm-up in this session
        return

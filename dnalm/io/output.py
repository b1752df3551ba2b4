"""The one output writer: temporary + atomic rename, refusal of existing outputs and inputs, signals, umask.

Every file or folder a command writes goes through this module:

- :func:`atomic_write` / :func:`atomic_path` / :func:`atomic_folder` write into a uniquely named temporary
  beside the target (``.NAME.dnalm-tmp-PID-XXXX``) and rename it into place only when complete, with the
  permissions a plain ``open``/``mkdir`` would give under the process umask (``mkstemp``/``mkdtemp`` alone give
  0600/0700). A full disk (``ENOSPC``) becomes an :class:`OutputError` naming the file; nothing partial stays.
- :class:`OutputGuard` is what the CLI wraps around a command that has ``--out``: it refuses an existing output
  unless ``overwrite``, refuses an output that is (or holds) one of the inputs, checks that the folder can be
  written and has room before any work, holds a lock so that a second concurrent run on the same output refuses
  instead of racing, sweeps stale temporaries that killed runs of ours left, and on failure removes what the run
  created (an output folder that did not exist is removed; a replaced folder is put back).
- :func:`install_signal_handlers` turns SIGTERM (and SIGHUP) into :class:`Terminated`, an exception that unwinds
  the stack so that every ``with`` block above removes its temporary; the CLI exits 128 + signal number.

Hand-written because no library covers this set (``atomicwrites`` is unmaintained and does files only); the
pieces are the standard ones: ``os.replace`` on one file system, ``fcntl.flock`` for the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from dnalm.errors import DnalmError

TEMP_TAG = ".dnalm-tmp-"  # every temporary of ours has this in its name, followed by the writer's pid
OLD_TAG = ".dnalm-old-"  # a replaced output folder waits under this name until the new one is in place
LOCK_PREFIX = ".dnalm-lock-"
_TEMP_RE = re.compile(r"^\..*\.dnalm-(?:tmp|old)-(\d+)-[0-9a-f]+")
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
MIN_FREE_BYTES = 1 << 20  # refuse to start a run in a folder with less than this free

_temporaries: dict[Path, int] = {}  # live temporaries of this process -> owner pid (forked workers never clean)


class OutputError(DnalmError):
    """An output that cannot or must not be written (exists, is an input, no space, read-only folder)."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM/SIGHUP so that cleanup code runs; ``signum`` is the signal."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


# ------------------------------------------------------------------------------------------ permissions
def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode a plain ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """Mode a plain ``mkdir`` gives a new folder under the current umask."""
    return 0o777 & ~umask()


def fix_modes(root: str | os.PathLike) -> None:
    """Give ``root`` and everything under it the modes a plain ``open``/``mkdir`` would (undo ``mkstemp``'s 0600)."""
    root = Path(root)
    fmode, dmode = file_mode(), folder_mode()
    if root.is_dir():
        os.chmod(root, dmode)
        for base, dirs, files in os.walk(root):
            for d in dirs:
                os.chmod(os.path.join(base, d), dmode)
            for f in files:
                os.chmod(os.path.join(base, f), fmode)
    elif root.exists():
        os.chmod(root, fmode)


# ------------------------------------------------------------------------------------------ temporaries
def temp_name(path: Path, suffix: str = "") -> Path:
    """A fresh temporary name beside ``path`` that names this process (for the stale sweep)."""
    return path.parent / f".{path.name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def register_temporary(path: str | os.PathLike) -> Path:
    """Remember ``path`` so that :func:`remove_temporaries` (signals, CLI exit) removes it."""
    path = Path(path)
    _temporaries[path] = os.getpid()
    return path


def release_temporary(path: str | os.PathLike) -> None:
    """Forget a temporary that was renamed into place or removed."""
    _temporaries.pop(Path(path), None)


def remove_temporaries() -> None:
    """Remove every registered temporary of this process (files and folders)."""
    pid = os.getpid()
    for path, owner in list(_temporaries.items()):
        if owner != pid:
            continue
        _remove(path)
        _temporaries.pop(path, None)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ours in ``folder`` whose writer is gone (killed runs); put back orphaned old outputs.

    A folder moved aside as ``.NAME.dnalm-old-PID-X`` by a run that was killed before it finished is renamed back
    to ``NAME`` when ``NAME`` is missing (the previous output is restored), else removed.

    Returns:
        The paths removed or restored.
    """
    folder = Path(folder)
    done = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return done
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        if OLD_TAG in p.name:
            original = folder / p.name[1 : p.name.index(OLD_TAG)]
            if not original.exists():
                os.replace(p, original)
                done.append(original)
                continue
        _remove(p)
        done.append(p)
    return done


def _output_error(exc: OSError, path: Path) -> OutputError:
    if exc.errno in _NO_SPACE:
        return OutputError(f"{path}: no space left on the device while writing it; nothing was written")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return OutputError(f"{path}: cannot write it ({os.strerror(exc.errno)})")
    return OutputError(f"{path}: cannot write it ({exc})")


# -------------------------------------------------------------------------------------- atomic writers
@contextlib.contextmanager
def scratch_path(beside: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A registered temporary name beside ``beside`` for intermediate files; removed when the block ends."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = register_temporary(temp_name(beside, suffix))
    try:
        yield tmp
    finally:
        _remove(tmp)
        release_temporary(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path`` (same suffixes); rename it into place on success.

    For writers that want a file name (pandas, pysam, safetensors). On any failure or signal the temporary
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = register_temporary(temp_name(path, ".tmp" + "".join(path.suffixes)))
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{path}: the writer produced no file")
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise _output_error(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        release_temporary(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it into place only on success.

    A failed or interrupted run therefore never leaves a half-written result behind.
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` as a whole.

    Readers never see a mix of old and new files; a failure leaves ``path`` as it was and no temporary.

    Args:
        path: the output folder.
        overwrite: replace an existing ``path`` (else an existing one is an :class:`OutputError`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = register_temporary(temp_name(path))
    try:
        tmp.mkdir()
        yield tmp
        fix_modes(tmp)
        replace_folder(tmp, path, overwrite=overwrite)
    except OSError as exc:
        _remove(tmp)
        raise _output_error(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        release_temporary(tmp)


def replace_folder(new: Path, path: Path, overwrite: bool = True) -> None:
    """Rename folder ``new`` to ``path``; an existing ``path`` is moved aside first and removed after."""
    if not path.exists() and not path.is_symlink():
        os.rename(new, path)
        return
    if not overwrite:
        raise OutputError(f"{path}: exists (written meanwhile by another run?); pass --overwrite to replace it")
    old = register_temporary(path.parent / f".{path.name}{OLD_TAG}{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    finally:
        release_temporary(old)
    _remove(old)


# ----------------------------------------------------------------------------------------------- guard
def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.realpath(os.path.expanduser(os.fspath(p)))))


def input_paths(values: Iterable) -> list[Path]:
    """The existing files and folders among ``values`` (strings, paths, lists of them), resolved."""
    found = []
    for v in values:
        if isinstance(v, (list, tuple)):
            found.extend(input_paths(v))
        elif isinstance(v, (str, os.PathLike)) and v and len(os.fspath(v)) < 4096:
            with contextlib.suppress(OSError, ValueError):
                if os.path.exists(v):
                    found.append(_resolved(v))
    return found


def _empty_folder(path: Path) -> list[Path] | None:
    """The folders of a tree that holds no files (e.g. made by Snakemake for the outputs inside it), else None."""
    try:
        if not path.is_dir() or path.is_symlink():
            return None
        folders = []
        for base, dirs, files in os.walk(path):
            if files:
                return None
            folders.append(Path(base))
        return folders
    except OSError:
        return None


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        p = p.parent
    return p


def check_writable(folder: Path, target: Path, need_bytes: int = 0) -> None:
    """Whether a file can be created in ``folder`` (tried for real) and it has ``need_bytes`` free."""
    if not folder.is_dir():
        raise OutputError(f"{target}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}{TEMP_TAG}{os.getpid()}-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write into {folder} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    free = shutil.disk_usage(folder).free
    need = max(int(need_bytes), MIN_FREE_BYTES)
    if free < need:
        raise OutputError(
            f"{target}: only {free / 2**20:.1f} MiB free in {folder}, the output needs about {need / 2**20:.1f} MiB"
        )


class OutputGuard:
    """Checks, locks and cleans up one output path (file or folder) for the length of a run.

    On entry: refuses ``path`` when it exists and ``overwrite`` is false, when it is one of ``inputs`` or a folder
    holding one, when its folder cannot be written or lacks ``need_bytes``; sweeps stale temporaries of ours beside
    it; creates missing parent folders; takes a lock so that a second run on the same output refuses. When
    ``overwrite`` replaces an existing folder, the old one is moved aside and put back if the run fails.

    On failure (exception or signal): removes the output if the run created it (and the parents it created),
    restores a folder it moved aside. On success: removes the moved-aside folder.

    Args:
        path: the output (``--out``).
        overwrite: an existing output may be replaced.
        inputs: the run's input paths (strings, paths or lists; non-existing values are ignored).
        need_bytes: free space to require in the output folder before starting.
        siblings: other files the run writes beside ``path`` (e.g. ``OUT.json``), checked like ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        inputs: Iterable = (),
        need_bytes: int = 0,
        siblings: Iterable[str | os.PathLike] = (),
    ):
        self.path = Path(path)
        self.overwrite = overwrite
        self.inputs = input_paths(inputs)
        self.need_bytes = need_bytes
        self.siblings = [Path(s) for s in siblings]
        self._existed = False
        self._was_empty: list[Path] | None = None
        self._aside: Path | None = None
        self._made: list[Path] = []
        self._lock_fd: int | None = None
        self._lock_path: Path | None = None

    # the checks, usable without the lock
    def check(self) -> None:
        """Raise :class:`OutputError` when the output must not or cannot be written (no side effects)."""
        target = _resolved(self.path)
        for p in [self.path, *self.siblings]:
            r = _resolved(p)
            for i in self.inputs:
                if r == i:
                    raise OutputError(f"{p}: is also an input of this run; refusing to write over an input")
                if i.is_relative_to(r) and r.is_dir():
                    raise OutputError(f"{p}: holds an input of this run ({i}); refusing to replace it")
            if (p.exists() or p.is_symlink()) and _empty_folder(p) is None and not self.overwrite:
                kind = "folder" if p.is_dir() else "file"
                raise OutputError(f"{p}: the output {kind} exists; pass --overwrite to replace it, or choose another --out")
        check_writable(_nearest_existing(target.parent), self.path, self.need_bytes)

    def __enter__(self) -> OutputGuard:
        self.check()
        parent = _resolved(self.path).parent
        missing = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        self._acquire_lock(_nearest_existing(parent))
        try:
            for d in reversed(missing):
                d.mkdir(exist_ok=True)
                self._made.append(d)
            sweep_stale(parent)
            self.check()  # again under the lock: another run may have finished meanwhile
            self._was_empty = _empty_folder(self.path)  # e.g. made by Snakemake for the outputs inside it
            self._existed = self.path.exists()
            if self._existed and self._was_empty is None and self.path.is_dir() and not self.path.is_symlink():
                # keep the previous output whole until the new one is complete
                self._aside = register_temporary(
                    self.path.parent / f".{self.path.name}{OLD_TAG}{os.getpid()}-{secrets.token_hex(4)}"
                )
                os.rename(self.path, self._aside)
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self._aside is not None:
                    release_temporary(self._aside)
                    _remove(self._aside)
                return
            # failure: remove what this run made, put back what it moved aside
            if self._aside is not None:
                _remove(self.path)
                os.rename(self._aside, self.path)
                release_temporary(self._aside)
            elif (not self._existed or self._was_empty is not None) and self.path.is_dir() and not self.path.is_symlink():
                _remove(self.path)
                for d in self._was_empty or ():
                    d.mkdir(parents=True, exist_ok=True)
            for d in reversed(self._made):
                with contextlib.suppress(OSError):
                    d.rmdir()
        finally:
            self._release_lock()

    # lock: one file per output path, in the nearest existing folder, removed when released
    def _acquire_lock(self, folder: Path) -> None:
        key = hashlib.sha1(str(_resolved(self.path)).encode()).hexdigest()[:12]
        lock = folder / f"{LOCK_PREFIX}{self.path.name}-{key}"
        for _ in range(20):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    other = Path(lock).read_text().strip()
                    raise OutputError(
                        f"{self.path}: another dnalm run{f' (pid {other})' if other else ''} is writing this output; "
                        "wait for it or choose another --out"
                    ) from None
                raise OutputError(f"{self.path}: another dnalm run is writing this output") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._lock_fd, self._lock_path = fd, lock
                return
            os.close(fd)  # the holder removed it between our open and flock: try again
        raise OutputError(f"{self.path}: could not lock the output")

    def _release_lock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self._lock_path)
        os.close(self._lock_fd)
        self._lock_fd = self._lock_path = None


# --------------------------------------------------------------------------------------------- signals
def _on_signal(signum, frame):
    # a second signal while cleaning up is ignored; the first one unwinds the stack
    for s in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(s, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends (a group of renames that must happen together)."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no pthread_sigmask
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP raise :class:`Terminated` in the main thread (SIGINT already raises KeyboardInterrupt)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(s, _on_signal)

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
def _into_place(path: Path, tmp: Path, create, finish) -> Iterator[Path]:
    """The one temporary-then-rename protocol of :func:`atomic_path` and :func:`atomic_folder`.

    ``create(tmp)`` makes the temporary, the caller's block fills it, ``finish(tmp)`` renames it over ``path``. Any
    failure or signal removes the temporary and leaves ``path`` as it was. Errors of making, renaming and of a full
    disk become an :class:`OutputError` naming ``path``; other errors of the caller's block (say, an input that
    cannot be read) pass through unchanged.
    """
    register_temporary(tmp)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            create(tmp)
        except OSError as exc:
            raise _output_error(exc, path) from None
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise _output_error(exc, path) from None
            raise
        try:
            finish(tmp)
        except OSError as exc:
            raise _output_error(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        release_temporary(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path`` (same suffixes); rename it into place on success.

    For writers that want a file name (pandas, pysam, safetensors). On any failure or signal the temporary
    is removed and ``path`` is left as it was.
    """
    path = Path(path)

    def finish(tmp: Path) -> None:
        if not tmp.exists():
            raise OutputError(f"{path}: the writer produced no file")
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)

    with _into_place(path, temp_name(path, ".tmp" + "".join(path.suffixes)), lambda tmp: None, finish) as tmp:
        yield tmp


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

    def finish(tmp: Path) -> None:
        fix_modes(tmp)
        replace_folder(tmp, path, overwrite=overwrite)

    with _into_place(path, temp_name(path), Path.mkdir, finish) as tmp:
        yield tmp


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
# What commands write beside their --out (outputs inside an output folder need no entry), as templates of the output
# path: "{out}" the path as given, "{stem}" the path without its last suffix. The CLI's guard treats each like --out
# itself (refused without --overwrite, never over an input, removed or put back when the run fails);
# tests/test_adversarial.py runs every command and checks that nothing else appears beside --out. prepare-genome and
# pretrain check their own outputs (NAME.* in a shared folder; a resumable run folder).
SIBLINGS: dict[str, tuple[str, ...]] = {
    "generate": ("{out}.json",),  # the settings and rejection report (generate.batch.generate_to_fasta)
    "report": ("{stem}.html", "{stem}_files"),  # the self-contained page; the Markdown's plots (dnalm.report)
    "variant-summary": ("{stem}.png",),  # score distributions and ROC curves (dnalm.variant_summary)
    "score-variants": ("{out}.tbi", "{out}.csi"),  # the index of OUT.vcf.gz / OUT.bcf (dnalm.io.variant_scores)
    "merge-scores": ("{out}.tbi", "{out}.csi"),  # the same writer
}


def sibling_paths(out: str | os.PathLike, templates: Iterable[str]) -> list[Path]:
    """The paths of ``templates`` (see :data:`SIBLINGS`) for the output ``out``."""
    out = Path(out)
    stem = out.parent / out.stem
    return [Path(t.format(out=out, stem=stem)) for t in templates]


def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.realpath(os.path.expanduser(os.fspath(p)))))


_TYPE_RE = re.compile(r"^[A-Za-z_][\w-]*:(?!//)")  # the TYPE: of a TYPE:PATH task spec (not a URL's scheme)


def _path_candidates(text: str) -> list[str]:
    """``text`` and the paths an argument can carry: ``TITLE=FILE,FILE``, ``key=PATH``, ``TYPE:PATH?key=PATH&...``."""
    found = [text]
    base, _, query = text.partition("?")
    if query:
        found += [base, _TYPE_RE.sub("", base)] + [kv.partition("=")[2] for kv in query.split("&")]
    elif "=" in text:
        found += text.split("=", 1)[1].split(",")
    else:
        found.append(_TYPE_RE.sub("", text))
    return found


def input_paths(values: Iterable) -> list[Path]:
    """The existing files and folders among ``values`` (strings, paths, lists of them; also the paths inside
    ``TITLE=FILE,FILE``, ``key=PATH`` and ``TYPE:PATH?key=value`` arguments), resolved."""
    found = []
    for v in values:
        if isinstance(v, (list, tuple)):
            found.extend(input_paths(v))
        elif isinstance(v, (str, os.PathLike)) and v and len(os.fspath(v)) < 4096:
            for c in _path_candidates(os.fspath(v)):
                with contextlib.suppress(OSError, ValueError):
                    if c and os.path.exists(c) and _resolved(c) not in found:
                        found.append(_resolved(c))
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


def check_location(path: str | os.PathLike, kind: str | None = None, need_bytes: int = 0) -> None:
    """Whether ``path`` can be written where it is, before any work: an existing ``path`` is of ``kind`` ("file" or
    "folder"; None: either), and the nearest existing folder above it is a folder that this process can create
    files in, with ``need_bytes`` free. Missing parent folders are fine (they are created).

    Raises:
        OutputError: naming ``path`` and the reason.
    """
    path = Path(path)
    if path.exists() and kind == "file" and path.is_dir():
        raise OutputError(f"{path}: is a folder; this command writes a file: give a file name as --out")
    if path.exists() and kind == "folder" and not path.is_dir():
        raise OutputError(f"{path}: is a file; this command writes a folder: give a folder name as --out")
    check_writable(_nearest_existing(_resolved(path).parent), path, need_bytes)


class OutputGuard:
    """Checks, locks, backs up and cleans up one output (file or folder) and its siblings for the length of a run.

    On entry: refuses the output (or a sibling) when it exists and ``overwrite`` is false, when it is one of
    ``inputs``, a folder holding one, or the current folder or one above it, when it is a folder where a file is
    expected (or the reverse), when its folder cannot be written or lacks ``need_bytes``; sweeps stale temporaries
    of ours beside it; creates missing parent folders; takes a lock so that a second run on the same output refuses.
    Existing outputs that ``overwrite`` will replace are kept until the run ends: a folder is moved aside, a file
    keeps a hard link (moved aside where hard links are not supported).

    On failure (exception or signal): removes every output and sibling the run created (and the parents it
    created) and puts back what it replaced. On success: drops the backups, and removes an old sibling that the
    run did not write again (a stale index or figure of the replaced output).

    Args:
        path: the output (``--out``).
        overwrite: an existing output may be replaced.
        inputs: the run's input paths (strings, paths or lists; non-existing values are ignored).
        need_bytes: free space to require in the output folder before starting.
        siblings: other files or folders the run writes beside ``path`` (see :data:`SIBLINGS`), treated like it.
        kind: "file" or "folder": what ``path`` must be when it exists (None: either).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        inputs: Iterable = (),
        need_bytes: int = 0,
        siblings: Iterable[str | os.PathLike] = (),
        kind: str | None = None,
    ):
        self.path = Path(path)
        self.overwrite = overwrite
        self.inputs = input_paths(inputs)
        self.need_bytes = need_bytes
        self.siblings = [Path(s) for s in siblings]
        self.kind = kind
        self._kept: list[tuple[Path, str, object]] = []  # (output, how it was found, its backup or empty folders)
        self._made: list[Path] = []
        self._lock_fd: int | None = None
        self._lock_path: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        """The output and its siblings."""
        return [self.path, *self.siblings]

    # the checks, usable without the lock
    def check(self) -> None:
        """Raise :class:`OutputError` when the output must not or cannot be written (no side effects)."""
        try:
            cwd = _resolved(os.getcwd())
        except OSError:
            cwd = None
        for p in self.siblings:
            if _resolved(p) == _resolved(self.path):
                raise OutputError(f"{self.path}: this command also writes {p} beside its output; choose another --out")
        for p in self.outputs:
            r = _resolved(p)
            for i in self.inputs:
                if r == i:
                    raise OutputError(f"{p}: is also an input of this run; refusing to write over an input")
                if i.is_relative_to(r) and r.is_dir():
                    raise OutputError(f"{p}: holds an input of this run ({i}); refusing to replace it")
            if cwd is not None and cwd.is_relative_to(r):
                raise OutputError(f"{p}: is the current folder or holds it; refusing to replace it")
            check_location(p, self.kind if p == self.path else None, self.need_bytes)
            if (p.exists() or p.is_symlink()) and _empty_folder(p) is None and not self.overwrite:
                kind = "folder" if p.is_dir() else "file"
                raise OutputError(f"{p}: the output {kind} exists; pass --overwrite to replace it, or choose another --out")

    def __enter__(self) -> OutputGuard:
        self.check()
        missing = []
        for p in self.outputs:
            d = _resolved(p).parent
            while not d.exists() and d not in missing:
                missing.append(d)
                d = d.parent
        self._acquire_lock(_nearest_existing(_resolved(self.path).parent))
        try:
            for d in sorted(missing, key=lambda d: len(d.parts)):
                d.mkdir(exist_ok=True)
                self._made.append(d)
            for folder in {p.parent for p in self.outputs}:
                sweep_stale(folder)
            self.check()  # again under the lock: another run may have finished meanwhile
            for p in self.outputs:
                self._kept.append(self._keep(p))
        except BaseException:
            self._restore()
            self._release_lock()
            raise
        return self

    def _keep(self, p: Path) -> tuple[Path, str, object]:
        """Note how ``p`` was found; keep an existing output that the run will replace until it ends."""
        if not (p.exists() or p.is_symlink()):
            return p, "new", None
        empty = _empty_folder(p)  # e.g. made by Snakemake for the outputs inside it
        if empty is not None:
            return p, "empty", empty
        backup = register_temporary(p.parent / f".{p.name}{OLD_TAG}{os.getpid()}-{secrets.token_hex(4)}")
        if not p.is_dir() or p.is_symlink():
            try:  # a file stays in place (readers see the old one until the new one is renamed over it)
                os.link(p, backup, follow_symlinks=False)
                return p, "linked", backup
            except OSError:
                pass
        os.rename(p, backup)  # a folder is written afresh; the old one waits beside it
        return p, "moved", backup

    def _restore(self) -> None:
        """Failure: remove what the run made, put back what it replaced, remove the parents it created."""
        with deferred_signals():
            for p, how, kept in reversed(self._kept):
                if how == "linked":
                    os.replace(kept, p)
                elif how == "moved":
                    _remove(p)
                    os.rename(kept, p)
                else:
                    if p.exists() or p.is_symlink():
                        _remove(p)
                    for d in kept or ():  # the empty folders that were there
                        d.mkdir(parents=True, exist_ok=True)
                if how in ("linked", "moved"):
                    release_temporary(kept)
            self._kept = []
            for d in reversed(self._made):
                with contextlib.suppress(OSError):
                    d.rmdir()

    def _commit(self) -> None:
        """Success: drop the backups; an old sibling the run did not write again is stale and goes too."""
        for p, how, kept in self._kept:
            if how not in ("linked", "moved"):
                continue
            if how == "linked" and p != self.path:
                with contextlib.suppress(OSError):
                    if os.path.samestat(os.lstat(p), os.lstat(kept)):
                        _remove(p)
            _remove(kept)
            release_temporary(kept)
        self._kept = []

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
            else:
                self._restore()
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

"""Output files and folders of the `kssl` jobs: checked before any work, written so that nothing half-done looks done.

- `check_output_dir` / `check_output_file`: an output folder (or a file's folder) must be creatable and writable.
  The jobs call them before any computation, so a bad `--out` fails at once with one line, and nothing is created.
- `atomic_write`: a file is written to a hidden temporary file and renamed into place: it is complete or absent.
  A failed write (a full disk) removes the temporary file.
- `new_run_folder`: a run folder `<out_dir>/<timestamp>-<name>` is claimed atomically with `os.mkdir` (a
  reservation: two processes in the same second get distinct folders, `-2`, `-3`, ... appended), filled in a hidden
  folder `.<name>.partial-<pid>` and renamed onto the empty reservation when complete. A complete folder is never
  replaced (renaming onto a non-empty folder fails). Until then the reserved folder is empty; a reader finds no
  `results.json` there.
- `clean_stale_partials`: hidden partial folders (and their empty reservations) left by killed processes are removed
  by the next run in the same directory: the owner pid must not be alive on this machine AND the folder must be at
  least `STALE_AFTER_S` seconds old (guards against a process of another machine or pid namespace sharing the
  folder); a folder older than `ABANDONED_AFTER_S` is removed even if its pid is alive again (pid reuse).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
import time
from pathlib import Path

__all__ = [
    "OutputError",
    "check_output_dir",
    "check_output_file",
    "atomic_write",
    "write_once",
    "write_all",
    "new_run_folder",
    "clean_stale_partials",
    "pid_alive",
    "PARTIAL_RE",
    "STALE_AFTER_S",
    "ABANDONED_AFTER_S",
]

STALE_AFTER_S = 60.0
ABANDONED_AFTER_S = 24 * 3600.0
PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")

# Indirection so that tests can simulate a full disk without touching `os.write` for everyone.
_os_write = os.write


class OutputError(ValueError):
    """An output path that cannot be used (exists as a file, not writable, cannot be created). One line."""


def _describe(path: Path) -> str:
    return repr(str(path))


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """Checks that directory `path` exists and is writable, or can be created; creates nothing.

    Args:
      path: the directory (`~` is expanded).
      what: how the user named it, for the message (e.g. `"--out"`, `"output.dir"`).

    Returns:
      The expanded path.

    Raises:
      TypeError: `path` is not a string or path.
      OutputError: `path` (or a parent) exists and is not a directory, or the directory (or the nearest existing
        parent, when it must be created) is not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__} {path!r}")
    path = Path(path).expanduser()
    if str(path) == "":
        raise OutputError(f"{what} must be a non-empty path")
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{what}: {_describe(path)} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{what}: directory {_describe(path)} is not writable")
        return path
    _check_creatable(path, what)
    return path


def _check_creatable(path: Path, what: str) -> None:
    """`path` does not exist: its nearest existing ancestor must be a writable directory."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what}: cannot create {_describe(path)}: {_describe(parent)} exists and is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what}: cannot create {_describe(path)}: directory {_describe(parent)} is not writable")


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Checks that file `path` can be written (appended to): an existing file must be a writable regular file, else
    its folder must be creatable and writable (`check_output_dir`). Creates nothing.

    Raises:
      TypeError: `path` is not a string or path.
      OutputError: as `check_output_dir`, or `path` is a directory or a read-only file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__} {path!r}")
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_file():
            raise OutputError(f"{what}: {_describe(path)} exists and is not a file")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{what}: file {_describe(path)} is not writable")
        return path
    _check_creatable(path, what)
    return path


def write_once(fd: int, data: bytes) -> int:
    """One `os.write` (an `O_APPEND` line is appended whole or not at all); returns the bytes written."""
    return _os_write(fd, data)


def write_all(fd: int, data: bytes) -> None:
    """Writes all of `data` to descriptor `fd` (repeating short writes); an `OSError` (e.g. ENOSPC) propagates."""
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        view = view[n:]


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Writes `data` to `path` through a hidden temporary file, `fsync` and `os.replace`: complete or absent.

    On any failure (e.g. `OSError(ENOSPC)`, disk full) the temporary file is removed and the error propagates;
    an existing `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = data.encode() if isinstance(data, str) else bytes(data)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (a zombie counts as alive until reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def clean_stale_partials(out_dir: str | Path, *, stale_after: float | None = None,
                         abandoned_after: float | None = None, now: float | None = None) -> list[Path]:
    """Removes hidden partial run folders of dead processes in `out_dir` (see the module docstring).

    A partial folder `.<name>.partial-<pid>` is removed when (its pid is not alive and it is at least `stale_after`
    seconds old) or it is at least `abandoned_after` seconds old (defaults: the module's `STALE_AFTER_S` and
    `ABANDONED_AFTER_S`); its reservation `<name>` is then removed too if it is still an empty folder (a complete
    folder is never touched). Our own pid's folders are left alone.

    Returns:
      The partial folders removed.
    """
    out_dir = Path(out_dir)
    now = time.time() if now is None else now
    stale_after = STALE_AFTER_S if stale_after is None else stale_after
    abandoned_after = ABANDONED_AFTER_S if abandoned_after is None else abandoned_after
    removed = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        m = PARTIAL_RE.match(entry.name)
        if m is None:
            continue
        pid = int(m["pid"])
        if pid == os.getpid():
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if not ((age >= stale_after and not pid_alive(pid)) or age >= abandoned_after):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):  # only an empty reservation; ENOTEMPTY leaves a complete folder alone
            os.rmdir(out_dir / m["name"])
        removed.append(path)
    return removed


def _reserve(out_dir: Path, base: str) -> Path:
    """Claims `<out_dir>/<base>` (or `<base>-2`, `-3`, ...) by an exclusive `os.mkdir`; returns the claimed path."""
    for i in itertools.count(1):
        final = out_dir / (base if i == 1 else f"{base}-{i}")
        try:
            os.mkdir(final)
        except FileExistsError:
            continue
        return final
    raise AssertionError("unreachable")


@contextlib.contextmanager
def new_run_folder(out_dir: str | Path, name: str, *, what: str = "--out"):
    """Yields `(tmp, final)` for a new run folder `<out_dir>/<timestamp>-<name>` (suffixed `-2`, `-3`, ... if taken).

    `final` is reserved at once (an empty folder made by an exclusive `os.mkdir`, so concurrent processes never
    share a name); everything is written into the hidden folder `tmp` = `.<final name>.partial-<pid>`, which is
    renamed onto the reservation when the block ends without error. On error both are removed. Stale partial folders
    of dead processes in `out_dir` are cleaned first (`clean_stale_partials`).
    """
    out_dir = check_output_dir(out_dir, what)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(out_dir)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-.') or 'run'}"
    final = _reserve(out_dir, base)
    tmp = out_dir / f".{final.name}.partial-{os.getpid()}"
    try:
        if tmp.exists():  # a leftover of an earlier process with our pid
            shutil.rmtree(tmp)
        tmp.mkdir()
        yield tmp, final
        os.rename(tmp, final)  # onto the empty reservation; fails (never overwrites) if it is not empty
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(final)
        raise

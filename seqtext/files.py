"""Paths the user names, checked before any work starts, and how every file is written.

- Outputs: `check_output_dir` and `check_output_file` refuse what cannot be written (a regular file
  where a directory belongs, a directory where a file belongs, a parent that is a file, a place
  without write permission, an output that is also an input) before the work starts, not after it.
- Inputs: `check_input_file` refuses a missing or unreadable file, a directory, a pipe or a device.
- `replacing()`: a file is written under a temporary name unique to its writer, then renamed into
  place with the permissions any new file gets here (the umask), so a crash while writing leaves
  the previous file intact and two writers never share a temporary file.
- `run_lock()`: one writer per run directory, a lock file held for the life of the run. The
  operating system releases it when its process dies, so a killed run (SIGKILL) blocks nothing.
- `writing_lock()`: writers of one shared file (the keyboard's user data) take turns, each holding
  the lock only while it reads, merges and replaces the file.

Stdlib and filelock only, so it imports fast.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from seqtext.errors import CheckpointError, ConfigError, CorpusError

LOCK_NAME = ".lock"  # in the run directory; holds the writer's pid while it is held
TMP_SUFFIX = ".tmp"


def _stat(path: Path, label: str) -> os.stat_result | None:
    """os.stat, None when nothing is there (or a parent is a file); other failures are a clear error."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a name too long, a symlink loop, a permission denied on a parent
        raise ConfigError(f"{label}{path}: cannot use this path ({exc.strerror})") from None


def _label(flag: str | None) -> str:
    return f"{flag} " if flag else ""


def _check_creatable(path: Path, flag: str | None) -> None:
    """Nothing is at `path` yet: its nearest existing ancestor must be a directory we may write in."""
    label = _label(flag)
    if path.is_symlink():
        raise ConfigError(f"{label}{path} is a broken symbolic link; remove it or choose another path")
    ancestor = path.parent
    while _stat(ancestor, label) is None and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    found = _stat(ancestor, label)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise ConfigError(
            f"{label}{path}: {ancestor} is a file, so nothing can be created under it; choose another path"
        )
    _probe(ancestor, label, path, "create it in")


def _probe(directory: Path, label: str, path: Path, action: str) -> None:
    """Create and remove a file in `directory`: the only test a read-only filesystem, /proc or an
    access control list cannot fool (os.access trusts permission bits, and root passes them all)."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".seqtext-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ConfigError(f"{label}{path}: cannot {action} {directory} ({exc.strerror}); choose another path") from None


def check_output_dir(path: Path, flag: str | None = "--out") -> None:
    """Refuse a directory that cannot be created or written in, before any work starts."""
    label = _label(flag)
    found = _stat(path, label)
    if found is None:
        _check_creatable(path, flag)
    elif not stat.S_ISDIR(found.st_mode):
        raise ConfigError(f"{label}{path} is a file, not a directory; choose another path or move the file")
    else:
        _probe(path, label, path, "write in")


def check_output_file(path: Path, flag: str | None = "--output", inputs: Iterable[str | Path] = ()) -> None:
    """Refuse a file that cannot be written, or that is one of the `inputs`, before any work starts."""
    label = _label(flag)
    found = _stat(path, label)
    if found is None:
        _check_creatable(path, flag)
        return
    if stat.S_ISDIR(found.st_mode):
        raise ConfigError(f"{label}{path} is a directory; give a file name (e.g. {path / 'out'})")
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, source):
                raise ConfigError(f"{label}{path} is also an input; writing it would destroy it. Choose another path")
    if stat.S_ISREG(found.st_mode):  # replaced by a rename, which needs the directory
        _probe(path.parent, label, path, "replace it in")
    elif not os.access(path, os.W_OK):  # a device (/dev/null) is written in place
        raise ConfigError(f"{label}{path}: no permission to write it; choose another path")


def check_input_file(path: Path, flag: str | None = None) -> Path:
    """The path of a regular file we may read; anything else is a one-line CorpusError."""
    label = _label(flag)
    try:
        found = _stat(path, label)
    except ConfigError as exc:
        raise CorpusError(str(exc)) from None
    if found is None:
        raise CorpusError(f"{label}{path}: no such file; check the path")
    if stat.S_ISDIR(found.st_mode):
        raise CorpusError(f"{label}{path} is a directory; give a file")
    if not stat.S_ISREG(found.st_mode):
        raise CorpusError(f"{label}{path} is not a regular file (a pipe or a device); save its content to a file first")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"{label}{path}: no permission to read it")
    return path


@contextlib.contextmanager
def replacing(target: Path, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; when the block succeeds it atomically replaces target.

    The temporary name is unique to this writer; it is removed if the block fails. The result has the
    permissions of any new file here (some writers, safetensors among them, create theirs 0600); with
    `private` (a user's own data), those of the file it replaces, or 0600 for a new one.
    A target that is a device or a pipe (/dev/null, /dev/stdout) is written directly instead.
    """
    found = _stat(target, "")
    if found is not None and not stat.S_ISREG(found.st_mode) and not stat.S_ISDIR(found.st_mode):
        yield target
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666))  # and the umask
    mode = stat.S_IMODE(found.st_mode if private and found is not None else os.stat(tmp).st_mode)
    try:
        yield tmp
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would send Ctrl-C on Windows: assume alive, keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temporaries(directory: Path, prefix: str = ".") -> None:
    """Delete temporary files (named `prefix`…) left by writers killed while writing (their pid is gone)."""
    for tmp in directory.glob(f"{glob.escape(prefix)}*{TMP_SUFFIX}"):
        pid = tmp.name.rsplit(".", 2)[-2].split("-")[0] if tmp.name.count(".") >= 3 else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(out: Path, flag: str = "--out") -> Iterator[None]:
    """Hold the lock of run directory `out` (created if needed) for the block: one writer at a time.

    A second writer is refused at once, with the holder's pid. The lock file is removed when the block
    ends, and so is the directory when this call created it and nothing was written (the run failed
    at once). Under torchrun only the rank that writes should take it.
    """
    check_output_dir(out, flag)
    created = _stat(out, "") is None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {out}: cannot create it ({exc.strerror}); choose another path") from None
    path = out / LOCK_NAME
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        with contextlib.suppress(OSError):  # Windows refuses to read a locked file: no pid then
            holder = path.read_text(encoding="utf-8", errors="replace").strip()
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise CheckpointError(
            f"{out} is being written by another seqtext process{who}; wait for it to finish, or choose another {flag}"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{out}: cannot take the run's lock {path} ({exc.strerror})") from None
    try:
        with contextlib.suppress(OSError):  # only a courtesy for the message above
            path.write_text(str(os.getpid()), encoding="utf-8")
        remove_stale_temporaries(out)
        yield
    finally:
        # Unlinked while still held: a process that opened the old file and locks it after us sees a
        # file with no name and tries again (filelock checks), so a finished run keeps no lock file.
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()
        if created:
            with contextlib.suppress(OSError):  # the run failed before writing anything: leave no trace
                out.rmdir()


@contextlib.contextmanager
def writing_lock(target: Path, flag: str, timeout: float) -> Iterator[None]:
    """Hold the lock of the shared file `target` (`.NAME.lock` beside it) for one read-merge-write.

    Writers in several processes take turns; a writer that dies releases the lock with its process.
    Temporary files that dead writers left beside `target` are removed while it is held, and the lock
    file when it is released (as in run_lock), so nothing is left beside the file.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror
        raise ConfigError(f"{flag} {target}: cannot create {target.parent} ({why}); choose another path") from None
    path = target.with_name(f".{target.name}.lock")
    lock = FileLock(path, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{flag} {target}: another process has been writing it for over {timeout:.0f} s (it holds {path}); "
            "try again when that process is done"
        ) from None
    except OSError as exc:
        why = exc.strerror
        raise ConfigError(f"{flag} {target}: cannot take its lock {path} ({why}); choose another path") from None
    try:
        remove_stale_temporaries(target.parent, f".{target.name}.")
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()

"""The keyboard's user-data file (`--user-data`): what its user typed, read checked and written so
that nothing learned is lost.

- **Read-merge-write.** A write takes the file's lock (`.NAME.lock` beside it, held for that one write
  only), reads what is on disk now, adds what this process learned since its own last write, and
  replaces the file atomically (a temporary file beside it, flushed to disk, then renamed). Several
  processes learning into one file (two terminals, a pipe and a server) therefore merge: every count
  reaches the file once, none twice, none is lost.
- **Symbolic links are followed**: the file a link points to is the one read, locked and replaced
  (its temporary file is written in the target's directory), and the link stays a link.
- **Private**: a new file is readable by its owner alone (0600); a rewrite keeps the file's permissions.
- **What is on disk is checked before anything is merged into it**: a damaged, foreign or newer file
  is refused with one line naming it and left exactly as it is, never replaced by what was learned.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqtext import jsonfiles
from seqtext.errors import ConfigError, CorpusError
from seqtext.files import check_output_file, replacing, writing_lock
from seqtext.keyboard.words import WORD
from seqtext.schema import shown

FORMAT, VERSION = "seqtext-personal", 1
MAX_FILE_BYTES = 64 * 2**20  # a personal file this big is not ours: refuse it before reading
MAX_COUNT = 2**53  # a count beyond it (no one types a word 10^16 times) would lose its exactness as a float
LOCK_WAIT = 30.0  # seconds a write waits for another process's write (each takes milliseconds)
FIX = "move it away, choose another file with --user-data, or start afresh with --forget"

Counts = tuple[Counter[str], dict[str, Counter[str]]]  # words typed, and which word followed which


def default_user_data() -> Path:
    """Where `seqtext complete` keeps what its user typed: personal.json in the user's data directory
    (~/.local/share/seqtext on Linux, ~/Library/Application Support/seqtext on macOS, %LOCALAPPDATA% on Windows)."""
    import platformdirs  # only here: the path is needed only when no --user-data is given

    return platformdirs.user_data_path("seqtext", appauthor=False) / "personal.json"


class UserData:
    """The user-data file at `path` (a symbolic link stands for the file it points to)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def target(self) -> Path:
        """The file itself: `path` with every symbolic link followed (resolved at each use: links may change)."""
        return Path(os.path.realpath(self.path))

    def read(self) -> Counts:
        """The counts on disk, every field checked (nothing there: none); anything else is a one-line error."""
        path = self.path
        try:
            found = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):  # nothing learned yet (a parent that is a file: see writing)
            return Counter(), {}
        except OSError as exc:  # a symbolic-link loop, a permission denied on a parent
            raise CorpusError(f"user data {path}: cannot read it ({exc.strerror}); {FIX}") from None
        if not stat.S_ISREG(found.st_mode):
            raise CorpusError(f"user data {path} is not a regular file; {FIX}")
        if found.st_size > MAX_FILE_BYTES:
            size = f"{MAX_FILE_BYTES // 2**20} MiB"
            raise CorpusError(f"user data {path} is larger than {size}, so not seqtext's; {FIX}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CorpusError(f"user data {path} is not UTF-8 text; it was left as it is: {FIX}") from None
        except OSError as exc:
            raise CorpusError(f"user data {path}: cannot read it ({exc.strerror}); {FIX}") from None
        try:
            data = jsonfiles.parse(text)  # strictly: no duplicate key, no number out of range, no deep nesting
        except jsonfiles.JsonError as exc:
            raise CorpusError(f"user data {path}: {exc.problem}; it was left as it is: {FIX}") from None
        return _checked(data, path)

    def stamp(self) -> tuple[int, int, int] | None:
        """What changes when the file is rewritten (inode, size, modification time); None without a file."""
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def check_writable(self) -> None:
        """Refuse, before the user types anything, a user-data file that could not be written."""
        check_output_file(self.target, "--user-data")

    def update(self, merge: Callable[[Counts], Counts]) -> tuple[Counts, tuple[int, int, int] | None]:
        """Under the file's lock: read what is on disk, write merge(it) in its place; returns what was
        written, and the file's stamp then (before any other process could write it again)."""
        target = self.target
        with writing_lock(target, "--user-data", LOCK_WAIT):
            merged = merge(self.read())
            text = json.dumps(to_json(*merged), ensure_ascii=False, indent=1) + "\n"
            try:
                with replacing(target, private=True) as tmp, open(tmp, "w", encoding="utf-8") as file:
                    file.write(text)
                    file.flush()
                    os.fsync(file.fileno())  # on disk before the rename makes it the file
            except OSError as exc:
                why = exc.strerror or str(exc)
                raise ConfigError(
                    f"--user-data {self.path}: cannot write it ({why}); it keeps what it held before. "
                    "Make room, or choose another file"
                ) from None
            return merged, self.stamp()

    def remove(self) -> None:
        """Remove the file, damaged or not (`--forget`: the user asked); a link's target goes, the link stays."""
        target = self.target
        if os.path.isdir(target):
            raise ConfigError(f"--user-data {self.path} is a directory; give a file")
        if not os.path.lexists(target):
            return
        with writing_lock(target, "--user-data", LOCK_WAIT):
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise ConfigError(f"--user-data {self.path}: cannot remove it ({exc.strerror})") from None


def forget_file(path: Path) -> None:
    """Remove the user-data file at path (`seqtext complete --forget`), damaged or not: the user asked."""
    UserData(path).remove()


def to_json(words: Counter[str], follows: dict[str, Counter[str]]) -> dict[str, Any]:
    """The file's content: plain JSON, words sorted, so it reads (and diffs) well."""
    pairs = {h: dict(sorted(f.items())) for h, f in sorted(follows.items())}
    return {"format": FORMAT, "version": VERSION, "words": dict(sorted(words.items())), "follows": pairs}


def _checked(data: Any, path: Path) -> Counts:
    """The counts of a personal file, every field checked; a bad one is a one-line error naming it."""

    def bad(what: str) -> CorpusError:
        return CorpusError(f"user data {path}: {what}; it was left as it is: {FIX}")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f'not a seqtext personal-data file (no "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad('field "version" must be a positive integer')
    if version > VERSION:
        raise CorpusError(f"user data {path} was written by a newer seqtext (version {version}); upgrade seqtext")
    unknown = set(data) - {"format", "version", "words", "follows"}
    if unknown:
        raise bad(f"unknown field {sorted(unknown)[0]!r}")
    words = _counts(data.get("words", {}), "words", bad)
    for word in words:
        if not WORD.fullmatch(word):
            raise bad(f'field "words": {word!r} is not a word')
    follows = data.get("follows", {})
    if not isinstance(follows, dict):
        raise bad('field "follows" must be an object of objects')
    pairs = {str(h): _counts(f, f"follows.{h}", bad) for h, f in follows.items()}
    for history, followers in pairs.items():
        missing = next((w for w in followers if w not in words), None)
        if missing is not None:
            raise bad(f'field "follows.{history}": {missing!r} is not in "words"')
    return Counter(words), {h: Counter(f) for h, f in pairs.items()}


def _counts(value: Any, field: str, bad: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise bad(f'field "{field}" must be an object of counts')
    for word, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
            raise bad(
                f'field "{field}": the count of {word!r} must be a whole number from 1 to {MAX_COUNT:,} '
                f"(got {shown(count)})"
            )
    return value

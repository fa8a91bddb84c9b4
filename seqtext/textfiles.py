"""Text files and streams read as UTF-8 text, or refused with the fix: a compressed or binary file is
named as such (a gzip file is told to be decompressed, not re-encoded), invalid UTF-8 and NUL bytes
name their line, a byte-order mark never reaches a tokenizer, and a closed standard input is a clear
error. Stdlib only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from seqtext.errors import CorpusError
from seqtext.files import check_input_file

# What a file that is not text starts with, and what to do about it ({name}: the file's name).
_DECOMPRESS = "decompress it first, e.g. {tool} {name}"
_NOT_TEXT = [
    (b"\x1f\x8b", "a gzip file", _DECOMPRESS.replace("{tool}", "gunzip -k")),
    (b"PK\x03\x04", "a zip archive", "extract it first, e.g. unzip {name}"),
    (b"BZh", "a bzip2 file", _DECOMPRESS.replace("{tool}", "bunzip2 -k")),
    (b"\xfd7zXZ\x00", "an xz file", _DECOMPRESS.replace("{tool}", "unxz -k")),
    (b"\x28\xb5\x2f\xfd", "a zstd file", _DECOMPRESS.replace("{tool}", "unzstd")),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive", "extract it first"),
    (b"PAR1", "a parquet file", "give it the .parquet extension"),
    (b"%PDF", "a PDF document", "extract its text first, e.g. pdftotext {name}"),
    (b"\x89PNG", "a PNG image", "give a text file"),
    (b"\xff\xd8\xff", "a JPEG image", "give a text file"),
    (b"\x7fELF", "a program", "give a text file"),
    (b"SQLite format 3\x00", "an SQLite database", "export the text first"),
    (b"\xff\xfe\x00\x00", "UTF-32 text", "convert it to UTF-8, e.g. iconv -f UTF-32 -t UTF-8 {name}"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "convert it to UTF-8, e.g. iconv -f UTF-32 -t UTF-8 {name}"),
    (b"\xff\xfe", "UTF-16 text", "convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {name}"),
    (b"\xfe\xff", "UTF-16 text", "convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {name}"),
]
BOM = "\ufeff"
STDIN = "standard input"  # the name errors give it


def not_text(head: bytes, name: str) -> str | None:
    """Why a file starting with `head` is not text (a compressed or binary file), or None for text."""
    for magic, what, fix in _NOT_TEXT:
        if head.startswith(magic):
            return f"{name} is {what}, not text; {fix.format(name=Path(name).name)}"
    if head.count(b"\x00") > 1 + len(head) // 100:  # text with a stray NUL is told its line instead
        return f"{name} is a binary file (it holds NUL bytes), not text; give a UTF-8 text file"
    return None


def decode_line(raw: bytes, name: str, number: int) -> str:
    """One line of a text file or stream as str, with the fix named when it is not UTF-8 text.

    A NUL byte is refused (text has none; a tokenizer would learn it as a character), and a
    byte-order mark at the start of a line (the file's, or one left where files were concatenated)
    is removed, so it never becomes a vocabulary entry.
    """
    if number == 1 and (reason := not_text(raw[:64], name)):
        raise CorpusError(reason)
    if (column := raw.find(b"\x00") + 1) > 0:
        raise CorpusError(
            f"{name}, line {number}: a NUL byte at column {column}; text has none. Remove them "
            "(e.g. tr -d '\\000'), or check that this is a text file"
        )
    try:
        return raw.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{name}, line {number}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
            f"convert it, e.g. iconv -f latin1 -t utf-8{'' if name == STDIN else ' ' + Path(name).name}"
        ) from None


def text_lines(stream: BinaryIO, name: str) -> Iterator[str]:
    """The lines of a binary stream (a file, or standard input) as text, without their line ends."""
    for number, raw in enumerate(stream, start=1):
        yield decode_line(raw, name, number).rstrip("\r\n")


def standard_input() -> BinaryIO:
    """Standard input as bytes; a closed one (`<&-`, a daemon) is a clear error, not a crash."""
    if sys.stdin is None or sys.stdin.closed:  # Python sets None when descriptor 0 is closed
        raise CorpusError("standard input is closed; pipe text in (e.g. cat FILE | seqtext ...), or give a file")
    return sys.stdin.buffer


def check_text(path: Path) -> None:
    """Raise a CorpusError when a file is not UTF-8 text: a compressed or binary file (named as such),
    invalid UTF-8 or a NUL byte (with the line), or one that cannot be read."""
    try:
        with check_input_file(path).open("rb") as f:
            if reason := not_text(f.read(8192), str(path)):
                raise CorpusError(reason)
            f.seek(0)
            for number, raw in enumerate(f, start=1):
                decode_line(raw, str(path), number)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot be read ({exc.strerror})") from None

"""Text files and streams read as UTF-8 text, or refused with the fix: a compressed or binary file is
named as such (a gzip file is told to be decompressed, not re-encoded), invalid UTF-8 and NUL bytes
name their line, a byte-order mark never reaches a tokenizer, and a closed standard input is a clear
error. Stdlib only.

Every read is bounded, so no input can make seqtext grow until the machine runs out of memory:
- a stream (standard input, a file read line by line, a table's rows) is read a line at a time,
  and a line longer than MAX_LINE_BYTES is refused as soon as that many bytes were read (standard
  input that never ends a line stops there);
- a file read whole (a corpus, a prompt file) may hold at most MAX_TEXT_BYTES; its lines may be of
  any length (text8 is one line of 100 MB): what reads them works in chunks.
- text from elsewhere (the command line, a JSON string, the Python API) goes through `valid_unicode`
  first: an unpaired surrogate, which is what invalid UTF-8 on the command line becomes, is refused
  with the option or field it came in.
"""

from __future__ import annotations

import contextlib
import io
import re
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
MAX_LINE_BYTES = 1 << 20  # the longest line of a stream: a text, a query, a table row, a JSON line
BLOCK_BYTES = 1 << 20  # what line_blocks reads and decodes at once
MAX_TEXT_BYTES = 256 << 20  # the largest text file read whole: 2.5× text8, far beyond a laptop's training budget
_SURROGATE = re.compile("[\ud800-\udfff]")


def size_text(size: int) -> str:
    """A byte count as people say it: '1 MiB', '256 MiB', '1.5 GiB', '100 bytes'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


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


def raw_lines(stream: BinaryIO, name: str, max_bytes: int | None = None, first: int = 1) -> Iterator[bytes]:
    """The lines of a binary stream as bytes (line end kept), none longer than `max_bytes` (MAX_LINE_BYTES):
    a longer one is refused once max_bytes of it were read, so a stream that never ends a line costs no more.
    `first`: the number errors give the first line."""
    max_bytes = MAX_LINE_BYTES if max_bytes is None else max_bytes
    number = first - 1
    while raw := stream.readline(max_bytes + 2):  # room for the line end (\r\n)
        number += 1
        if len(raw) > max_bytes and len(raw.rstrip(b"\r\n")) > max_bytes:
            if number == 1 and (reason := not_text(raw[:64], name)):
                raise CorpusError(reason)
            raise CorpusError(
                f"{name}, line {number}: longer than {size_text(max_bytes)} ({max_bytes:,} bytes), the longest line "
                "seqtext reads from a stream; end its texts with line breaks, or give a corpus as a file"
            )
        yield raw


def text_lines(stream: BinaryIO, name: str, max_bytes: int | None = None) -> Iterator[str]:
    """The lines of a binary stream (a file, or standard input) as text, without their line ends; a line
    longer than `max_bytes` is refused (see `raw_lines`)."""
    for number, raw in enumerate(raw_lines(stream, name, max_bytes), start=1):
        yield decode_line(raw, name, number).rstrip("\r\n")


def line_blocks(stream: BinaryIO, name: str, max_bytes: int | None = None) -> Iterator[list[str]]:
    """The lines of a binary stream as `text_lines` gives them, checked as it checks them, a block of
    lines at a time: up to BLOCK_BYTES are read and decoded at once, and only a block with a problem in
    it (a NUL byte, invalid UTF-8, a line longer than `max_bytes`) goes through the per-line path, which
    names the line. Reading a line at a time was most of the cost of reading a file of phrases."""
    max_bytes = MAX_LINE_BYTES if max_bytes is None else max_bytes
    read = getattr(stream, "read1", stream.read)  # what a pipe holds now: standard input is not held back
    done, carry = 0, b""  # lines yielded; the start of a line whose end was not read yet
    while block := read(BLOCK_BYTES):
        data = carry + block if carry else block
        end = data.rfind(b"\n") + 1
        carry = data[end:]
        if end:
            lines = _block_lines(data[:end], name, done + 1, max_bytes)
            done += len(lines)
            yield lines
        while len(carry) >= max_bytes + 2:  # where raw_lines cuts a line this long: refused (or, ending in
            lines = _checked_lines(carry[: max_bytes + 2], name, done + 1, max_bytes)  # \r\r, a line of its own)
            done += len(lines)
            yield lines
            carry = carry[max_bytes + 2 :]
    if carry:  # the last line, without a line end
        yield _block_lines(carry, name, done + 1, max_bytes)


def _block_lines(block: bytes, name: str, first: int, max_bytes: int) -> list[str]:
    """The lines of `block` (whole lines, numbered from `first`), decoded and checked as text_lines does."""
    text = None
    if b"\x00" not in block and (len(block) <= max_bytes or max(map(len, block.split(b"\n"))) <= max_bytes):
        if first == 1:  # the first line also says whether this is text at all
            decode_line(block[: block.find(b"\n") + 1 or len(block)], name, 1)
        with contextlib.suppress(UnicodeDecodeError):
            text = block.decode("utf-8")
    if text is None:  # a problem in the block: line by line, naming the line
        return _checked_lines(block, name, first, max_bytes)
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    if BOM in text:
        lines = [line.removeprefix(BOM) for line in lines]
    if "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    return lines


def _checked_lines(block: bytes, name: str, first: int, max_bytes: int) -> list[str]:
    lines = raw_lines(io.BytesIO(block), name, max_bytes, first)
    return [decode_line(raw, name, number).rstrip("\r\n") for number, raw in enumerate(lines, start=first)]


def read_text(path: Path, flag: str | None = None, max_bytes: int | None = None) -> str:
    """A whole text file as str (\r\n and \r read as \n, byte-order marks at line starts removed), of at
    most `max_bytes` (MAX_TEXT_BYTES); anything else (no such file, a pipe, too large, not text) is a
    one-line CorpusError."""
    label = f"{flag} " if flag else ""
    max_bytes = MAX_TEXT_BYTES if max_bytes is None else max_bytes
    try:
        with check_input_file(path, flag).open("rb") as f:
            data = f.read(max_bytes + 1)  # a file that grows while it is read is still bounded
    except OSError as exc:
        raise CorpusError(f"{label}{path}: cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise CorpusError(
            f"{label}{path} is larger than {size_text(max_bytes)}, the most seqtext reads as one text; "
            f"give a part of it (e.g. head -c {max_bytes // (1 << 20) // 2}M {path.name} > part.txt)"
        )
    if reason := not_text(data[:8192], str(path)):
        raise CorpusError(reason)
    try:
        text = data.decode("utf-8")
        bad = data.find(b"\x00")
    except UnicodeDecodeError as exc:
        bad = exc.start if data.find(b"\x00", 0, exc.start) < 0 else data.find(b"\x00")
    if bad >= 0:  # the line of the first NUL byte or invalid sequence says what is wrong there
        start, end = data.rfind(b"\n", 0, bad) + 1, data.find(b"\n", bad)
        decode_line(data[start : len(data) if end < 0 else end], str(path), data.count(b"\n", 0, start) + 1)
        raise CorpusError(f"{path}: not UTF-8 text; convert it to UTF-8")  # decode_line raised already
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix(BOM).replace("\n" + BOM, "\n")


def valid_unicode(text: str, where: str) -> str:
    """`text` when it is valid Unicode; an unpaired surrogate is refused, naming `where` (an option, a field).

    Python turns invalid UTF-8 on the command line into such surrogates (one per byte, U+DC80-U+DCFF),
    and JSON can spell them ("\\ud800"); a tokenizer cannot take them. The one check of every text
    that does not come from a file (those are decoded strictly): options, request fields, config fields.
    """
    if problem := unicode_problem(text):
        raise CorpusError(f"{where}: {problem}")
    return text


def unicode_problem(text: str) -> str | None:
    """Why `text` is not valid Unicode (see valid_unicode), with the fix, or None."""
    if (found := first_surrogate(text)) is None:
        return None
    code, column = found
    if 0xDC80 <= code <= 0xDCFF:  # a byte of invalid UTF-8, as Python decodes the command line
        return (
            f"not valid UTF-8 (byte {code - 0xDC00:#04x} at character {column}); give UTF-8 text "
            "(check the terminal's or the script's encoding, e.g. LANG=C.UTF-8)"
        )
    return f"not valid Unicode (an unpaired surrogate, U+{code:04X}, at character {column}); remove it"


def first_surrogate(text: str) -> tuple[int, int] | None:
    """(code point, 1-based character) of the first unpaired surrogate in `text`, or None."""
    if text.isascii() or not (found := _SURROGATE.search(text)):
        return None
    return ord(found.group()), found.start() + 1


def standard_input() -> BinaryIO:
    """Standard input as bytes; a closed one (`<&-`, a daemon) is a clear error, not a crash."""
    if sys.stdin is None or sys.stdin.closed:  # Python sets None when descriptor 0 is closed
        raise CorpusError("standard input is closed; pipe text in (e.g. cat FILE | seqtext ...), or give a file")
    return sys.stdin.buffer


def check_text(path: Path, max_line: int | None = None) -> None:
    """Raise a CorpusError when a file is not UTF-8 text: a compressed or binary file (named as such),
    invalid UTF-8 or a NUL byte (with the line), a line longer than `max_line` bytes (a table's row, a
    text to classify; MAX_LINE_BYTES by default), or one that cannot be read. Reads the file once, in
    blocks (line_blocks)."""
    try:
        with check_input_file(path).open("rb") as f:
            if reason := not_text(f.read(8192), str(path)):
                raise CorpusError(reason)
            f.seek(0)
            for _ in line_blocks(f, str(path), max_line):
                pass
    except OSError as exc:
        raise CorpusError(f"{path}: cannot be read ({exc.strerror})") from None

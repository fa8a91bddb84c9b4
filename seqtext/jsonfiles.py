"""JSON read as untrusted input, strictly and within bounds: every JSON file seqtext reads (a run's
config.json, train_config.json, trainer_state.json, tokenizer.json, ensemble.json, phrase_memory.json,
metrics.jsonl, the keyboard's personal data, JSON-lines corpora) goes through `parse`. Stdlib only.

What Python's json module would accept, and `parse` refuses, with the key or value at fault:
- a key given twice in one object (json keeps the last one silently; a hand edit meant one of them);
- a whole number beyond 64 bits (MAX_INT: no size, count or step is larger, and Python would
  otherwise turn a number of 10^400 into an integer that breaks every float conversion later),
  and a number with a fraction or exponent beyond a float's range (1e400 would read as infinity);
- NaN and ±Infinity (json's extensions), unless the caller allows them (metrics.jsonl records a
  diverged loss as NaN);
- an unpaired surrogate in a string ("\\ud800" is valid JSON, but no text);
- nesting deeper than MAX_DEPTH (what seqtext writes is a few levels deep; a file nested 100,000 deep
  would exhaust the interpreter's stack).

`read_json` / `write_json`: a run's JSON files (configs, state), read as above within MAX_JSON_BYTES,
a JSON object or a one-line refusal, and written atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from seqtext.errors import ConfigError, CorpusError
from seqtext.files import replacing
from seqtext.schema import MAX_INT, shown
from seqtext.textfiles import first_surrogate, raw_lines, size_text

MAX_DEPTH = 64
MAX_JSON_BYTES = 16 << 20  # a config or state file is a few KB
# The types of values with nothing to check (an ASCII string holds no surrogate): _check_values does not
# stack them, which made checking a large object (a phrase memory of 150,000 phrases) several times faster.
_PLAIN = frozenset({int, float, bool, type(None), str})
_DIGITS = len(str(MAX_INT))  # 19: a longer run of digits is out of range, whatever it says


class JsonError(ValueError):
    """What is wrong with a JSON text, in words a message can quote after the file's name; `line` when known."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.line = problem, line


def _shown(value: str) -> str:
    return json.dumps(value if len(value) <= 40 else value[:37] + "...")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # a key given twice: name the first
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonError(f"the key {_shown(key)} appears twice in one object; keep one of them")
            seen.add(key)
    return result


class _OutOfRange(str):
    """A number's text that no int64 or float holds; refused, with where it is, once the value is read."""


def _integer(text: str) -> int | _OutOfRange:
    if len(text.lstrip("-")) > _DIGITS or abs(value := int(text)) > MAX_INT:
        return _OutOfRange(text)
    return value


def _real(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OutOfRange(text)


class _NotFinite(str):
    """NaN or ±Infinity (json's extensions) where only finite numbers may be; refused with where it is."""


# json.loads with these hooks would build a decoder per call: a tenth of a served keystroke's parsing
_DECODERS = {
    nonfinite: json.JSONDecoder(
        object_pairs_hook=_object,
        parse_int=_integer,
        parse_float=_real,
        parse_constant=float if nonfinite else _NotFinite,
    )
    for nonfinite in (False, True)
}


def parse(text: str | bytes, *, nonfinite: bool = False) -> Any:
    """A JSON text as Python values, strictly (see the module's docstring); a JsonError says what is wrong."""
    try:
        if isinstance(text, bytes):  # always UTF-8 (json.loads would also guess UTF-16 or UTF-32)
            text = text.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        data = _DECODERS[nonfinite].decode(text)
    except UnicodeDecodeError as exc:
        raise JsonError(
            f"not readable JSON (not UTF-8: byte {exc.object[exc.start]:#04x} at byte {exc.start + 1:,})"
        ) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise JsonError(f"not readable JSON ({exc.msg.removesuffix(' at')} at {where})", exc.lineno) from None
    except RecursionError:
        raise JsonError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except JsonError:
        raise
    except ValueError as exc:  # Python's own limits (e.g. an integer of more than 4,300 digits)
        raise JsonError(f"not readable JSON ({exc})") from None
    _check_values(data)
    return data


def _check_values(data: Any) -> None:
    """No number out of range, no string with an unpaired surrogate, nothing nested deeper than MAX_DEPTH;
    errors name where the value is ("model.hidden_dim"). Iterative: no recursion however deep the value."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, _NotFinite):
            raise JsonError(f"{_subject(where)} must be a finite number (got {value})")
        if isinstance(value, _OutOfRange):
            shown = value if len(value) <= 30 else value[:27] + "..."
            real = any(c in value for c in ".eE")
            limit = "beyond what a float holds" if real else "a whole number must be below 2^63"
            raise JsonError(f"{_subject(where)} is out of range (got {shown}: {limit})")
        if isinstance(value, str):
            _check_string(value, where)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise JsonError(f"nested too deeply (more than {MAX_DEPTH} levels)")
            if isinstance(value, dict):
                for key, item in value.items():
                    if not key.isascii():
                        _check_string(key, where)
                    if type(item) not in _PLAIN or (type(item) is str and not item.isascii()):
                        stack.append((item, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend(
                    (item, f"{where}[{i}]", depth + 1)
                    for i, item in enumerate(value)
                    if type(item) not in _PLAIN or (type(item) is str and not item.isascii())
                )


def _subject(where: str) -> str:
    """'field "model.hidden_dim"' for a value inside an object or list, 'a value' for the whole text."""
    return f"field {json.dumps(where if len(where) <= 60 else where[:57] + '...')}" if where else "a value"


def _check_string(text: str, where: str) -> None:
    if found := first_surrogate(text):
        code, column = found
        raise JsonError(
            f"{_subject(where)} is not valid Unicode (an unpaired surrogate, U+{code:04X}, at character {column})"
        )


def read_file(path: Path, max_bytes: int, *, nonfinite: bool = False) -> Any:
    """The JSON value of a regular file of at most `max_bytes`; OSError for the file, JsonError for its content."""
    with path.open("rb") as f:
        too_large = os.fstat(f.fileno()).st_size > max_bytes
        data = b"" if too_large else f.read(max_bytes + 1)  # still bounded if it grows meanwhile
    if too_large or len(data) > max_bytes:
        raise JsonError(f"larger than {size_text(max_bytes)}, far more than what it should hold")
    return parse(data, nonfinite=nonfinite)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a crash while writing leaves the previous file intact."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, nonfinite: bool = False) -> dict[str, Any]:
    """Read a JSON object (a file written by write_json, or one edited by hand), strictly: a duplicate key,
    a number out of range, NaN or deep nesting is refused (`parse`), naming the file; a ConfigError says why."""
    fix = "restore it, or delete the run directory"
    try:
        data = read_file(path, max_bytes, nonfinite=nonfinite)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from exc
    except JsonError as exc:
        said = f" is {exc.problem}" if exc.problem.startswith("not ") else f": {exc.problem}"
        raise ConfigError(f"{path}{said}; {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object (got {shown(data)}); {fix}")
    return data


def json_lines(
    stream: BinaryIO, name: str, *, max_line: int | None = None, nonfinite: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines stream, every line read within
    `max_line` bytes (a longer one is a CorpusError naming it) and parsed strictly (a JsonError with `line`)."""
    for number, raw in enumerate(raw_lines(stream, name, max_line), start=1):
        if not raw.strip():
            continue
        try:
            yield number, parse(raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw, nonfinite=nonfinite)
        except JsonError as exc:
            raise JsonError(exc.problem.replace(" at line 1, column", " at column"), number) from None


class JsonTable:
    """A JSON-lines file (one object per line), or a JSON file holding a list of objects, as the table
    seqtext reads: column names, a column's values, batches of rows. Every row is a JSON object read
    strictly, and errors name its line; `line_of(row)` says where a row came from.

    streaming=True reads the file once more for each pass over `iter`, a line at a time, holding only
    a batch; otherwise the rows are read (and checked) at once.
    """

    features: dict[str, Any] = {}  # noqa: RUF012  (a datasets.Dataset's: no class labels in JSON)

    def __init__(self, path: Path, *, streaming: bool = False, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.rows: list[dict[str, Any]] = []
        self.lines: list[int] = []  # the line of each row read (streaming: of the current batch's rows)
        self._first = 0  # the row whose line is lines[0]
        self._columns: dict[str, None] = {}
        if not streaming:
            for line, row in self._read():
                self.rows.append(row)
                self.lines.append(line)
                self._columns.update(dict.fromkeys(row))

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, column: str) -> list[Any]:
        return [row.get(column) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def line_of(self, row: int) -> str:
        """'FILE, line N' (JSON lines) or 'FILE, item N' (a JSON list) for a row, 0-based."""
        index = row - self._first
        line = self.lines[index] if 0 <= index < len(self.lines) else 0
        return f"{self.path}, line {line}" if line else f"{self.path}, item {row + 1}"

    def iter(self, batch_size: int) -> Iterator[dict[str, list[Any]]]:
        """Batches of rows as {column: values}; a column that first appears later is None before it."""
        batch: list[dict[str, Any]] = []
        self._first, self.lines = 0, []
        for line, row in self._read():
            if len(batch) == batch_size:  # the batch before was used: its lines are no longer asked for
                self._first, self.lines, batch = self._first + len(batch), [], []
            self._columns.update(dict.fromkeys(row))
            batch.append(row)
            self.lines.append(line)
            if len(batch) == batch_size:
                yield {name: [r.get(name) for r in batch] for name in self._columns}
        if batch and len(batch) < batch_size:
            yield {name: [r.get(name) for r in batch] for name in self._columns}

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line, row) of every row, 0 for the line of an item of a JSON list."""
        with self.path.open("rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
            f.seek(0)
            if head.startswith(b"["):  # one JSON document: a list of objects
                try:
                    rows = read_file(self.path, self.max_bytes)
                except JsonError as exc:
                    raise CorpusError(f"{self.path}: {exc.problem}") from None
                for item, row in enumerate(rows if isinstance(rows, list) else [rows]):
                    if not isinstance(row, dict):
                        raise self._not_object(f"{self.path}, item {item + 1}", row)
                    yield 0, row
                return
            try:
                for line, row in json_lines(f, str(self.path)):
                    if not isinstance(row, dict):
                        raise self._not_object(f"{self.path}, line {line}", row)
                    yield line, row
            except JsonError as exc:
                raise CorpusError(f"{self.path}, line {exc.line}: {exc.problem}") from None

    @staticmethod
    def _not_object(where: str, value: Any) -> CorpusError:
        return CorpusError(
            f'{where}: {json_kind(value)}, not an object; give one object per line, e.g. {{"text": "...", "label": 1}}'
        )


def json_kind(value: Any) -> str:
    """'a JSON list', 'a JSON number', … for a message about a value of the wrong kind."""
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    names = {
        list: "a JSON list",
        dict: "a JSON object",
        str: "a JSON string",
        int: "a JSON number",
        float: "a JSON number",
    }
    return names.get(type(value), type(value).__name__)

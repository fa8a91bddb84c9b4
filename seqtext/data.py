"""Read corpora, split them without leaks, and cut them into training windows.

Plain text is read directly (so invalid UTF-8 can be reported by line); tables, JSON lines, parquet
and hub datasets go through Hugging Face `datasets`. No text leaves this module as tensors unless
it was tokenized first.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from seqtext import textfiles
from seqtext.errors import CorpusError
from seqtext.files import check_input_file
from seqtext.jsonfiles import JsonTable, json_kind
from seqtext.schema import shown
from seqtext.textfiles import check_text, not_text, read_text, size_text
from seqtext.tokenizer import BOS_ID, EOS_ID, PAD_ID, encode_batch

TABLE_FORMATS = {".tsv": "csv", ".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_HUB_NAME = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_SENTENCE_END = tuple(".!?…»\"')]:;")
MAX_PROMPT_BYTES = 16 << 20


check_utf8 = check_text  # the earlier name of the check (it now also refuses binary files and NUL bytes)


def local_file(data: str | Path) -> Path | None:
    """The data path when it names a local file; None for a hub dataset name; an error otherwise."""
    path = Path(data)
    if path.is_file():
        return check_input_file(path)
    if path.exists() or path.is_symlink():
        check_input_file(path)  # a directory, a pipe or a device: says which
    if path.suffix.lower() in {".txt", ".text", *TABLE_FORMATS} or not _HUB_NAME.match(str(data)):
        raise CorpusError(f"{data}: no such file; check the path")
    return None


def load_table(data: str | Path, split: str = "train", *, streaming: bool = False) -> Any:
    """A `datasets.Dataset` from a tsv/csv/parquet file or a hub dataset name; a `jsonfiles.JsonTable`
    from a jsonl/json file (read strictly: every line an object, errors with their line).

    With streaming=True, an `IterableDataset` read in chunks (no Arrow cache; column names are known
    only once the first rows are read). A local file read whole holds at most MAX_TEXT_BYTES, and a
    row of a text table at most MAX_LINE_BYTES.
    """
    path = local_file(data)
    most = textfiles.MAX_TEXT_BYTES
    if path is not None and not streaming and path.stat().st_size > most:
        raise CorpusError(
            f"{data} is larger than {size_text(most)}, the most seqtext reads as one table; give a part of it"
        )
    if path is not None and TABLE_FORMATS.get(path.suffix.lower()) == "json":
        check_text(path)
        return JsonTable(path, streaming=streaming, max_bytes=most)
    with warnings.catch_warnings():  # in a notebook without ipywidgets, tqdm.auto warns on import; its bars are off
        warnings.filterwarnings("ignore", message="IProgress not found")
        import datasets  # heavy: imported only when a table is read

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if path is None:
            return datasets.load_dataset(str(data), split=split, streaming=streaming)
        if path.suffix.lower() == ".parquet":
            with path.open("rb") as f:
                if (head := f.read(4)) != b"PAR1":
                    why = not_text(head, str(path)) or f"{path} is not a parquet file"
                    raise CorpusError(why.replace(", not text", ", not parquet"))
        else:
            check_text(path)
        builder = TABLE_FORMATS.get(path.suffix.lower(), "csv")
        options: dict[str, Any] = {}
        if builder == "csv":  # a phrase may be the word None or NA: keep it text; never parse quotes in tsv
            options = {"keep_default_na": False, "na_filter": False}
            if path.suffix.lower() == ".tsv":
                options.update(sep="\t", quoting=3)
        return datasets.load_dataset(builder, data_files=str(path), split="train", streaming=streaming, **options)
    except CorpusError:
        raise
    except Exception as exc:  # datasets raises many unrelated types for unreadable input
        where = "hub dataset" if path is None else "file"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorpusError(f"{data}: could not read this {where} ({first_line})") from exc


def texts_of(values: Sequence[Any], table: Any, column: str, data: str | Path, first_row: int = 0) -> list[str]:
    """A text column's values as texts: None is an empty text, a number read from a tsv/csv is its text;
    a list, an object, true/false (or, in JSON, a number) is no text and is refused, naming its row."""
    texts = []
    json_rows = isinstance(table, JsonTable)
    for row, value in enumerate(values, start=first_row):
        if isinstance(value, str):
            texts.append(value)
        elif value is None:
            texts.append("")
        elif isinstance(value, int | float) and not isinstance(value, bool) and not json_rows:
            texts.append(str(value))
        else:
            raise CorpusError(
                f"{row_place(data, row, table)}: {column!r} is {json_kind(value) if json_rows else shown(value)}, "
                "not text; give each row's text as a string"
            )
    return texts


def row_place(data: str | Path, row: int, table: Any = None) -> str:
    """'FILE, line N' for a 0-based table row (line 1 of tsv/csv is the header), 'FILE, row N' elsewhere."""
    if isinstance(table, JsonTable):
        return table.line_of(row)
    suffix = Path(str(data)).suffix.lower()
    if suffix in (".tsv", ".csv"):
        return f"{data}, line {row + 2}"
    if suffix in (".jsonl", ".json"):
        return f"{data}, line {row + 1}"
    return f"{data}, row {row + 1}"


def pick_column(table: Any, column: str | None, data: str | Path, flag: str, fallbacks: Sequence[str]) -> str:
    """The column to read: the one asked for, else the first fallback name present."""
    names = list(table.column_names)
    if column is not None:
        if column not in names:
            raise CorpusError(f"{data} has no column {column!r} (columns: {', '.join(names)}). Pass {flag} NAME.")
        return column
    for name in fallbacks:
        if name in names:
            return name
    raise CorpusError(f"{data}: which column holds the text? (columns: {', '.join(names)}). Pass {flag} NAME.")


def refuse_column_option(source: str | Path, column: str | None, flag: str = "--text-column") -> None:
    """A column option given for a plain-text source is a mistake to report, not an option to drop silently."""
    if column is not None:
        formats = "/".join(suffix.lstrip(".") for suffix in TABLE_FORMATS)
        raise CorpusError(
            f"{source} is plain text (one text per line) with no columns; {flag} applies to {formats} tables: drop it"
        )


def read_texts(data: str | Path, text_column: str | None = None) -> list[str]:
    """The documents of a corpus: lines of a text file, or the text column of a table."""
    path = local_file(data)
    if path is not None and path.suffix.lower() not in TABLE_FORMATS:
        refuse_column_option(data, text_column)
        # \r\n and \r are read as \n; split on \n only (splitlines would also cut at \x0c or \u2028)
        texts = read_text(path).split("\n")
        if texts[-1] == "":
            texts.pop()
    else:
        table = load_table(data)
        column = pick_column(table, text_column, data, "--text-column", ("text", "Phrase", "sentence"))
        texts = texts_of(table[column], table, column, data)
    if not any(t.strip() for t in texts):
        raise CorpusError(f"{data} has no text; give a file with at least one non-empty line")
    return texts


def looks_like_lines(texts: Sequence[str]) -> bool:
    """True for one-sentence-per-line corpora, False for wrapped prose (blank lines, open line ends)."""
    lines = [t.rstrip() for t in texts]
    blank = sum(1 for t in lines if not t)
    ended = sum(1 for t in lines if t.endswith(_SENTENCE_END))
    filled = max(1, len(lines) - blank)
    return blank / max(1, len(lines)) < 0.05 and ended / filled >= 0.6


def split_texts(texts: Sequence[str], fraction: float, *, stream: bool, seed: int) -> tuple[list[str], list[str]]:
    """Hold out `fraction` of the lines: a random sample of lines, or the tail of a stream."""
    n_valid = max(1, round(len(texts) * fraction))
    if len(texts) - n_valid < 1:
        raise CorpusError(f"the corpus has {len(texts)} line(s); it needs at least 2 to hold some out for validation")
    if stream:
        return list(texts[:-n_valid]), list(texts[-n_valid:])
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_valid])
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def count_characters(texts: Sequence[str], *, stream: bool) -> int:
    """Characters of the evaluated text, one newline per line (what <eos> predicts)."""
    return sum(len(t) + 1 for t in texts if stream or t.strip())


def encode_lines(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Line corpus: each non-empty line as <bos> ... <eos>."""
    kept = [t for t in texts if t.strip()]
    return [[BOS_ID, *ids, EOS_ID] for ids in encode_batch(tokenizer, kept)]


def encode_stream(tokenizer: Tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Prose: one stream, <bos> once, <eos> where each line ends (blank lines keep paragraphs)."""
    ids = [BOS_ID]
    for line in encode_batch(tokenizer, texts):
        ids.extend(line)
        ids.append(EOS_ID)
    return torch.tensor(ids, dtype=torch.long)


@dataclass(frozen=True)
class Window:
    """One truncated-BPTT window: inputs and next-token targets (B, T); carry continues the state."""

    inputs: torch.Tensor
    targets: torch.Tensor
    carry: bool


class StreamWindows:
    """Contiguous windows of a stream laid out as B parallel columns (pytorch/examples `batchify`).

    Column b holds tokens [b*L, (b+1)*L] (neighbours share one token, so every token but the first is
    a target exactly once). Reading window after window continues each column, so the state at the
    end of one window is the right starting state of the next.
    """

    def __init__(self, ids: torch.Tensor, bptt: int, batch_size: int) -> None:
        self.bptt, self.batch_size = bptt, batch_size
        length = max(1, math.ceil((len(ids) - 1) / batch_size))
        padded = torch.full((batch_size * length + 1,), PAD_ID, dtype=torch.long)
        padded[: len(ids)] = ids
        self.columns = padded.unfold(0, length + 1, length)  # (B, L + 1), PAD only at the very end
        self.targets = int((self.columns[:, 1:] != PAD_ID).sum())
        self.steps_per_epoch = math.ceil(length / bptt)

    def epoch(self, epoch: int, seed: int | None, start: int = 0) -> Iterator[Window]:
        # A different first cut each epoch, so window boundaries do not always fall on the same tokens.
        offset = 0 if epoch == 0 or seed is None else int(torch.randint(self.bptt, (1,), generator=_gen(seed, epoch)))
        cuts = [0, *range(offset or self.bptt, self.columns.size(1) - 1, self.bptt)]
        for i in range(start, len(cuts)):
            end = cuts[i + 1] if i + 1 < len(cuts) else self.columns.size(1) - 1
            chunk = self.columns[:, cuts[i] : end + 1]
            yield Window(chunk[:, :-1], chunk[:, 1:], carry=i > 0)


class LineWindows:
    """Length-bucketed batches of whole lines, each from <bos> with a zero state, padded at the end.

    Lines longer than bptt are read in bptt-sized windows with the state carried inside the line.
    """

    def __init__(self, lines: list[list[int]], bptt: int, batch_size: int) -> None:
        self.lines, self.bptt, self.batch_size = lines, bptt, batch_size
        self.steps_per_epoch = sum(self._count(b) for b in self._batches(None))

    def _count(self, batch: list[int]) -> int:
        return math.ceil((max(len(self.lines[i]) for i in batch) - 1) / self.bptt)

    def _batches(self, generator: torch.Generator | None) -> list[list[int]]:
        n = len(self.lines)
        order = list(range(n)) if generator is None else torch.randperm(n, generator=generator).tolist()
        pool = self.batch_size * 50  # sort within pools: similar lengths per batch, still shuffled
        batches = []
        for p in range(0, n, pool):
            chunk = sorted(order[p : p + pool], key=lambda i: len(self.lines[i]))
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if generator is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def _windows(self, batch: list[int], first: int = 0) -> Iterator[Window]:
        """The batch's windows from the `first`, each made when it is needed: a line of any length (a
        whole book on one line) costs one window's memory at a time, not the padded batch's."""
        longest = max(len(self.lines[i]) for i in batch)
        for s in range(first * self.bptt, longest - 1, self.bptt):
            width = min(self.bptt + 1, longest - s)  # inputs and targets overlap by all but one token
            chunk = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
            for row, i in enumerate(batch):
                piece = self.lines[i][s : s + width]
                if piece:
                    chunk[row, : len(piece)] = torch.tensor(piece)
            yield Window(chunk[:, :-1], chunk[:, 1:], carry=s > 0)

    def epoch(self, epoch: int, seed: int | None, start: int = 0) -> Iterator[Window]:
        batches = self._batches(None if seed is None else _gen(seed, epoch))
        index = 0
        for batch in batches:
            count = self._count(batch)
            if index + count > start:
                yield from self._windows(batch, max(0, start - index))
            index += count


def _gen(seed: int, epoch: int) -> torch.Generator:
    """Data order of one epoch depends only on (seed, epoch): resuming mid-epoch replays it exactly."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def lm_windows(
    texts: Sequence[str], tokenizer: Tokenizer, *, stream: bool, bptt: int, batch_size: int
) -> StreamWindows | LineWindows:
    """Tokenize a corpus and cut it the way the model reads text."""
    if stream:
        return StreamWindows(encode_stream(tokenizer, texts), bptt, batch_size)
    return LineWindows(encode_lines(tokenizer, texts), bptt, batch_size)


def check_lm_size(windows: StreamWindows | LineWindows, data: str, bptt: int, batch_size: int) -> None:
    """A corpus too small for one full batch is an error that says the numbers."""
    if isinstance(windows, StreamWindows):
        tokens = windows.targets
        needed = batch_size * (bptt + 1)
        if tokens < needed:
            raise CorpusError(
                f"{data} gives {tokens:,} training tokens; --bptt {bptt} × --batch-size {batch_size} needs at "
                f"least {needed:,}. Lower --bptt or --batch-size, or give more text."
            )
    elif len(windows.lines) < batch_size:
        raise CorpusError(
            f"{data} gives {len(windows.lines):,} training lines; --batch-size {batch_size} needs at least "
            f"{batch_size:,}. Lower --batch-size or give more lines."
        )


def read_prompt(path: Path) -> str:
    """A prompt file's text, checked like a corpus (a leading byte-order mark is dropped), of at most
    MAX_PROMPT_BYTES: a few books, read in chunks; its token ids cost about 16 bytes a character."""
    return read_text(path, "--prompt-file", MAX_PROMPT_BYTES)

"""Labelled corpora for classifiers, and the inputs of `classify`.

Reads text + label tables with errors that name the file and line, holds out whole sentences so
validation never shares one with training, cuts length-bucketed padded batches, and streams the
texts to classify in chunks. Tables are read through `seqtext.data`, the owner of `datasets`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqtext.config import SENTIMENT_LABELS
from seqtext.data import TABLE_FORMATS, load_table, local_file, pick_column, row_place, texts_of
from seqtext.errors import CorpusError
from seqtext.tokenizer import PAD_ID

TEXT_COLUMNS = ("text", "Phrase", "phrase", "sentence", "review")
# A classifier reads a whole text in one pass (a bidirectional RNN needs its end before its start), so
# a text's length bounds the memory and the time of one step: MAX_TEXT_CHARS (the longest review of the
# usual review corpora is under 14,000) reads in about a second on one core. A batch holds at most
# TOKENS_PER_BATCH tokens (about 0.2 GB at inference), however long its texts; phrases fill a batch.
MAX_TEXT_CHARS = 20_000
TOKENS_PER_BATCH = 32_768
LABEL_COLUMNS = ("label", "Sentiment", "sentiment", "labels")
GROUP_COLUMN = "SentenceId"  # Kaggle: the phrases of one sentence share words and labels
ID_COLUMN = "PhraseId"


def where(data: str | Path, row: int) -> str:
    """'FILE, line N' for a 0-based table row (line 1 of tsv/csv is the header)."""
    return row_place(data, row)


@dataclass(frozen=True)
class Labelled:
    """Rows of a labelled table: text, label id, sentence group (or None), source row index."""

    texts: list[str]
    labels: list[int]
    groups: list[Any] | None
    rows: list[int]
    source: str
    group_column: str | None

    def subset(self, keep: Sequence[int]) -> Labelled:
        groups = None if self.groups is None else [self.groups[i] for i in keep]
        return Labelled(
            [self.texts[i] for i in keep],
            [self.labels[i] for i in keep],
            groups,
            [self.rows[i] for i in keep],
            self.source,
            self.group_column,
        )


def read_labelled(
    data: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    labels: tuple[str, ...] = (),
    group_column: str | None = None,
) -> tuple[Labelled, tuple[str, ...]]:
    """Read a labelled table; returns its rows and the label names (given, ClassLabel, or sentiment)."""
    path = local_file(data)
    if path is not None and path.suffix.lower() not in TABLE_FORMATS:
        raise CorpusError(
            f"{data}: a classifier needs a table with a text and a label column (tsv, csv, jsonl or "
            "parquet), e.g. the Kaggle train.tsv (PhraseId, SentenceId, Phrase, Sentiment)"
        )
    if path is not None and path.stat().st_size == 0:
        raise CorpusError(f"{data} is empty; give a table with a header line and labelled rows")
    table = load_table(data)
    text_col = pick_column(table, text_column, data, "--text-column", TEXT_COLUMNS)
    label_col = _label_column(table, label_column, data)
    names = tuple(labels) or tuple(getattr(table.features.get(label_col), "names", None) or ()) or SENTIMENT_LABELS
    texts = texts_of(table[text_col], table, text_col, data)
    for row, text in enumerate(texts):
        check_length(text, row_place(data, row, table))
    if not any(t.strip() for t in texts):
        raise CorpusError(
            f"{data} has no usable text: column {text_col!r} is empty in all {len(texts):,} rows. "
            "Give labelled rows, or pass --text-column NAME."
        )
    ids = label_ids(table[label_col], names, data, label_col)
    group_col = group_column
    if group_col is not None and group_col not in table.column_names:
        raise CorpusError(
            f"{data} has no column {group_col!r} (columns: {', '.join(table.column_names)}). Pass --group-column NAME."
        )
    if group_col is None and GROUP_COLUMN in table.column_names:
        group_col = GROUP_COLUMN
    groups = None if group_col is None else [_group_key(value) for value in table[group_col]]
    return Labelled(texts, ids, groups, list(range(len(texts))), str(data), group_col), names


def check_lengths(texts: Sequence[str], place: Callable[[int], str] = lambda i: f"text {i + 1}") -> None:
    """Refuse a list of texts (the API's, a request's, a block of a file's lines) holding one longer than
    MAX_TEXT_CHARS, naming the first such (`place` of its index: "text 3", or its file and line)."""
    if texts and max(map(len, texts)) > MAX_TEXT_CHARS:
        first = next(i for i, text in enumerate(texts) if len(text) > MAX_TEXT_CHARS)
        check_length(texts[first], place(first))


def check_length(text: str, place: str) -> None:
    """Refuse a text longer than a classifier reads (MAX_TEXT_CHARS), naming where it is."""
    if len(text) > MAX_TEXT_CHARS:
        raise CorpusError(
            f"{place}: a text of {len(text):,} characters; a classifier reads texts of up to {MAX_TEXT_CHARS:,} "
            "characters (a review, not a book): shorten it or split it into several"
        )


def _group_key(value: Any) -> Any:
    """A group value usable as a key: a list or an object (from JSON lines) by its JSON text."""
    return (
        value if isinstance(value, str | int | float | bool | None) else json.dumps(value, sort_keys=True, default=str)
    )


def _label_column(table: Any, column: str | None, data: str | Path) -> str:
    names = list(table.column_names)
    if column is not None and column not in names:
        raise CorpusError(f"{data} has no column {column!r} (columns: {', '.join(names)}). Pass --label-column NAME.")
    found = column or next((name for name in LABEL_COLUMNS if name in names), None)
    if found is None:
        raise CorpusError(
            f"{data}: which column holds the labels? (columns: {', '.join(names)}). Pass --label-column NAME."
        )
    return found


def label_ids(values: Sequence[Any], names: Sequence[str], data: str | Path, column: str) -> list[int]:
    """Label ids of a column: integers index into `names`; strings are names or integers."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for row, value in enumerate(values):
        text = value.strip() if isinstance(value, str) else value
        if text is None or text == "":
            raise CorpusError(f"{where(data, row)}: no label in column {column!r}; label the row or remove it")
        if isinstance(text, str) and text in index:
            ids.append(index[text])
            continue
        number = _as_int(text)
        if number is None:
            used = sorted({str(v).strip() for v in values if _as_int(v) is None and str(v).strip()})
            raise CorpusError(
                f"{where(data, row)}: label {text!r} is not in the label set ({', '.join(names)}); fix the line, "
                f"or pass --labels with the names the file uses, e.g. --labels {','.join(used[:10])}"
            )
        if not 0 <= number < len(names):
            raise CorpusError(
                f"{where(data, row)}: label {number} is outside the label set 0-{len(names) - 1} "
                f"({', '.join(names)}); fix the line, or pass --labels with one name per label id"
            )
        ids.append(number)
    return ids


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def split_labelled(data: Labelled, fraction: float, seed: int) -> tuple[Labelled, Labelled, str]:
    """Hold out `fraction` of the sentences (whole groups), or of the rows when there are no groups."""
    keys: list[Any] = data.groups if data.groups is not None else list(range(len(data.texts)))
    unique = list(dict.fromkeys(keys))
    unit = f"sentences (by {data.group_column})" if data.groups is not None else "random rows"
    if len(unique) < 2:
        what = f"{data.group_column} value" if data.groups is not None else "row"
        raise CorpusError(
            f"{data.source} has only {len(unique)} {what}; holding some out for validation needs at least 2. "
            "Give more data, or pass --valid FILE."
        )
    n_valid = min(len(unique) - 1, max(1, round(len(unique) * fraction)))
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed)).tolist()
    held = {unique[i] for i in order[:n_valid]}
    valid = [i for i, key in enumerate(keys) if key in held]
    train = [i for i, key in enumerate(keys) if key not in held]
    return data.subset(train), data.subset(valid), f"{n_valid:,} of {len(unique):,} {unit}"


@dataclass(frozen=True)
class Batch:
    """Padded token ids (B, T), lengths (B,), label ids (B,), and a teacher's probabilities (B, C) when distilling."""

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None = None


def pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with <pad> → ids (B, T) and lengths (B,); an empty list keeps length 0."""
    lengths = [len(s) for s in seqs]
    width = max(1, *lengths) if lengths else 1
    ids = torch.tensor([[*s, *[PAD_ID] * (width - len(s))] for s in seqs], dtype=torch.long).view(len(seqs), width)
    return ids, torch.tensor(lengths, dtype=torch.long)


class TextBatches:
    """Batches of texts of one length with their labels, in an order that depends only on (seed, epoch).

    Texts of equal length need no padding, so the RNN runs its fused kernel instead of the slower
    packed one. Which texts share a batch is random within a length, and the batches are shuffled,
    so training still sees lengths mixed.
    """

    def __init__(
        self, ids: list[list[int]], labels: list[int], batch_size: int, soft: torch.Tensor | None = None
    ) -> None:
        self.ids, self.labels, self.batch_size, self.soft = ids, labels, batch_size, soft
        counts = Counter(len(s) for s in ids)
        self.steps_per_epoch = sum(math.ceil(n / rows_per_batch(length, batch_size)) for length, n in counts.items())

    def epoch(self, epoch: int, seed: int, start: int = 0) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # resuming replays the epoch
        order = torch.randperm(len(self.ids), generator=generator).tolist()
        batches = length_batches(order, self.ids, self.batch_size)
        for i in torch.randperm(len(batches), generator=generator).tolist()[start:]:
            ids, lengths = pad([self.ids[j] for j in batches[i]])
            labels = torch.tensor([self.labels[j] for j in batches[i]], dtype=torch.long)
            yield Batch(ids, lengths, labels, None if self.soft is None else self.soft[batches[i]])


def rows_per_batch(length: int, batch_size: int) -> int:
    """Texts of `length` tokens in one batch: batch_size, fewer when they would pass TOKENS_PER_BATCH."""
    return max(1, min(batch_size, TOKENS_PER_BATCH // max(1, length)))


def length_batches(order: Sequence[int], ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Cut `order` into batches of texts of one length (shortest first, stable): at most batch_size texts,
    and at most TOKENS_PER_BATCH tokens (rows_per_batch)."""
    by_length = sorted(order, key=lambda i: len(ids[i]))
    batches = []
    for length, group in itertools.groupby(by_length, key=lambda i: len(ids[i])):
        same, size = list(group), rows_per_batch(length, batch_size)
        batches += [same[i : i + size] for i in range(0, len(same), size)]
    return batches

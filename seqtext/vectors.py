"""Pretrained word vectors: GloVe `.txt` and word2vec/fastText `.vec` (a "WORDS DIM" header line), plain
or gzip-compressed, read in one streaming pass straight into the rows of a vocabulary.

Only the rows of the vocabulary's words are parsed; every other row is checked for its field count
alone, so a 400k × 300 file costs one pass and no copy of itself. A vocabulary word takes the vector
of the file's first row that matches it exactly, else of the first that matches it lower-cased, else
lower-cased with accents stripped ("Café" → "café" → "cafe"): GloVe 6B is all lower case, fastText's
files keep case. The tokenizer's marks (the word level's "▁" before a word that follows a space) are
not part of the word, so "▁film" and "film" both take the vector of "film"; special tokens and
sub-word pieces ("##ing") take none.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import re
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from seqtext.errors import ConfigError, CorpusError
from seqtext.limits import MAX_WIDTH
from seqtext.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPACE_MARK, SPECIAL_TOKENS, SUBWORD_PREFIX, UNK_ID

GZIP_MAGIC = b"\x1f\x8b"
FOLDS = 3  # exact, lower-cased, lower-cased without accents
TO_TEXT = (
    "convert it to the text format (gensim: KeyedVectors.load_word2vec_format(FILE, binary=True)"
    ".save_word2vec_format('vectors.vec'))"
)
TO_FILE = "give a file of word vectors: a word and its numbers per line (GloVe .txt, word2vec/fastText .vec)"
# Words the word tokenizer makes as one token: a run of word characters, or one other character.
ONE_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Vectors:
    """The vectors of a vocabulary's words, from a file."""

    weight: torch.Tensor  # (V, D) float32: the file's vector for found rows, zero elsewhere
    found: torch.Tensor  # (V,) bool
    dim: int
    rows: int  # vectors in the file

    def coverage(self, counts: torch.Tensor) -> dict[str, float]:
        """Share of the training text's distinct words (those of the vocabulary; words added from the
        file itself do not count) with a vector, and of its word tokens, `counts` (V,) being how often
        each id occurs in the training text (<unk>, a word outside the vocabulary, counts as not found)."""
        counts = counts.clone()
        counts[[PAD_ID, BOS_ID, EOS_ID]] = 0
        words, tokens = counts > 0, float(counts.sum())
        words[UNK_ID] = False
        return {
            "training_words": float(self.found[words].sum()) / max(1, int(words.sum())),
            "training_tokens": float(counts[self.found].sum()) / tokens if tokens else 0.0,
        }

    @torch.no_grad()
    def initialise(self, embedding: torch.Tensor) -> None:
        """Copy the found vectors into `embedding` (V, D); the other rows (words the file lacks, special
        tokens) are drawn again at the scale of the found vectors, so no row stands out by its size."""
        found = self.found.to(embedding.device)
        scale = self.weight[self.found].std().item() if int(self.found.sum()) > 1 else 1.0
        embedding.normal_(0.0, scale)
        embedding[found] = self.weight[self.found].to(embedding)


def check_dim(path: str | Path, embed_dim: int) -> int:
    """The file's dimension, which must be the embedding's: a differing --embed-dim is refused."""
    dim = vector_dim(path)
    if dim != embed_dim:
        raise ConfigError(
            f"--embed-dim is {embed_dim} but --embeddings {path} holds {dim}-dimensional vectors; the embedding "
            f"takes the file's dimension: pass --embed-dim {dim} (or leave it out on the command line)"
        )
    return dim


def start_embedding(
    embedding: nn.Module, path: str | Path, vocab: Mapping[str, int], counts: torch.Tensor
) -> dict[str, float]:
    """Initialise `embedding`'s word matrix (`.weight`: an nn.Embedding's, or a character-aware input's
    word part) from the vectors file for the words of `vocab` (token → id); returns the coverage (see
    Vectors.coverage), `counts` being how often each id occurs in the training text."""
    vectors = read_vectors(path, vocab)
    coverage = vectors.coverage(counts)
    if not coverage["training_words"]:  # a file of another language, or of sub-word pieces: nothing to start from
        raise CorpusError(
            f"--embeddings {path}: none of the training text's words has a vector in its {vectors.rows:,} rows "
            "(even lower-cased and without accents); give vectors of the training text's language"
        )
    vectors.initialise(embedding.weight)
    return coverage


def fold(word: str, level: int) -> str:
    """The word as matched at fold `level`: 0 itself, 1 lower-cased, 2 lower-cased without accents."""
    if level == 0:
        return word
    lower = word.lower()
    if level == 1 or lower.isascii():
        return lower
    return "".join(c for c in unicodedata.normalize("NFKD", lower) if not unicodedata.combining(c))


def vocabulary_words(vocab: Mapping[str, int]) -> dict[str, int]:
    """Token → id for the tokens that are words: tokenizer marks stripped, special tokens and pieces left out."""
    words = {}
    for token, index in vocab.items():
        if token in SPECIAL_TOKENS or token.startswith(SUBWORD_PREFIX):
            continue
        word = token.removeprefix(SPACE_MARK)
        if word.strip():
            words[token] = index
    return words


def read_vectors(path: str | Path, vocab: Mapping[str, int]) -> Vectors:
    """The vectors of `vocab`'s words (token → id, ids 0..V-1) from a GloVe or word2vec/fastText text file."""
    path = Path(path)
    size = max(vocab.values()) + 1
    index: list[dict[str, list[int]]] = [{} for _ in range(FOLDS)]
    for token, token_id in vocabulary_words(vocab).items():
        word = token.removeprefix(SPACE_MARK)
        for level in range(FOLDS):
            index[level].setdefault(fold(word, level), []).append(token_id)
    best = [FOLDS] * size  # the fold each id was matched at; FOLDS: not yet
    rows = _Rows(path)
    weight = torch.zeros(size, rows.dim)
    for number, word, text in rows:
        matches = [(i, level) for level in range(FOLDS) for i in index[level].get(fold(word, level), ())]
        wanted = [i for i, level in matches if level < best[i]]
        if not wanted:
            continue
        vector = rows.numbers(number, text, len(word))
        for i, level in matches:
            if level < best[i]:
                best[i] = level
                weight[i] = vector
    found = torch.tensor([b < FOLDS for b in best], dtype=torch.bool)
    return Vectors(weight=weight, found=found, dim=rows.dim, rows=rows.count)


def vector_dim(path: str | Path) -> int:
    """The dimension of a vectors file, from its first line (the header, or the first row)."""
    rows = _Rows(Path(path))
    rows.close()
    return rows.dim


def frequent_words(path: str | Path, rows: int, known: Iterable[str]) -> list[str]:
    """Words of the file's first `rows` rows (the most frequent words, in GloVe, word2vec and fastText
    files) that are one word-level token each and not among `known`, in file order."""
    seen, words = set(known), []
    reader = _Rows(Path(path))
    for _, word, _ in reader:
        if reader.count > rows:
            break
        if word not in seen and ONE_TOKEN.fullmatch(word):
            seen.add(word)
            words.append(word)
    reader.close()
    return words


class _Rows:
    """The rows of a vectors file, checked, as (line number, word, line text); the header read first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.announced: int | None = None  # the header's row count (word2vec/fastText)
        self._source = lines = self._lines()
        try:
            number, first = next(lines)
        except StopIteration:
            raise self.error(None, "is empty", TO_FILE) from None
        header = first.split()
        if len(header) == 2 and all(part.isdigit() for part in header):  # word2vec/fastText: "WORDS DIM"
            self.announced, self.dim = int(header[0]), int(header[1])
            self._rest: Iterator[tuple[int, str]] = lines
        else:  # GloVe: no header, the first row tells the dimension
            self.dim, self._rest = len(first.rstrip(" ").split(" ")) - 1, itertools.chain([(number, first)], lines)
        if self.dim < 1:
            raise self.error(number, "holds a word without numbers", "give one word and its numbers per line")
        if self.dim > MAX_WIDTH:
            raise self.error(
                number, f"gives {self.dim:,} numbers per vector, more than an embedding holds ({MAX_WIDTH:,})", TO_FILE
            )

    def close(self) -> None:
        """Close the file before its last row (a finished pass closes it itself)."""
        self._source.close()

    def error(self, line: int | None, problem: str, fix: str) -> CorpusError:
        where = f"{self.path}" if line is None else f"{self.path}, line {line:,}"
        return CorpusError(f"--embeddings {where}: {problem}; {fix}")

    def _lines(self) -> Iterator[tuple[int, str]]:
        """Non-blank lines as text, numbered from 1, gzip or not; a binary file, bad gzip or bad UTF-8 is an error."""
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise CorpusError(f"--embeddings {self.path}: cannot be read ({exc.strerror})") from None
        with raw:
            magic = raw.read(2)
            raw.seek(0)
            if magic != GZIP_MAGIC and self.path.suffix == ".gz":
                raise self.error(None, "is named .gz but is not gzip-compressed", "rename it without .gz")
            stream = io.BufferedReader(gzip.GzipFile(fileobj=raw)) if magic == GZIP_MAGIC else raw
            number = 0
            try:
                for number, line in enumerate(stream, start=1):
                    if b"\0" in line:
                        raise self.error(number, "holds binary data, not text vectors", self._binary_fix(number))
                    try:
                        text = line.decode("utf-8").rstrip("\r\n")
                    except UnicodeDecodeError as exc:
                        if number == 2 and self.announced is not None:
                            raise self.error(number, "is binary", f"it is a binary word2vec file: {TO_TEXT}") from None
                        raise self.error(
                            number, f"is not valid UTF-8 (byte {exc.start + 1})", "save the file as UTF-8 text"
                        ) from None
                    if number == 1:
                        text = text.removeprefix("\ufeff")  # a byte-order mark is no part of the first word
                    if text.strip():
                        yield number, text
            except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                raise self.error(
                    number + 1, f"the gzip data is damaged or cut short ({exc})", "download or compress the file again"
                ) from None

    def _binary_fix(self, number: int) -> str:
        if self.announced is not None:
            return f"it is a binary word2vec file: {TO_TEXT}"
        return "give the text format (.txt, .vec), not a binary .bin file"

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        """(line number, word, text) per row; the field count checked against the dimension."""
        dim, number = self.dim, 1
        for number, text in self._rest:
            text = text.rstrip(" ")  # fastText's rows end with a space
            spaces = text.count(" ")
            if spaces == dim:
                word = text[: text.index(" ")]
            elif spaces > dim:  # a word with spaces in it (GloVe 840B has some), unless it ends in a number
                word = text.rsplit(" ", dim)[0]
                if _is_number(word.rsplit(" ", 1)[-1]):
                    raise self.error(number, f"has {spaces} numbers, not {dim}", self._dim_fix())
            else:
                raise self.error(number, f"has {spaces} numbers, not {dim}", self._dim_fix())
            self.count += 1
            yield number, word, text
        if not self.count:
            raise self.error(number, "holds no vectors after its header line", TO_FILE)
        if self.announced is not None and self.count != self.announced:
            raise self.error(
                number,
                f"the header announces {self.announced:,} vectors but the file holds {self.count:,}",
                "download the file again, or correct its first line",
            )

    def _dim_fix(self) -> str:
        source = "the header" if self.announced is not None else "the first row"
        return f"every row is a word and {self.dim} numbers (the dimension {source} gives); repair or replace the file"

    def numbers(self, number: int, text: str, word_length: int) -> torch.Tensor:
        """The vector of a row (its text after the word), checked: numbers, all finite."""
        fields = text[word_length + 1 :].split(" ")
        try:
            values = [float(field) for field in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise self.error(number, f"{bad[:20]!r} is not a number", "repair or replace the file") from None
        if not all(math.isfinite(v) for v in values):
            raise self.error(number, "holds an infinite or NaN value", "repair or replace the file")
        return torch.tensor(values)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

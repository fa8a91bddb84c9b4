"""Character-, word- and sub-word-level tokenizers (Hugging Face `tokenizers`), saved as tokenizer.json.

Every tokenizer has the same special ids: <pad>=0, <unk>=1, <bos>=2, <eos>=3. Text is NFC-normalised,
so "niño" typed with a combining tilde and with "ñ" are the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from seqtext.textfiles import valid_unicode

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
SPACE_MARK = "▁"  # word level: marks a word that follows a space, so decoding restores the spacing
SUBWORD_PREFIX = "##"  # sub-word level: marks a piece that continues a word
# Characters per call into the tokenizer. A longer text (text8 is one line of 100M characters) is cut
# into pieces, so memory stays bounded (the tokenizer keeps ~100 bytes per token while it works) and a
# stop signal (Ctrl-C, SIGTERM) is seen between calls, within a fraction of a second.
ENCODE_CHARS = 1 << 20

# Word level: a word or one punctuation character, each optionally preceded by the space mark.
_WORD_PIECES = Regex(rf"{SPACE_MARK}?\w+|{SPACE_MARK}?[^\w{SPACE_MARK}]|{SPACE_MARK}")


def build_char_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """One token per character (Unicode code point after NFC); vocabulary sorted, so ids are stable."""
    normalize = normalizers.NFC()
    chars: set[str] = set()
    for piece in pieces(texts):
        chars.update(normalize.normalize_str(piece))
    chars.difference_update(SPECIAL_TOKENS)
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *sorted(chars)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalize
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
    tok.decoder = decoders.Fuse()  # without a decoder, decode() would join characters with spaces
    tok.add_special_tokens(list(SPECIAL_TOKENS))  # keeps ids 0..3 and makes decode() skip them
    return tok


def build_word_tokenizer(texts: Iterable[str], max_vocab: int) -> Tokenizer:
    """The `max_vocab` most frequent words and punctuation marks; rarer ones become <unk>.

    "Voy al parque." → Voy ▁al ▁parque . — a word carries a space mark when a space precedes it, so
    decode() restores the original spacing exactly ("¿Qué hora es?" round-trips).
    """
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE_MARK, prepend_scheme="never"),
            pre_tokenizers.Split(_WORD_PIECES, behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=SPACE_MARK, prepend_scheme="never")
    trainer = trainers.WordLevelTrainer(vocab_size=max_vocab, special_tokens=list(SPECIAL_TOKENS))
    tok.train_from_iterator(pieces(texts), trainer=trainer)
    return tok


def build_subword_tokenizer(texts: Iterable[str], max_vocab: int) -> Tokenizer:
    """Words as the word level cuts them, then WordPiece: a word in the `max_vocab` pieces stays whole,
    any other is spelled in pieces ("▁x ##y ##zzy"), so a word never seen in training is not <unk>."""
    tok = Tokenizer(models.WordPiece(unk_token="<unk>", continuing_subword_prefix=SUBWORD_PREFIX))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE_MARK, prepend_scheme="never"),
            pre_tokenizers.Split(_WORD_PIECES, behavior="isolated"),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix=SUBWORD_PREFIX, cleanup=False)
    trainer = trainers.WordPieceTrainer(
        vocab_size=max_vocab, special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix=SUBWORD_PREFIX
    )
    tok.train_from_iterator(pieces(texts), trainer=trainer)
    return tok


def build_tokenizer(texts: Sequence[str], level: str, max_vocab: int) -> Tokenizer:
    """Train the tokenizer of `level` ('char', 'word' or 'subword') on the training texts."""
    if level == "char":
        return build_char_tokenizer(texts)
    if level == "subword":
        return build_subword_tokenizer(texts, max_vocab)
    return build_word_tokenizer(texts, max_vocab)


def with_words(tokenizer: Tokenizer, words: Iterable[str]) -> Tokenizer:
    """A word-level tokenizer that also knows `words` (as words following a space), each with a new id
    after the existing ones; words it knows already keep theirs."""
    vocab = tokenizer.get_vocab()
    for word in words:
        vocab.setdefault(SPACE_MARK + word, len(vocab))
    extended = Tokenizer.from_str(tokenizer.to_str())
    extended.model = models.WordLevel(vocab, unk_token="<unk>")
    return extended


def encode_batch(tokenizer: Tokenizer, texts: Sequence[str], chunk: int | None = None) -> list[list[int]]:
    """Token ids of each text, without special tokens (the caller adds <bos>/<eos>).

    Texts of any length: the tokenizer is called on at most `chunk` (ENCODE_CHARS) characters at a
    time, a long text cut into pieces at spaces, where every tokenizer here cuts anyway (a piece of
    `chunk` characters without a space is cut where it ends). A text that is not valid Unicode (an
    unpaired surrogate) is refused with a one-line error.
    """
    texts = list(texts)
    try:
        return _encode_pieces(tokenizer, texts, chunk or ENCODE_CHARS)
    except (UnicodeError, TypeError):  # the tokenizer cannot take unpaired surrogates: say which text
        for i, text in enumerate(texts):
            valid_unicode(text, "the text" if len(texts) == 1 else f"text {i + 1}")
        raise


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of one text (a keystroke's, a prompt's), as encode_batch gives them, with one call for a
    short text."""
    if len(text) > ENCODE_CHARS:
        return encode_batch(tokenizer, [text])[0]
    try:
        return tokenizer.encode(text, add_special_tokens=False).ids
    except (UnicodeError, TypeError):
        valid_unicode(text, "the text")
        raise


def _encode_pieces(tokenizer: Tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    if sum(map(len, texts)) <= limit:  # the usual case: one call
        return _encode(tokenizer, texts)
    if max(map(len, texts)) <= limit:  # many texts, none to cut: a call for each run of them (as below)
        out: list[list[int]] = []
        start = size = 0
        for end, length in enumerate(map(len, texts)):
            if size + length > limit:
                out += _encode(tokenizer, texts[start:end])
                start, size = end, 0
            size += length
        return out + _encode(tokenizer, texts[start:])
    out = [[] for _ in texts]
    owners: list[int] = []
    group: list[str] = []
    size = 0
    for i, text in enumerate(texts):
        for piece in _pieces(text, limit):
            if group and size + len(piece) > limit:
                for owner, ids in zip(owners, _encode(tokenizer, group), strict=True):
                    out[owner] += ids
                owners, group, size = [], [], 0
            owners.append(i)
            group.append(piece)
            size += len(piece)
    for owner, ids in zip(owners, _encode(tokenizer, group), strict=True):
        out[owner] += ids
    return out


def _encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    # tokenizers ≥ 0.20 has encode_batch_fast: the same ids without offsets, about 15% faster
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    return [enc.ids for enc in encode(texts, add_special_tokens=False)]


def pieces(texts: Iterable[str]) -> Iterator[str]:
    """The texts cut into pieces of at most ENCODE_CHARS characters (see _pieces), for whatever reads
    them whole (training a tokenizer): a corpus on one line costs one piece at a time."""
    for text in texts:
        yield from _pieces(text, ENCODE_CHARS)


def _pieces(text: str, limit: int) -> Iterator[str]:
    """`text` in pieces of at most `limit` characters, each but the last ending just before a space
    when one is found in its last eighth (a character-level tokenizer may cut before any ASCII character)."""
    start = 0
    while len(text) - start > limit:
        end = start + limit
        cut = text.rfind(" ", end - limit // 8, end)
        if cut <= start:
            cut = end
        yield text[start:cut]
        start = cut
    yield text[start:]


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Text of `ids`, special tokens skipped. Pieces decode independently, so they can be streamed."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def tokenizer_level(tokenizer: Tokenizer) -> str | None:
    """'char', 'word' or 'subword' for a tokenizer built here (told apart by its decoder); None for any other."""
    decoder = tokenizer.decoder
    names = {"Fuse": "char", "Metaspace": "word", "WordPiece": "subword"}
    return names.get(type(decoder).__name__) if decoder is not None else None


def to_json(tokenizer: Tokenizer) -> str:
    """The tokenizer as JSON text (what tokenizer.json holds), to share it between processes."""
    return tokenizer.to_str()


def from_json(text: str) -> Tokenizer:
    """A tokenizer from the JSON text of `to_json`."""
    return Tokenizer.from_str(text)

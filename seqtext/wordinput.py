"""Character-aware word input (Kim et al. 2016): a word model's input vector built from the word's own
embedding plus a small character CNN over its spelling, so that a rare word, or an inflection seen a
few times ("comprendiésemos"), gets an input that shares what its letters share with other words.

The module is a drop-in for `nn.Embedding`: called with token ids (any shape) it returns their
vectors, and `.weight` is the word embedding (tied to the output layer as before). What differs is
inside: the spelling of every vocabulary token, character ids (V, MAX_CHARS + 2) with begin and end
marks, is derived from the tokenizer (`spell`), never read from a file. In training the CNN encodes
the distinct words of each batch; at inference the encodings of the whole vocabulary are computed
once and cached, so a keystroke costs a table lookup, as with a plain embedding.

Shapes: N words, L = MAX_CHARS + 2 characters, C char_dim, F = E filters (widths WIDTHS), E embed_dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_CHARS = 20  # characters of a token that are spelled (longer ones are cut: their start carries most)
PAD, BEGIN, END = 0, 1, 2  # character ids of padding and of the begin / end of word marks
CHAR_DIM = 16
WIDTHS = (1, 2, 3, 4, 5, 6)


def characters_of(tokens: Sequence[str]) -> list[str]:
    """The characters of a vocabulary, sorted: character id 3 + i is the i-th."""
    return sorted({c for token in tokens for c in token[:MAX_CHARS]})


def char_vocab_size(tokens: Sequence[str]) -> int:
    """How many character ids a vocabulary's spellings use (padding and the two marks included)."""
    return 3 + len(characters_of(tokens))


def vocabulary_tokens(tokenizer) -> list[str]:
    """The tokens of a tokenizer in id order (what `spell` takes)."""
    return [tokenizer.id_to_token(i) or "" for i in range(tokenizer.get_vocab_size())]


def spell_vocabulary(model: nn.Module, tokenizer) -> None:
    """Give a model with character-aware input the spelling of its tokenizer's vocabulary (no-op otherwise)."""
    if isinstance(getattr(model, "embed", None), CharAwareEmbedding):
        model.embed.spell(vocabulary_tokens(tokenizer))


class CharAwareEmbedding(nn.Module):
    """Word embedding + a character CNN (max-pooled convolutions of WIDTHS, a highway layer) of the spelling."""

    def __init__(self, vocab_size: int, embed_dim: int, char_vocab: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(vocab_size, embed_dim))  # as nn.Embedding's initialisation
        self.chars = nn.Embedding(char_vocab, CHAR_DIM, padding_idx=PAD)
        filters = [embed_dim // len(WIDTHS)] * len(WIDTHS)
        filters[0] += embed_dim - sum(filters)  # E filters in all, so no projection is needed
        convs = (nn.Conv1d(CHAR_DIM, n, w, padding=w // 2) for n, w in zip(filters, WIDTHS, strict=True))
        self.convs = nn.ModuleList(convs)
        self.gate = nn.Linear(embed_dim, embed_dim)
        self.transform = nn.Linear(embed_dim, embed_dim)
        nn.init.constant_(self.gate.bias, -2.0)  # the highway starts by carrying the CNN's features through
        nn.init.zeros_(self.transform.weight)  # and the character part starts near zero: at first, a word model
        self.register_buffer("spelling", torch.zeros(vocab_size, MAX_CHARS + 2, dtype=torch.long), persistent=False)
        self._cached: tuple[tuple, Tensor] | None = None

    def spell(self, tokens: Sequence[str]) -> None:
        """Fill the spelling of every token (tokens[i] is id i) from the vocabulary itself.

        Raises ValueError when the vocabulary does not fit this module (another tokenizer's)."""
        chars = characters_of(tokens)
        if len(tokens) != self.spelling.size(0) or 3 + len(chars) != self.chars.num_embeddings:
            raise ValueError(
                f"{len(tokens):,} tokens spelled with {3 + len(chars)} character ids, but the model has "
                f"{self.spelling.size(0):,} words and {self.chars.num_embeddings} character ids"
            )
        ids = {c: 3 + i for i, c in enumerate(chars)}
        spelling = torch.full_like(self.spelling, PAD, device="cpu")
        for row, token in enumerate(tokens):
            spelled = [BEGIN, *(ids[c] for c in token[:MAX_CHARS]), END]
            spelling[row, : len(spelled)] = torch.tensor(spelled)
        self.spelling.copy_(spelling)
        self._cached = None

    def encode(self, spellings: Tensor) -> Tensor:
        """(N, L) character ids → (N, E): the CNN's max-pooled features through one highway layer."""
        x = self.chars(spellings).transpose(1, 2)  # (N, C, L)
        length = spellings.size(1)
        y = torch.cat([torch.relu(conv(x))[..., :length].amax(-1) for conv in self.convs], dim=-1)  # (N, E)
        gate = torch.sigmoid(self.gate(y))
        return gate * torch.relu(self.transform(y)) + (1 - gate) * y

    def forward(self, ids: Tensor) -> Tensor:
        """Token ids (any shape) → their vectors (…, E): word embedding + character encoding."""
        if self.training or torch.is_grad_enabled():
            distinct, where = ids.unique(return_inverse=True)
            return F.embedding(ids, self.weight) + self.encode(self.spelling[distinct])[where]
        return F.embedding(ids, self.weight) + self.vocabulary_encodings()[ids]

    def vocabulary_encodings(self, chunk: int = 2048) -> Tensor:
        """The character encodings of the whole vocabulary, (V, E), cached until a weight changes
        (encoded in chunks: the convolutions of 20k words at once would take ~300 MB)."""
        key = tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in self.parameters())
        if self._cached is None or self._cached[0] != key:
            with torch.no_grad():
                parts = [self.encode(self.spelling[i : i + chunk]) for i in range(0, len(self.spelling), chunk)]
                self._cached = (key, torch.cat(parts))
        return self._cached[1]

"""The keyboard's incremental reading: the RNN after some text, kept in a small cache, many texts at once.

A keystroke adds one character, so the engine keeps the RNN state (and the next-token distribution)
of recently read texts in an LRU cache keyed by the text, and runs only the tokens after the longest
cached prefix: O(1) model steps per keystroke, however long the line. Texts asked for together
(several typists' keystrokes) are read as one batch: each row steps from its own cached state, and
the output layer runs once for all of them. One text is the same code with a batch of one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from seqtext.keyboard.int8 import Int8Steps, supported
from seqtext.keyboard.words import joins
from seqtext.models import STEPPED_READ, State, join_states, split_state
from seqtext.runs.loading import Loaded
from seqtext.tokenizer import BOS_ID, EOS_ID, SPACE_MARK, UNK_ID, encode_text


@dataclass(frozen=True)
class Read:
    """The RNN after reading some text: its state and the distribution of the next token."""

    state: State | None
    dist: Tensor  # (V,) probabilities (word level) or log-probabilities (char level)


class Reader:
    """Reads texts from <bos> with one language model, remembering the last `cache_size` texts read.
    int8: its steps in int8 where keyboard/int8.py can run the model (else, and with False, in fp32)."""

    def __init__(self, lm: Loaded, cache_size: int = 64, int8: bool = False) -> None:
        self.lm, self.cache_size = lm, cache_size
        self.steps = Int8Steps(lm.model) if int8 and supported(lm.model) is None else lm.model
        self.word_level = lm.config.level == "word"
        self.vocab: dict[str, int] = lm.tokenizer.get_vocab()
        self._cache: OrderedDict[str, Read] = OrderedDict()
        with torch.inference_mode():  # a line starts from <bos> with a zero state
            logits, state = self.steps.read(torch.tensor([[BOS_ID]], device=lm.device))
        self.start = self._finish([state], logits)[0]

    def read(self, text: str) -> Read:
        """The RNN after <bos> and `text` (a batch of one)."""
        return self.read_many([text])[0]

    @torch.inference_mode()
    def read_many(self, texts: list[str]) -> list[Read]:
        """The RNN after <bos> and each text; the texts not cached are read together, from their longest
        cached prefixes. Equal texts are read once."""
        found: dict[str, Read] = {}
        todo: list[tuple[str, Read, list[int]]] = []  # text, the state it starts from, the ids to read
        for text in dict.fromkeys(texts):
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                found[text] = hit
                continue
            base_text, base = self._base(text)
            ids = self._ids(text[len(base_text) :]) if text != base_text else []
            if ids:
                todo.append((text, base, ids))
            else:
                found[text] = base
        short = sorted((t for t in todo if len(t[2]) <= STEPPED_READ), key=lambda t: -len(t[2]))
        if short:
            state = join_states([base.state for _, base, _ in short])  # type: ignore[misc]
            logits, state = self.steps.read_rows([ids for _, _, ids in short], state)
            found.update(zip([text for text, _, _ in short], self._finish(split_state(state), logits), strict=True))
        for text, base, ids in todo:  # a long read (a pasted line, the first keystroke of a long text): alone
            if len(ids) > STEPPED_READ:
                logits, state = self.steps.read(torch.tensor([ids], device=self.lm.device), base.state)
                found[text] = self._finish([state], logits)[0]
        for text, _, _ in todo:
            self._cache[text] = found[text]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return [found[text] for text in texts]

    def _finish(self, states: list[State | None], logits: Tensor) -> list[Read]:
        """One Read per row: its state and its next-token distribution."""
        logits = self.lm.check_finite(logits.float().cpu())  # (B, V); finite but extreme weights can overflow
        dists = logits.softmax(-1) if self.word_level else logits.log_softmax(-1)
        return [Read(state, dist) for state, dist in zip(states, dists, strict=True)]

    def _base(self, text: str) -> tuple[str, Read]:
        """The longest cached prefix of `text` that is a safe restart point, and its Read (<bos> alone: '')."""
        base_text, base = "", self.start
        for cached, read in self._cache.items():
            if len(base_text) < len(cached) < len(text) and text.startswith(cached) and self._splits(text, len(cached)):
                base_text, base = cached, read
        return base_text, base

    def _splits(self, text: str, at: int) -> bool:
        """True when the tokens of text[:at] are a prefix of the tokens of text (a safe restart point)."""
        if not self.word_level:
            return True  # one token per (NFC) character
        before, after = text[at - 1], text[at]
        if after == "\n" or before == "\n":
            return True
        if before in (" ", SPACE_MARK):  # a trailing space becomes the mark of the next word
            return after in (" ", SPACE_MARK)
        return not (joins(before) and joins(after))  # never cut inside a word

    def _ids(self, text: str) -> list[int]:
        """Token ids of a piece of text; a newline (stream models only) is <eos>."""
        ids: list[int] = []
        for n, line in enumerate(text.split("\n")):
            if n:
                ids.append(EOS_ID)
            if line and self.word_level:
                ids += encode_text(self.lm.tokenizer, line)
            elif line:
                ids += [self.vocab.get(char, UNK_ID) for char in line]
        return ids

"""Keyboard completion: whole-word suggestions for the word being typed, one keystroke at a time.

`typed` is the exact text typed so far; a suggestion is a whole word (a maximal run of `\\w`
characters, docs/keystroke-savings.md) that replaces the partial word at the end of `typed`.

- Word models: the next-word distribution after the committed words, restricted to the vocabulary
  words that start with the typed prefix: a sorted vocabulary and bisect, no scan. After a space the
  candidates are `▁`-marked tokens; at line start or after ¿ ¡ « ( they are the unmarked ones.
- With the run's n-gram (ngram.safetensors), word models rank by its linear mix with the model's
  distribution, over the union of both vocabularies (seqtext.keyboard.mixing: open vocabulary).
- Character models: a small beam search over characters from the typed text to the next word
  boundary (space, punctuation or end of line), keeping the k most likely whole words.
- As a Spanish typist expects: a prefix typed without accents or capitals also finds "niño" or
  "Qué" (ranked at a discount, since the typist may mean exactly what was typed), and a capitalised
  prefix capitalises the suggestion ("Pe" → "Perro").
- Incremental: a small LRU cache keyed by the text already read keeps the RNN state and the
  next-token distribution, so a keystroke runs only the new tokens (O(1) in the length of the
  text; within a word, no RNN step at all). Backspace and edits restart from the longest cached
  prefix. Text of any length works: the first read is linear, in chunks (a stop signal is seen
  between them), every keystroke after it O(1).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.lexicon import Lexicon, load_lexicon
from seqtext.keyboard.memory import MEMORY_FILE, SentenceMemory, load_memory
from seqtext.keyboard.mixing import Mixer
from seqtext.keyboard.ngram import NgramModel
from seqtext.keyboard.ngramfile import load_ngram
from seqtext.keyboard.personal import PERSONAL_WEIGHT, SPARE, PersonalModel, mix
from seqtext.keyboard.reading import Read, Reader
from seqtext.keyboard.words import (
    INEXACT_DISCOUNT,
    WORD,
    Completion,
    FixedWordIndex,
    fold,
    match_case,
    partial_word,
    word_indexes,
)
from seqtext.models import select_state
from seqtext.runs.loading import Loaded, as_loaded
from seqtext.runtime import intra_op_threads
from seqtext.textfiles import valid_unicode
from seqtext.tokenizer import EOS_ID, SPACE_MARK

MAX_SUGGESTIONS = 1_000  # --k: more than any keyboard shows


class Completer:
    """Suggestions from one language model, remembering the RNN state of recently read text.

    Reuse one Completer while someone types: each call then costs O(1) model steps. A word-level
    run with an n-gram (ngram.safetensors) ranks by the mix of both (seqtext.keyboard.mixing), which
    also offers the n-gram's words outside the model's vocabulary; ngram=False uses the model alone.
    `user_data` is the file of what its user typed (keyboard/personal.py): `learn(text)` adds to it
    (written at once, or with `save_delay` > 0 at most that many seconds later), `forget()` removes it;
    None learns in memory only. Its single-row steps run on one intra-op thread
    (runtime.intra_op_threads), so a busy core elsewhere cannot stall a thread pool. int8: an LSTM's steps
    in int8 (keyboard/int8.py; the same keystroke savings within 0.2 points), False: in fp32.
    """

    threads: int | None = 1  # intra-op threads while suggesting; None keeps the caller's (the benchmark's "before")

    def __init__(
        self,
        source: Loaded | str | Path,
        *,
        ngram: bool = True,
        cache_size: int = 64,
        beam: int = 8,
        max_chars: int = 24,
        user_data: str | Path | None = None,
        personal_weight: float = PERSONAL_WEIGHT,
        int8: bool = True,
        save_delay: float = 0.0,
    ):
        if not 0 <= personal_weight <= 1:
            raise ConfigError(f"personal_weight must be between 0 and 1 (got {personal_weight})")
        if not 0 <= save_delay < float("inf"):
            raise ConfigError(f"save_delay must be a number of seconds, 0 or more (got {save_delay})")
        self.personal = PersonalModel(Path(user_data) if user_data is not None else None, save_delay=save_delay)
        self.personal_weight = personal_weight
        self.lm = as_loaded(source, "lm", "complete")
        self.word_level = self.lm.config.level == "word"
        self.stream = self.lm.config.sample_by == "stream"
        self.cache_size, self.beam, self.max_chars = cache_size, beam, max_chars
        self.vocab: dict[str, int] = self.lm.tokenizer.get_vocab()
        words = {tok: i for tok, i in self.vocab.items() if WORD.fullmatch(tok.removeprefix(SPACE_MARK))}
        if not words:
            raise CheckpointError(f"{self.lm.path} has no words in its vocabulary; 'complete' has nothing to suggest")
        if self.word_level:
            self.exact, self.folded = {}, {}
            for marked in (False, True):
                chosen = [(t.lstrip(SPACE_MARK), i) for t, i in words.items() if t.startswith(SPACE_MARK) == marked]
                self.exact[marked], self.folded[marked] = word_indexes(chosen)
        else:
            self.char_of = {i: tok for tok, i in words.items()}
            self.word_ids = torch.tensor(sorted(self.char_of), dtype=torch.long)  # (W,) characters inside words
            self.word_chars = [self.char_of[i] for i in self.word_ids.tolist()]
            ends = [i for tok, i in self.vocab.items() if i == EOS_ID or (i > EOS_ID and i not in self.char_of)]
            self.ends = torch.tensor(sorted(ends), dtype=torch.long)  # what ends a word: space, punctuation, <eos>
        with intra_op_threads(self.threads):
            self.reader = Reader(self.lm, cache_size, int8)  # the RNN state of recently read texts
        self.mixer: Mixer | None = None
        self.fixed_words: tuple[FixedWordIndex, FixedWordIndex] | None = None  # the lexicon's words: exact, folded
        if self.word_level and ngram:  # a run stopped before its n-gram was built says so, not suggests without it
            self.lm.require("its n-gram", "ngram", bool(self.lm.config.ngram_weights))
        if self.word_level and ngram and self.lm.config.ngram_weights:
            found = load_ngram(self.lm.path, self.lm.tokenizer)  # None: the run has no n-gram
            if found is not None:
                config = self.lm.config
                lexicon = load_lexicon(self.lm.path) if config.lexicon_weight else None
                memory = self._memory(found) if config.memory_weights else None
                self.use_ngram(
                    found, config.ngram_weights, lexicon, config.lexicon_weight, config.ngram_oov_weights, memory,
                    config.memory_weights,
                )  # fmt: skip

    def _memory(self, ngram: NgramModel) -> SentenceMemory:
        """The run's sentence memory, which its config's memory_weights say it has."""
        memory = load_memory(self.lm.path, ngram.vocab)
        if memory is None:
            raise CheckpointError(
                f"{self.lm.path / 'config.json'}: memory_weights are set but the run has no {MEMORY_FILE}; "
                "train the run again, or use --no-ngram"
            )
        return memory

    def use_ngram(
        self,
        model: NgramModel,
        weights: Sequence[float],
        lexicon: Lexicon | None = None,
        lexicon_weight: float = 0.0,
        oov_weights: Sequence[float] = (),
        memory: SentenceMemory | None = None,
        memory_weights: Sequence[float] = (),
    ) -> None:
        """Rank by the mix with this n-gram (weights: its share by the longest context it knows; oov_weights:
        the same for the words the model lacks) and, when given, a lexicon of words neither knows (their
        share: lexicon_weight) and a memory of the training lines (its share by bucket: memory_weights)."""
        for name, values in (("ngram_weights", weights), ("ngram_oov_weights", oov_weights or weights)):
            if len(values) != model.order:
                raise CheckpointError(
                    f"{self.lm.path / 'config.json'}: {name} has {len(values)} values but the n-gram is of "
                    f"order {model.order}; train the run again, or use --no-ngram"
                )
        self.mixer = Mixer(self.vocab, model, weights, lexicon, lexicon_weight, oov_weights, memory, memory_weights)
        # one mix per typist's current word: many typists (a server's larger cache) would otherwise evict each other's
        self.mixer.cache_size = max(16, self.cache_size // 4)
        known, novel = self.mixer.words[: self.mixer.known], self.mixer.words[self.mixer.known :]
        exact, folded = word_indexes((w, i) for i, w in enumerate(known))
        self.exact, self.folded = {False: exact, True: exact}, {False: folded, True: folded}
        self.fixed_words = None
        if novel and self.mixer.lexicon_weight:  # the lexicon's own words, ranked by their fixed probabilities
            exact, folded = word_indexes((w, i) for i, w in enumerate(novel))
            probs = self.mixer.lexicon_probs
            self.fixed_words = (FixedWordIndex(exact, probs), FixedWordIndex(folded, probs))

    def suggest(self, typed: str, k: int = 3) -> list[Completion]:
        """Up to k whole words for the word being typed at the end of `typed`, best first: the model's,
        mixed with what its user typed (`learn`)."""
        return self.suggest_many([(typed, k)])[0]

    def suggest_many(self, requests: Sequence[tuple[str, int]]) -> list[list[Completion]]:
        """`suggest(typed, k)` for each (typed, k), answered together: the model steps that the texts
        need (several typists' keystrokes) run as one batch, each row from its own cached state, so
        the answers are those of `suggest` one at a time, for a fraction of the model's time."""
        for _, k in requests:
            if not 1 <= k <= MAX_SUGGESTIONS:
                raise ConfigError(f"--k must be between 1 and {MAX_SUGGESTIONS:,} (got {k})")
        typed = [unicodedata.normalize("NFC", valid_unicode(text, "the text")) for text, _ in requests]
        self.personal.refresh()  # what another process (a terminal, a server's worker) learned meanwhile
        spare = SPARE if self.personal else 0
        with intra_op_threads(self.threads):
            ranked = self._suggest_many([(text, k + spare) for text, (_, k) in zip(typed, requests, strict=True)])
        if not self.personal:
            return ranked
        return [self._mix_personal(t, r, k) for t, r, (_, k) in zip(typed, ranked, requests, strict=True)]

    # --- the personal model's hook: its scores join the model's here, and only here --------------------------------
    def _mix_personal(self, typed: str, ranked: list[Completion], k: int) -> list[Completion]:
        """p(w) = (1 − λ)·p_model(w) + λ·p_personal(w); a word found only by folding counts at INEXACT_DISCOUNT
        (the model's already do: `_restrict`)."""
        line = typed[typed.rfind("\n") + 1 :]
        partial = partial_word(line)
        model = [(c.word, 1.0, c.prob) for c in ranked]
        learned = [
            (match_case(word, partial), 1.0 if word.startswith(partial) else INEXACT_DISCOUNT, p)
            for word, p in self.personal.candidates(line[: len(line) - len(partial)], partial, k + SPARE)
        ]
        best = mix(model, [c for c in learned if c[0] != partial], self.personal_weight, k)
        return [Completion(word, prob) for word, prob in best]

    def learn(self, text: str, save: bool = True) -> None:
        """Learn each line of `text` as finished text, and save the user data: at once, or within
        `save_delay` seconds (save=False: only when save() is called)."""
        self.personal.learn(valid_unicode(text, "the text"), save=save)

    def save(self) -> None:
        """Write what was learned since the last write into the user data file now, merged with what
        other processes wrote there (atomically); without a file, nothing to do."""
        self.personal.save()

    def forget(self) -> None:
        """Forget everything learned from the user, and remove the user data file."""
        self.personal.forget()

    @torch.inference_mode()
    def _suggest_many(self, requests: Sequence[tuple[str, int]]) -> list[list[Completion]]:
        """Up to k whole words for the word being typed at the end of each (NFC) text, from the model alone."""
        plans = []  # (what the model reads, the typed partial word, its context, after a space, k)
        for typed, k in requests:
            if not self.stream:
                typed = typed[typed.rfind("\n") + 1 :]  # a line model reads each line from <bos>
            partial = partial_word(typed)
            context = typed[: len(typed) - len(partial)]
            marked = self.word_level and context.endswith(" ")  # the next word's token carries the space mark
            read = (context[:-1] if marked else context) if self.word_level else typed
            plans.append((read, partial, context, marked, k))
        reads = self.reader.read_many([plan[0] for plan in plans])
        found = []
        for (_, partial, context, marked, k), read in zip(plans, reads, strict=True):
            if not self.word_level:
                found.append(self._beam_search(read, partial, k))
                continue
            probs = read.dist
            if self.mixer is not None:
                probs = self.mixer.mix_known(probs, context, marked)  # (K,) the words some model knows
            found.append(self._restrict(probs, partial, marked, k))
        return found

    def _restrict(self, probs: Tensor, partial: str, marked: bool, k: int) -> list[Completion]:
        """The k best vocabulary words starting with `partial` (or, at a discount, with it folded), each with
        the probability it ranks by: a word found only by folding counts INEXACT_DISCOUNT times its own."""
        scores: dict[str, float] = {}  # shown word → its (discounted) probability
        for word, p in self._best(False, probs, partial, marked, k + 1):
            if word != partial:  # what is already typed is no suggestion
                scores[word] = p
        # Ignoring accents and case: k exact words can outrank at most k + 1 of the 2k + 1 best folded ones.
        for word, p in self._best(True, probs, fold(partial), marked, 2 * k + 1) if partial else []:
            if not word.startswith(partial):
                shown = match_case(word, partial)
                scores[shown] = scores.get(shown, 0.0) + INEXACT_DISCOUNT * p
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [Completion(word, prob) for word, prob in ranked]

    def _best(self, folded: bool, probs: Tensor, prefix: str, marked: bool, n: int) -> list[tuple[str, float]]:
        """The n most likely words whose key (the word, or it folded) starts with prefix: of the words the model
        or n-gram knows (probs) and of the lexicon's, whose probabilities never change, merged in one order."""
        found = (self.folded if folded else self.exact)[marked].best(probs, prefix, n)
        if self.fixed_words is None:
            return found
        key = fold if folded else str  # the indexes' own order of equally likely words: by key, then word
        merged = found + self.fixed_words[folded].best(prefix, n)
        return sorted(merged, key=lambda pair: (-pair[1], key(pair[0]), pair[0]))[:n]

    def _beam_search(self, start: Read, partial: str, k: int) -> list[Completion]:
        """Extend `partial` character by character until a word boundary; keep the k best words."""
        done: dict[str, float] = {}  # word → log-probability of its characters and then a boundary
        texts, scores = [""], torch.zeros(1)  # (B,) log-probability of each beam's characters
        logp, state = start.dist.unsqueeze(0), start.state  # (B, V)
        for step in range(self.max_chars + 1):
            ends = scores + torch.logsumexp(logp[:, self.ends], dim=-1)  # (B,) the word ends here
            for text, score in zip(texts, ends.tolist(), strict=True):
                if text:  # what is already typed is no suggestion
                    done[partial + text] = score
            bar = sorted(done.values(), reverse=True)[k - 1] if len(done) >= k else -math.inf
            longer = (scores[:, None] + logp[:, self.word_ids]).flatten()  # (B·W,)
            top = longer.topk(min(self.beam, longer.numel()))
            keep = top.values > bar  # a longer word can only be less likely than its beam
            if step == self.max_chars or not bool(keep.any()):
                break
            rows, cols = top.indices[keep] // len(self.word_ids), top.indices[keep] % len(self.word_ids)
            texts = [texts[r] + self.word_chars[c] for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
            scores = top.values[keep]
            device = self.lm.device
            next_ids = self.word_ids[cols].unsqueeze(1).to(device)  # (B, 1)
            logits, state = self.lm.model.read(next_ids, select_state(state, rows.to(device)))  # type: ignore[arg-type]
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        ranked = sorted(done.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [Completion(word, math.exp(score)) for word, score in ranked]


def completer_for(source: Loaded | str | Path, *, ngram: bool = True, int8: bool = True) -> Completer:
    """A Completer for a loaded model, kept by the Loaded and reused across calls with it (its cache stays
    warm); a new one for a path."""
    if not isinstance(source, Loaded):
        return Completer(source, ngram=ngram, int8=int8)
    key = ("keyboard.Completer", ngram, int8)
    if key not in source.reused:
        source.reused[key] = Completer(source, ngram=ngram, int8=int8)
    return source.reused[key]


def complete(
    source: Loaded | str | Path, typed: str, k: int = 3, *, ngram: bool = True, int8: bool = True
) -> list[Completion]:
    """Up to k whole-word suggestions for the word being typed, best first (`.word`, `.prob`).

    Pass a `seqtext.load(...)` result when calling per keystroke: the loaded run keeps its Completer and
    state cache between calls, so each keystroke costs O(1). A path loads the model on every call.
    ngram=False ranks by the recurrent model alone, even when the run has an n-gram. int8=False runs an
    LSTM's keystroke steps in fp32 instead of int8 (keyboard/int8.py).
    """
    return completer_for(source, ngram=ngram, int8=int8).suggest(typed, k)

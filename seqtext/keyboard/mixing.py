"""The keyboard's mix of the recurrent model and the n-gram, over the union of their vocabularies.

    p(w) = (1 − λ_n) · p_model(w) + λ_n · p_ngram(w | the line so far),   λ = LMConfig.ngram_weights

where n is the longest n-gram order whose context the n-gram knows: after a context it saw often
(a phrase of the training text) it earns a larger share than where it knows only single words.
Open vocabulary: a word the model's vocabulary lacks is still offered, from the n-gram's. The model
gives such words its <unk> probability, shared in proportion to the n-gram's probabilities of the
words it lacks, so the mix stays a distribution and such a word ranks by the n-gram's evidence.

The words the model lacks may take a share of their own, λ'_n (LMConfig.ngram_oov_weights: the model
knows nothing of them but <unk>'s probability, so the n-gram's counts may deserve more weight there):
their mixed probability is (1 − λ'_n) · p_model(w) + λ'_n · p_ngram(w), and every word's is divided by
1 + (λ'_n − λ_n) · (P_ngram(lacked) − P_model(lacked)), which keeps the whole a distribution.

With a sentence memory (seqtext.keyboard.memory: the training lines that begin as this line does),
its distribution takes a share ν_b (LMConfig.memory_weights) that depends on the bucket b of the match
(how many tokens matched, how many lines begin so):  p(w) ← (1 − ν_b) · p(w) + ν_b · p_memory(w).

With a lexicon (seqtext.keyboard.lexicon: words neither model knows), those words share a weight μ
(LMConfig.lexicon_weight) by their frequencies in the language, and every other word keeps 1 − μ of
its mixed probability:  p'(w) = (1 − μ) · p(w) + μ · p_lexicon(w).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor

from seqtext.keyboard.lexicon import Lexicon
from seqtext.keyboard.memory import SentenceMemory
from seqtext.keyboard.ngram import NgramModel
from seqtext.keyboard.words import WORD
from seqtext.tokenizer import SPACE_MARK, UNK_ID


class Mixer:
    """The union vocabulary (`words`, the n-gram's words first) and the mixed next-word distribution."""

    def __init__(
        self,
        vocab: dict[str, int],
        ngram: NgramModel,
        weights: Sequence[float],
        lexicon: Lexicon | None = None,
        lexicon_weight: float = 0.0,
        oov_weights: Sequence[float] = (),
        memory: SentenceMemory | None = None,
        memory_weights: Sequence[float] = (),
    ):
        """vocab: the model's tokens and their ids ("▁perro" after a space, "perro" at a line start);
        weights: the n-gram's share for each longest known context order 1 … ngram.order (oov_weights:
        for the words the model lacks; empty, the same); lexicon: words that neither knows, which share
        lexicon_weight of the probability; memory: the training lines, with a share by bucket."""
        model_words: dict[bool, dict[str, int]] = {False: {}, True: {}}  # marked → word → token id
        for token, i in vocab.items():
            if WORD.fullmatch(token.removeprefix(SPACE_MARK)):
                model_words[token.startswith(SPACE_MARK)][token.removeprefix(SPACE_MARK)] = i
        self.ngram, self.weights = ngram, tuple(weights)
        self.oov_weights = tuple(oov_weights) or self.weights
        self.memory, self.memory_weights = (memory, tuple(memory_weights)) if memory_weights else (None, ())
        words = [w for w in ngram.vocab if WORD.fullmatch(w)]
        known = set(words)
        words += sorted({w for by_word in model_words.values() for w in by_word} - known)
        self.known = len(words)  # K: the words some model knows come first; the lexicon's own words follow
        self.lexicon_weight = lexicon_weight if lexicon is not None else 0.0
        self.lexicon = torch.zeros(len(words))  # (U,) p_lexicon: nonzero only for the lexicon's own words
        if lexicon is not None:
            known.update(words)
            novel = [(w, float(p)) for w, p in zip(lexicon.words, lexicon.probs, strict=True) if w not in known]
            words += [w for w, _ in novel]
            share = torch.tensor([p for _, p in novel])
            self.lexicon = torch.cat([self.lexicon, share / share.sum().clamp(min=1e-30)])
        # (U − K,) each lexicon word's mixed probability: μ · p_lexicon(w) after any text, since neither model
        # gives it any, so a keystroke never computes it (completion ranks them with a FixedWordIndex)
        self.lexicon_probs = self.lexicon_weight * self.lexicon[self.known :]
        self.words = words
        known_words = words[: self.known]
        self.ngram_ids = torch.tensor([ngram.ids.get(w, len(ngram.vocab)) for w in known_words])  # (K,); V: none
        self.model_ids = {
            m: torch.tensor([model_words[m].get(w, len(vocab)) for w in known_words]) for m in (False, True)
        }  # (K,) each word's token id; len(vocab): the model lacks it
        self.lacks = {m: ids == len(vocab) for m, ids in self.model_ids.items()}  # (K,) the model reads <unk>
        self.union_of = torch.full((len(ngram.vocab),), -1, dtype=torch.long)  # n-gram id → union index, -1: none
        known_ids = self.ngram_ids < len(ngram.vocab)
        self.union_of[self.ngram_ids[known_ids]] = torch.arange(self.known)[known_ids]
        self._cache: OrderedDict[tuple[str, bool], tuple[Tensor, Tensor]] = OrderedDict()
        self.cache_size = 16  # recent mixes kept: a typist's keystrokes inside a word reuse one (K floats each)

    def ngram_part(self, text: str) -> tuple[Tensor, int]:
        """p_ngram(w | text) for every word some model knows, (K,), and the longest context order the n-gram
        knows. (The lexicon's own words, which no model knows, have none.)"""
        dist, matched = self.ngram.dist_and_order(self.ngram.history(text[text.rfind("\n") + 1 :]))
        return torch.cat([dist, dist.new_zeros(1)])[self.ngram_ids], matched

    def memory_part(self, text: str) -> tuple[float, Tensor, Tensor] | None:
        """The memory's share after `text` and its distribution (union indices, probabilities); None
        when it has nothing to say there (no memory, no training line begins so, a share of 0)."""
        found = self.memory.next_tokens(text[text.rfind("\n") + 1 :]) if self.memory is not None else None
        if found is None or not self.memory_weights[found[0]]:
            return None
        bucket, total, follow = found
        ids = torch.tensor(list(follow), dtype=torch.long)
        where = self.union_of[ids]
        kept = where >= 0  # punctuation marks are no suggestion
        values = torch.tensor(list(follow.values()), dtype=torch.float32)[kept] / total
        return self.memory_weights[bucket], where[kept], values

    def model_part(self, probs: Tensor, ngram: Tensor, marked: bool) -> Tensor:
        """p_model(w) for every word some model knows, (K,): its token's probability, or a share of <unk>'s."""
        part = torch.cat([probs, probs.new_zeros(1)])[self.model_ids[marked]]
        lacked = ngram * self.lacks[marked]
        mass = float(lacked.sum())
        if mass > 0:
            part += float(probs[UNK_ID]) / mass * lacked
        return part

    def mix(self, probs: Tensor, text: str, marked: bool) -> Tensor:
        """The mixed distribution over the union words after `text`, (U,)."""
        known = self.mix_known(probs, text, marked)
        return torch.cat([known, self.lexicon_probs]) if len(self.lexicon_probs) else known

    def mix_known(self, probs: Tensor, text: str, marked: bool) -> Tensor:
        """The mixed probabilities of the words some model knows after `text`, (K,): `mix` without the
        lexicon's own words, whose probabilities are `lexicon_probs` after any text (cached for recent texts)."""
        key = (text, marked)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is probs:
            self._cache.move_to_end(key)
            return hit[1]
        ngram, matched = self.ngram_part(text)
        at = min(matched, len(self.weights)) - 1
        weight, oov = self.weights[at], self.oov_weights[at]
        model = self.model_part(probs, ngram, marked)
        mixed = (1 - weight) * model + weight * ngram
        if oov != weight:
            lacks = self.lacks[marked]
            lacked = float(ngram[lacks].sum()) - float(model[lacks].sum())
            mixed = torch.where(lacks, (1 - oov) * model + oov * ngram, mixed) / (1 + (oov - weight) * lacked)
        remembered = self.memory_part(text)
        if remembered is not None:
            share, where, values = remembered
            mixed = (1 - share) * mixed
            mixed[where] += share * values
        if self.lexicon_weight:  # the lexicon's words take μ: every other word keeps 1 − μ
            mixed = (1 - self.lexicon_weight) * mixed
        self._cache[key] = (probs, mixed)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return mixed

"""The keyboard's mix of the recurrent model and the n-gram, over the union of their vocabularies.

    p(w) = (1 − λ_n) · p_model(w) + λ_n · p_ngram(w | the line so far),   λ = LMConfig.ngram_weights

where n is the longest n-gram order whose context the n-gram knows: after a context it saw often
(a phrase of the training text) it earns a larger share than where it knows only single words.
Open vocabulary: a word the model's vocabulary lacks is still offered, from the n-gram's. The model
gives such words its <unk> probability, shared in proportion to the n-gram's probabilities of the
words it lacks, so the mix stays a distribution and such a word ranks by the n-gram's evidence.

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
    ):
        """vocab: the model's tokens and their ids ("▁perro" after a space, "perro" at a line start);
        weights: the n-gram's share for each longest known context order 1 … ngram.order; lexicon: words
        that neither knows, which share lexicon_weight of the probability."""
        model_words: dict[bool, dict[str, int]] = {False: {}, True: {}}  # marked → word → token id
        for token, i in vocab.items():
            if WORD.fullmatch(token.removeprefix(SPACE_MARK)):
                model_words[token.startswith(SPACE_MARK)][token.removeprefix(SPACE_MARK)] = i
        self.ngram, self.weights = ngram, tuple(weights)
        words = [w for w in ngram.vocab if WORD.fullmatch(w)]
        known = set(words)
        words += sorted({w for by_word in model_words.values() for w in by_word} - known)
        self.lexicon_weight = lexicon_weight if lexicon is not None else 0.0
        self.lexicon = torch.zeros(len(words))  # (U,) p_lexicon: nonzero only for the lexicon's own words
        if lexicon is not None:
            known.update(words)
            novel = [(w, float(p)) for w, p in zip(lexicon.words, lexicon.probs, strict=True) if w not in known]
            words += [w for w, _ in novel]
            share = torch.tensor([p for _, p in novel])
            self.lexicon = torch.cat([self.lexicon, share / share.sum().clamp(min=1e-30)])
        self.words = words
        self.ngram_ids = torch.tensor([ngram.ids.get(w, len(ngram.vocab)) for w in words])  # (U,); V: none
        self.model_ids = {m: torch.tensor([model_words[m].get(w, len(vocab)) for w in words]) for m in (False, True)}
        self.lacks = {m: ids == len(vocab) for m, ids in self.model_ids.items()}  # (U,) the model reads <unk>
        self._cache: OrderedDict[tuple[str, bool], tuple[Tensor, Tensor]] = OrderedDict()
        self.cache_size = 16  # recent mixes kept: a typist's keystrokes inside a word reuse one (U floats each)

    def ngram_part(self, text: str) -> tuple[Tensor, int]:
        """p_ngram(w | text) for every union word, (U,), and the longest context order the n-gram knows."""
        dist, matched = self.ngram.dist_and_order(self.ngram.history(text[text.rfind("\n") + 1 :]))
        return torch.cat([dist, dist.new_zeros(1)])[self.ngram_ids], matched

    def model_part(self, probs: Tensor, ngram: Tensor, marked: bool) -> Tensor:
        """p_model(w) for every union word, (U,): its token's probability, or a share of <unk>'s."""
        part = torch.cat([probs, probs.new_zeros(1)])[self.model_ids[marked]]
        lacked = ngram * self.lacks[marked]
        mass = float(lacked.sum())
        if mass > 0:
            part += float(probs[UNK_ID]) / mass * lacked
        return part

    def mix(self, probs: Tensor, text: str, marked: bool) -> Tensor:
        """The mixed distribution over the union words after `text` (cached for recent texts)."""
        key = (text, marked)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is probs:
            self._cache.move_to_end(key)
            return hit[1]
        ngram, matched = self.ngram_part(text)
        weight = self.weights[min(matched, len(self.weights)) - 1]
        mixed = (1 - weight) * self.model_part(probs, ngram, marked) + weight * ngram
        if self.lexicon_weight:
            mixed = (1 - self.lexicon_weight) * mixed + self.lexicon_weight * self.lexicon
        self._cache[key] = (probs, mixed)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return mixed

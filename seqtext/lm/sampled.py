"""Sampled softmax (Jean et al. 2015) for training word-level language models on a CPU.

A word model's output layer scores every vocabulary word at every target: for the keyboard's 20k
words about a third of a training step on a CPU. Here each step scores the targets against one shared set of
words drawn by frequency (unigram counts to the power 0.75, with replacement, `samples` draws), each
logit corrected by the log-probability that its word was drawn, so the loss estimates the full
softmax's cross-entropy (TensorFlow's sampled_softmax_loss, with accidental hits removed):

    loss = −z_t + log(exp z_t + Σ_{s ∈ S, s ≠ t} exp z_s),   z_w = h·w_w + b_w − log P(w ∈ S)

Only training uses it: validation, evaluation and the keyboard use the full softmax, so every
reported figure is the model's true perplexity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqtext.data import LineWindows, StreamWindows
from seqtext.tokenizer import PAD_ID

POWER = 0.75  # flattening of the unigram counts (as in word2vec's negative sampling)


def token_counts(windows: LineWindows | StreamWindows, vocab_size: int) -> Tensor:
    """How often each token id is a training target (every token but a line's <bos>), (V,) int64."""
    if isinstance(windows, StreamWindows):
        ids = windows.columns[:, 1:].flatten()  # each column's first token is the previous one's last
    else:
        ids = torch.tensor([i for line in windows.lines for i in line[1:]], dtype=torch.long)
    return torch.bincount(ids, minlength=vocab_size)[:vocab_size]


class SampledSoftmax:
    """The training loss of a language model's head over the targets and `samples` drawn words."""

    def __init__(self, counts: Tensor, samples: int) -> None:
        q = counts.double().clamp(min=1) ** POWER  # every word can be drawn, however rare
        q[PAD_ID] = 0.0  # padding is never a target
        q /= q.sum()
        self.q = q.float()  # (V,)
        self.samples = samples
        # log P(w ∈ S) = log(1 − (1 − q_w)^K) for K draws with replacement
        self.log_drawn = torch.log(-torch.expm1(samples * torch.log1p(-q))).float()  # (V,)
        self.log_drawn[PAD_ID] = 0.0

    def nll(self, features: Tensor, targets: Tensor, head: nn.Linear) -> Tensor:
        """features (N, E) at the real targets (N,) → sampled-softmax negative log-likelihood, (N,) fp32."""
        drawn = torch.multinomial(self.q, self.samples, replacement=True).unique().to(features.device)  # (S,)
        log_drawn = self.log_drawn.to(features.device)
        weight, bias = head.weight, head.bias
        true = (features * weight[targets].to(features.dtype)).sum(-1).float() + bias[targets] - log_drawn[targets]
        sampled = F.linear(features, weight[drawn], bias[drawn]).float() - log_drawn[drawn]  # (N, S)
        sampled = sampled.masked_fill(drawn[None, :] == targets[:, None], float("-inf"))  # accidental hits
        logits = torch.cat([true[:, None], sampled], dim=1)  # (N, 1 + S): the target is column 0
        with torch.autocast(features.device.type, enabled=False):
            return F.cross_entropy(logits, targets.new_zeros(targets.shape), reduction="none")

"""Classifier inference in fp32 without the LSTM's input matmul: each token's input gates looked up.

An LSTM's first step for each token is W_ih·embed(token) + b_ih + b_hh, a (4H × E) product that only
depends on the token. For the default classifier (E 256, H 128) it is four fifths of the LSTM's
multiply-adds, and the vocabulary is small (16k words): so this path computes it once per vocabulary
entry, a (V, 4H) table per direction, and a text's input gates are rows of it. What is left per step
is the recurrent product (H × 4H) and the gates' pointwise functions, both directions in one batched
matmul, with the pooling taken as the steps go. The answers are the model's to float rounding (tests:
the same labels, probabilities within 1e-5); on an AVX2 CPU in fp32 the model's time fell by about
half (1 thread, exploratory). With native bf16, torch's bf16 LSTM is as fast, so `classify` uses this
path only where it runs fp32 (sentiment/classification.py).

Covers one-layer LSTM classifiers (either direction count) with max, k-max, mean or last pooling on the CPU;
others run as trained (`supported` says why not). Where the whole vocabulary's tables would take more
than TABLE_MB (a vocabulary extended from word vectors: 116k words make 475 MB), a token's rows are
worked out the first time a text holds it: the memory grows with the words read, not with the
vocabulary (the table's pages untouched until then), and the speed is the whole table's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtext.classifiers import KMAX, RNNClassifier
from seqtext.config import ClassifierConfig

TABLE_MB = 256  # at most this much memory for the whole vocabulary's tables (the default classifier's: 65 MB)


def table_mb(config: ClassifierConfig) -> float:
    """Megabytes of the whole vocabulary's gate tables: (V, 4H) fp32 per direction."""
    return config.vocab_size * 4 * config.hidden_dim * (2 if config.bidirectional else 1) * 4 / 1e6


def supported(model: RNNClassifier) -> str | None:
    """None when TokenGates can run this model, else why not (in words)."""
    config = model.config
    reasons = [
        (config.cell != "lstm", f"its cell is {config.cell}, not lstm"),
        (config.layers != 1, f"it has {config.layers} layers, not 1"),
        (config.pooling not in ("max", "kmax", "mean", "last"), f"its pooling is {config.pooling}"),
        (model.embed.weight.device.type != "cpu", "it is not on the CPU"),
        (config.pooling == "kmax" and KMAX != 2, f"its k-max pooling keeps {KMAX} values, not 2"),
    ]
    return next((why for refused, why in reasons if refused), None)


class TokenGates:
    """A one-layer LSTM classifier's inference in fp32 from per-token gate tables (see the module).

    Built from the model's weights as they are when built: build another after changing them.
    Call it with a batch of texts of one length, ids (B, T), to get the label logits (B, C).
    """

    def __init__(self, model: RNNClassifier) -> None:
        why = supported(model)
        if why is not None:
            raise ValueError(f"TokenGates cannot run this classifier: {why}")
        rnn, config = model.rnn, model.config
        self.pooling, self.vocab_size, self.hidden = config.pooling, config.vocab_size, config.hidden_dim
        H = config.hidden_dim
        # tanh(x) = 2·sigmoid(2x) − 1: the cell gate's rows doubled, one sigmoid serves all four gates
        scale = torch.ones(4 * H)
        scale[2 * H : 3 * H] = 2.0
        with torch.inference_mode():
            inputs, biases, recurrent = [], [], []
            for suffix in ("", "_reverse") if config.bidirectional else ("",):
                w_ih, w_hh = getattr(rnn, f"weight_ih_l0{suffix}"), getattr(rnn, f"weight_hh_l0{suffix}")
                bias = getattr(rnn, f"bias_ih_l0{suffix}") + getattr(rnn, f"bias_hh_l0{suffix}")
                inputs.append((w_ih.float() * scale[:, None]).t().contiguous())  # (E, 4H)
                biases.append(bias.float() * scale)  # (4H,)
                recurrent.append((w_hh.float() * scale[:, None]).t().contiguous())  # (H, 4H)
            self.inputs, self.biases = inputs, biases
            self.recurrent = torch.stack(recurrent)  # (D, H, 4H)
            self.head_weight = model.head.weight.detach().float().clone()
            self.head_bias = model.head.bias.detach().float().clone()
            embed = model.embed.weight.detach().float().clone()
            self.filled: Tensor | None = None  # which tokens have their rows (None: all)
            if table_mb(config) <= TABLE_MB:
                self.table, self.embed = self._tables(embed), None  # (D·V, 4H)
            else:  # rows made as tokens are first met; torch.empty leaves the pages untouched until then
                self.table, self.embed = torch.empty(len(inputs) * self.vocab_size, 4 * H), embed
                self.filled = torch.zeros(self.vocab_size, dtype=torch.bool)

    def _tables(self, vectors: Tensor) -> Tensor:
        """The gate tables of N token vectors (N, E): (D·N, 4H), direction d's row of token i at d·N + i."""
        return torch.cat([torch.addmm(b, vectors, w) for w, b in zip(self.inputs, self.biases, strict=True)])

    def _fill(self, ids: Tensor) -> None:
        """Work out the rows of the tokens in ids that have none yet."""
        assert self.filled is not None and self.embed is not None
        if bool(self.filled[ids].all()):
            return
        tokens = ids.unique()
        new = tokens[~self.filled[tokens]]
        rows = self._tables(self.embed[new])  # (D·N, 4H)
        for d in range(len(self.inputs)):
            self.table[d * self.vocab_size + new] = rows[d * new.numel() : (d + 1) * new.numel()]
        self.filled[new] = True

    @torch.inference_mode()
    def __call__(self, ids: Tensor) -> Tensor:
        """ids (B, T) of texts that all have T tokens (T = 0: empty texts) → logits (B, C)."""
        batch, steps = ids.shape
        directions = self.recurrent.size(0)
        if steps == 0:  # nothing read: a zero pooled vector, as the model gives an empty text
            return self.head_bias.expand(batch, -1).clone()
        if self.filled is not None:
            self._fill(ids)
        order = [ids.t()]  # (T, B): forward reads t = 0 … T−1, backward T−1 … 0
        if directions == 2:
            order.append(ids.flip(1).t() + self.vocab_size)
        rows = torch.stack(order, dim=1)  # (T, D, B): each step's rows of the table
        h = c = pooled = second = None
        for t in range(steps):
            gates = F.embedding(rows[t], self.table)  # (D, B, 4H), gathered step by step: it stays in cache
            if h is not None:
                gates.baddbmm_(h, self.recurrent)
            i, f, g, o = gates.sigmoid_().chunk(4, dim=-1)  # input, forget, cell (as 2σ(2x) − 1), output
            g.mul_(2).sub_(1)
            c = i * g if c is None else c.mul_(f).addcmul_(i, g)
            h = torch.tanh(c).mul_(o)  # (D, B, H)
            if self.pooling == "kmax":  # the largest and the second largest so far (KMAX = 2)
                second = (
                    torch.full_like(h, float("-inf"))
                    if second is None
                    else torch.maximum(second, torch.minimum(pooled, h), out=second)
                )
            if self.pooling in ("max", "kmax"):
                pooled = h if pooled is None else torch.maximum(pooled, h, out=pooled if t > 1 else None)
            elif self.pooling == "mean":
                pooled = h.clone() if pooled is None else pooled.add_(h)
        assert h is not None
        if self.pooling == "mean":
            assert pooled is not None
            pooled = pooled / steps
        features = torch.cat(list(h if self.pooling == "last" else pooled), dim=-1)  # (B, D·H)
        if self.pooling == "kmax":  # a text of one token repeats its largest
            features = torch.cat([features, torch.cat(list(pooled if steps == 1 else second), dim=-1)], dim=-1)
        return torch.addmm(self.head_bias, features, self.head_weight.t())

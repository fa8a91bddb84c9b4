"""The many-to-one text classifier: token ids and lengths in, label logits out; no tokenizer, no files.

Shape legend: B batch, T time steps, E embed_dim, H hidden_dim, D directions, C classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqtext.cells import make_rnn
from seqtext.config import ClassifierConfig

KMAX = 2  # --pooling kmax: the two largest values of each feature over the text (Kalchbrenner et al. 2014)


class RNNClassifier(nn.Module):
    """Many-to-one: embedding → (bi)RNN over the packed text → pooling → dropout → label logits.

    Packing means padding never reaches the RNN, so a text's logits do not depend on its batch (a
    batch of texts of one length needs no packing, and seqtext batches texts by length). An
    empty text (length 0) is read as nothing: its pooled vector is zero, so its logits are the head's
    bias, which training pulls towards the label prior.
    """

    kind = "classifier"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = make_rnn(
            config.cell, config.embed_dim, config.hidden_dim, config.layers, config.dropout, config.bidirectional
        )
        features = directions * config.hidden_dim
        head_in = features * (KMAX if config.pooling == "kmax" else 1)
        self.attention = nn.Linear(features, 1) if config.pooling == "attention" else None
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(head_in, config.num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) padded with 0, lengths (B,) → logits (B, C)."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        if bool((lengths == ids.size(1)).all()):  # no padding: the fused kernel, several times faster on CPU
            out, state = self.rnn(x)  # (B, T, D·H)
        else:
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out = pad_packed_sequence(out, batch_first=True, total_length=ids.size(1))[0]  # zeros past the end
        if self.config.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L·D, B, H), last layer at the end
            directions = 2 if self.config.bidirectional else 1
            pooled = torch.cat(list(h[-directions:]), dim=-1)  # (B, D·H): forward end + backward start
        else:
            pooled = self._pool(out, lengths)
        pooled = pooled.masked_fill((lengths == 0).to(pooled.device)[:, None], 0.0)
        return self.head(self.drop(pooled))  # (B, C)

    def _pool(self, out: Tensor, lengths: Tensor) -> Tensor:
        """Mean, max, k-max or attention over the real time steps of (B, T, D·H) outputs → (B, D·H), or
        (B, KMAX·D·H) for k-max: each feature's KMAX largest values, largest first (a text shorter than
        KMAX repeats its largest), the KMAX vectors side by side."""
        steps = torch.arange(out.size(1), device=out.device)
        mask = (steps[None, :] < lengths.to(out.device).clamp(min=1)[:, None]).unsqueeze(-1)  # (B, T, 1)
        if self.config.pooling == "mean":
            return (out * mask).sum(1) / mask.sum(1)
        if self.config.pooling == "max":
            return out.masked_fill(~mask, float("-inf")).max(dim=1).values
        if self.config.pooling == "kmax":  # -inf steps past the end, so a batch shorter than KMAX has enough
            padded = F.pad(out.masked_fill(~mask, float("-inf")), (0, 0, 0, KMAX - 1), value=float("-inf"))
            top = padded.topk(KMAX, dim=1).values  # (B, KMAX, D·H)
            return torch.where(torch.isinf(top), top[:, :1], top).flatten(1)
        scores = self.attention(out).masked_fill(~mask, float("-inf"))  # (B, T, 1)
        return (scores.softmax(dim=1) * out).sum(1)

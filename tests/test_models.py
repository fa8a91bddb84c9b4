import pytest
import torch

from seqtext.config import LMConfig
from seqtext.models import RNNLanguageModel, count_parameters, detach_state


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_lm_shapes(cell, layers):
    model = RNNLanguageModel(LMConfig(cell=cell, layers=layers, vocab_size=11, embed_dim=8, hidden_dim=12))
    logits, state = model(torch.zeros(3, 5, dtype=torch.long))
    assert logits.shape == (3, 5, 11)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (layers, 3, 12)


def test_state_carries_across_calls():
    model = RNNLanguageModel(LMConfig(vocab_size=11, embed_dim=8, hidden_dim=12, dropout=0.0)).eval()
    ids = torch.randint(4, 11, (2, 9))
    whole, _ = model(ids)
    first, state = model(ids[:, :4])
    rest, _ = model(ids[:, 4:], detach_state(state))
    assert torch.allclose(whole, torch.cat([first, rest], dim=1), atol=1e-6)


@pytest.mark.parametrize("hidden", [8, 12])
def test_tied_weights_share_the_embedding(hidden):
    model = RNNLanguageModel(LMConfig(vocab_size=11, embed_dim=8, hidden_dim=hidden, tie_weights=True))
    assert model.head.weight is model.embed.weight
    untied = RNNLanguageModel(LMConfig(vocab_size=11, embed_dim=8, hidden_dim=hidden))
    assert count_parameters(model) < count_parameters(untied) + 8 * hidden + 8
    assert model(torch.zeros(1, 2, dtype=torch.long))[0].shape == (1, 2, 11)

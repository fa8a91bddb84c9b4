import subprocess
import sys

import pytest
import torch
from helpers import FIXTURES

from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierConfig, LMConfig
from seqtext.models import RNNLanguageModel, count_parameters, detach_state, on_meta


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


def test_nll_skips_padding_and_matches_the_logits():
    model = RNNLanguageModel(LMConfig(vocab_size=11, embed_dim=8, hidden_dim=12, dropout=0.0)).eval()
    ids, targets = torch.randint(4, 11, (2, 6)), torch.randint(4, 11, (2, 6))
    targets[1, 4:] = 0  # padding
    nll, _ = model.nll(ids, targets, None, pad_id=0)
    logits, _ = model(ids)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    assert nll.shape == (10,)
    assert torch.allclose(nll, expected[targets.flatten() != 0], atol=1e-6)


def test_nll_under_bf16_autocast_stays_close_to_fp32():
    from seqtext.runtime import bf16_supported

    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig(level="word", vocab_size=500, embed_dim=16, hidden_dim=32, dropout=0.0)).eval()
    ids, targets = torch.randint(4, 500, (8, 20)), torch.randint(4, 500, (8, 20))
    exact, _ = model.nll(ids, targets, None, pad_id=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast, _ = model.nll(ids, targets, None, pad_id=0)
    assert fast.dtype == torch.float32
    assert abs(fast.mean().item() - exact.mean().item()) < 0.02  # per token ~1e-2, the mean much closer


def test_the_inference_head_matches_the_head_and_follows_weight_changes():
    model = RNNLanguageModel(LMConfig(vocab_size=50, embed_dim=8, hidden_dim=16, layers=1, tie_weights=True)).eval()
    rows = torch.randn(2, 8)
    with torch.inference_mode():
        assert torch.allclose(model._head_of_rows(rows), model.head(rows), atol=1e-6)
    with torch.no_grad():
        model.embed.weight.mul_(2)  # tied: the head's weight changes in place, as an optimizer step would
        assert torch.allclose(model._head_of_rows(rows), model.head(rows), atol=1e-6)


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (RNNLanguageModel, LMConfig(vocab_size=50, embed_dim=8, hidden_dim=12, layers=2)),
        (
            RNNLanguageModel,
            LMConfig(vocab_size=50, embed_dim=8, hidden_dim=8, cell="gru", char_input=True, char_vocab=9),
        ),
        (RNNClassifier, ClassifierConfig(vocab_size=40, embed_dim=8, hidden_dim=6, pooling="attention")),
        (RNNClassifier, ClassifierConfig(vocab_size=40, embed_dim=8, hidden_dim=6, bidirectional=False, cell="rnn")),
    ],
)
def test_a_model_on_meta_has_the_tensors_of_the_real_one_and_skips_their_initialisation(cls, config):
    """on_meta (issue 21): the weights' shapes and names without random fills, which would import torch._dynamo."""
    from seqtext.runs.checks import module_specs

    meta = on_meta(cls, config)
    assert all(p.is_meta for p in meta.parameters())
    assert module_specs(meta) == module_specs(cls(config))


def test_loading_and_classifying_do_not_import_torch_dynamo():
    """Importing torch._dynamo costs about 2 CPU-seconds: most of loading a run, when on_meta filled weights."""
    code = (
        "import sys, seqtext; clf = seqtext.load(sys.argv[1]); "
        "seqtext.classify(clf, ['a fine film'], precision='fp32'); print('torch._dynamo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "run-0.1.0-classifier")], capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert result.stdout.strip() == "False"

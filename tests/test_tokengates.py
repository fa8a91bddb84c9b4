"""The classifier's fast fp32 path (sentiment/tokengates.py): the model's answers from per-token gate
tables, used by classify where it runs fp32, and `--no-fast` / fast=False to run torch's LSTM instead."""

import pytest
import torch
from helpers import PHRASES, copy_run, invoke
from test_classifier import train_clf

import seqtext
from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierConfig
from seqtext.sentiment import tokengates
from seqtext.sentiment.tokengates import TokenGates, supported


def tiny(**fields) -> RNNClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=30, embed_dim=8, hidden_dim=6, labels=("a", "b", "c"), **fields)
    return RNNClassifier(config).eval()


@pytest.mark.parametrize("pooling", ["max", "kmax", "mean", "last"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("steps", [0, 1, 2, 3, 7])
def test_token_gates_give_the_models_logits(pooling, bidirectional, steps):
    model = tiny(pooling=pooling, bidirectional=bidirectional)
    with torch.no_grad():  # weights far from zero, so every gate's range is exercised
        for p in model.parameters():
            p.mul_(3)
    ids = torch.randint(1, 30, (5, steps), generator=torch.Generator().manual_seed(steps))
    # the model reads an empty text as one <pad> of length 0
    expected = model(ids if steps else torch.zeros(5, 1, dtype=torch.long), torch.full((5,), steps))
    assert torch.allclose(TokenGates(model)(ids), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"cell": "gru"}, "its cell is gru"),
        ({"layers": 2}, "it has 2 layers"),
        ({"pooling": "attention"}, "its pooling is attention"),
    ],
)
def test_what_the_tables_cannot_run_is_named_and_runs_as_trained(fields, why):
    model = tiny(**fields)
    assert why in supported(model)
    with pytest.raises(ValueError, match=why):
        TokenGates(model)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_a_vocabulary_too_large_for_whole_tables_fills_them_as_tokens_come(monkeypatch, bidirectional):
    model = tiny(bidirectional=bidirectional)  # e.g. --embeddings-vocab 100000: 475 MB of whole tables
    whole = TokenGates(model)
    monkeypatch.setattr(tokengates, "TABLE_MB", 0.001)
    assert supported(model) is None
    as_read = TokenGates(model)
    assert whole.filled is None and as_read.filled is not None and not as_read.filled.any()
    seen: set[int] = set()
    for steps in (0, 1, 6, 6):
        ids = torch.randint(1, 30, (5, steps), generator=torch.Generator().manual_seed(steps))
        ids[0] = ids[1]  # a token met twice in a batch reads the same row of its table
        assert torch.allclose(as_read(ids), whole(ids), atol=1e-6)
        seen |= set(ids.flatten().tolist())
        assert set(as_read.filled.nonzero().flatten().tolist()) == seen  # rows for the tokens read only


@pytest.fixture(scope="module")
def phrases() -> list[str]:
    lines = PHRASES.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[2] for line in lines] + ["", "an unseen zyzzyva of a film"]


@pytest.mark.parametrize(
    ("model", "table_mb"),
    [({}, 256), ({}, 0.001), ({"pooling": "attention"}, 256), ({"bidirectional": False, "pooling": "last"}, 256)],
)
def test_classify_fast_and_not_give_the_same_answers(tmp_path, phrases, monkeypatch, model, table_mb):
    monkeypatch.setattr(tokengates, "TABLE_MB", table_mb)  # 0.001: rows made as tokens come, as for a large vocabulary
    run = train_clf(tmp_path / "clf", model=model, phrase_memory=False, epochs=1)
    clf = seqtext.load(run)
    fast = seqtext.classify(clf, phrases, precision="fp32")
    plain = seqtext.classify(clf, phrases, precision="fp32", fast=False)
    assert [p.label for p in fast] == [p.label for p in plain]
    assert torch.allclose(torch.tensor([p.probs for p in fast]), torch.tensor([p.probs for p in plain]), atol=1e-5)
    built = clf.reused["sentiment.TokenGates"]  # kept with the loaded run; None: it runs as trained
    assert (built is None) == (model.get("pooling") == "attention")
    assert built is None or (built.filled is not None) == (table_mb < 1)


def test_the_command_line_switch_and_saved_runs_unchanged(tmp_path, phrases):
    run = train_clf(tmp_path / "clf", epochs=1)
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in phrases), encoding="utf-8")
    outputs = {}
    for flag in ("--fast", "--no-fast"):
        result = invoke("classify", run, tmp_path / "in.txt", flag)
        assert result.exit_code == 0, result.output
        outputs[flag] = [line.split("\t") for line in result.stdout.splitlines()]
    fast, plain = outputs["--fast"], outputs["--no-fast"]
    assert [row[:2] for row in fast] == [row[:2] for row in plain]  # header, then every label
    probs = [torch.tensor([[float(x) for x in row[2:-1]] for row in rows[1:]]) for rows in (fast, plain)]
    assert torch.allclose(*probs, atol=2e-4)  # printed to 4 decimals, which may round either way
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before, "classifying changed the run directory"
    copy = copy_run(run, tmp_path / "copy")  # a run saved and read back: the tables are built from its weights
    assert seqtext.classify(copy, phrases[:5]) == seqtext.classify(seqtext.load(run), phrases[:5])


def test_a_value_given_to_the_switch_is_one_clear_line(tmp_path):
    (tmp_path / "in.txt").write_text("good\n", encoding="utf-8")
    result = invoke("classify", tmp_path / "run", tmp_path / "in.txt", "--fast=maybe")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--fast" in result.output and "does not take a value" in result.output

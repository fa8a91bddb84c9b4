"""The sentiment classifier: model, labelled data, training, resume, --init-from, classify, metrics."""

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from helpers import PHRASES, SHARED_DATA, needs_shared_data
from safetensors.torch import load_file

import seqtext
from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError, CorpusError, TrainingStopped
from seqtext.models import RNNLanguageModel
from seqtext.sentiment.classification import prepare
from seqtext.sentiment.inputs import read_inputs
from seqtext.sentiment.labelled import read_labelled, split_labelled
from seqtext.sentiment.metrics import binary_accuracy, classifier_metrics
from seqtext.sentiment.training import class_weights, init_from_lm

TINY_CLF = {"embed_dim": 16, "hidden_dim": 16, "dropout": 0.0}
TINY_CLF_TRAIN = {"batch_size": 32, "epochs": 2, "precision": "fp32", "device": "cpu"}
HEADER = "PhraseId\tSentenceId\tPhrase\tSentiment\n"


def train_clf(out: Path, data: Path = PHRASES, model: dict | None = None, **train) -> Path:
    seqtext.train_classifier(
        ClassifierConfig(**{**TINY_CLF, **(model or {})}),
        ClassifierTrainConfig(data=str(data), out=str(out), **{**TINY_CLF_TRAIN, **train}),
    )
    return out


@pytest.fixture(scope="session")
def clf_run(tmp_path_factory) -> Path:
    """A tiny biLSTM classifier trained once per session on the shipped phrases (about a second)."""
    return train_clf(tmp_path_factory.mktemp("runs") / "clf", epochs=3)


def kaggle(tmp_path: Path, rows: list[tuple], name: str = "data.tsv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "kmax", "attention"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_classifier_shapes_and_padding_invariance(cell, pooling, bidirectional):
    config = ClassifierConfig(
        cell=cell,
        pooling=pooling,
        bidirectional=bidirectional,
        layers=2,
        vocab_size=9,
        embed_dim=4,
        hidden_dim=6,
        labels=("a", "b", "c"),
    )
    model = RNNClassifier(config).eval()
    alone = model(torch.tensor([[4, 5, 6]]), torch.tensor([3]))
    batch = model(torch.tensor([[4, 5, 6, 0, 0], [7, 8, 4, 5, 6], [0, 0, 0, 0, 0]]), torch.tensor([3, 5, 0]))
    assert batch.shape == (3, 3)
    assert torch.allclose(alone[0], batch[0], atol=1e-6), "padding changed the logits"
    assert torch.allclose(batch[2], model.head.bias), "an empty text is read as nothing: logits = head bias"


def test_training_writes_a_classifier_run(clf_run):
    names = sorted(p.name for p in clf_run.iterdir())
    assert names == [
        "config.json", "metrics.jsonl", "model.safetensors", "phrase_memory.json", "tokenizer.json", "train_config.json"
    ]  # fmt: skip
    header = json.loads((clf_run / "config.json").read_text(encoding="utf-8"))
    assert header["kind"] == "classifier"
    assert header["model"]["labels"] == ["negative", "somewhat negative", "neutral", "somewhat positive", "positive"]
    record = json.loads((clf_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert {"val_loss", "val_accuracy", "val_macro_f1"} <= set(record)


def test_classify_api_keeps_order_and_answers_empty_texts(clf_run):
    clf = seqtext.load(clf_run)
    texts = ["a warm , funny film", "", "   ", "dull and lifeless", "a warm , funny film"]
    predictions = seqtext.classify(clf, texts, precision="fp32")  # exact figures; "auto" may pick bf16
    assert len(predictions) == len(texts)
    for p in predictions:
        assert isinstance(p.label, int) and p.name == clf.config.labels[p.label]
        assert len(p.probs) == 5 and abs(sum(p.probs) - 1) < 1e-5 and p.probs[p.label] == max(p.probs)
    assert predictions[0] == predictions[4], "the same text got different answers in one batch"
    assert predictions[1] == predictions[2], "empty and blank texts are both read as nothing"
    alone = seqtext.classify(clf_run, texts[:1], precision="fp32")[0]  # a path works like a loaded run
    assert alone.label == predictions[0].label and alone.probs == pytest.approx(predictions[0].probs, abs=1e-6)


def test_classify_refuses_a_bare_string_and_a_language_model(clf_run, word_run):
    with pytest.raises(ConfigError, match="wrap a single text in a list"):
        seqtext.classify(clf_run, "great film")
    with pytest.raises(CheckpointError, match="is a language model run; 'classify' needs a classifier"):
        seqtext.classify(word_run, ["great film"])


def test_prepare_marks_the_first_word_like_the_others():
    config = ClassifierConfig()
    assert prepare("  Good   film ", config) == " good film"
    assert prepare("", config) == ""
    assert prepare("Good", ClassifierConfig(lowercase=False, level="char")) == "Good"


def test_validation_holds_out_whole_sentences():
    rows, names = read_labelled(PHRASES)
    assert names[0] == "negative" and rows.group_column == "SentenceId"
    train, valid, how = split_labelled(rows, 0.2, seed=0)
    assert set(train.groups).isdisjoint(valid.groups), "a sentence is on both sides of the split"
    assert len(train.texts) + len(valid.texts) == 594 and "sentences (by SentenceId)" in how
    again = split_labelled(rows, 0.2, seed=0)[1]
    assert again.texts == valid.texts, "the split depends only on the seed"


def test_without_groups_the_split_is_by_row(tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    rows, names = read_labelled(data, labels=("neg", "pos"))
    assert rows.groups is None and names == ("neg", "pos")
    _, valid, how = split_labelled(rows, 0.25, seed=1)
    assert len(valid.texts) == 5 and how == "5 of 20 random rows"


def test_labels_by_name_and_a_group_column(tmp_path):
    data = tmp_path / "named.jsonl"
    rows = [{"review": f"film {i}", "stars": ["neg", "pos"][i % 2], "film": i // 4} for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    read, _ = read_labelled(
        data, text_column="review", label_column="stars", labels=("neg", "pos"), group_column="film"
    )
    assert read.labels[:4] == [0, 1, 0, 1] and read.groups[:5] == [0, 0, 0, 0, 1]


def test_words_that_look_like_missing_values_stay_text(tmp_path):
    rows, _ = read_labelled(kaggle(tmp_path, [(1, 1, "None", 2), (2, 1, "NA", 2), (3, 1, 'say "null"', 1)]))
    assert rows.texts == ["None", "NA", 'say "null"']


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(1, 1, "good", 4), (2, 1, "bad", 7)], "line 3: label 7 is outside the label set 0-4"),
        ([(1, 1, "good", 4), (2, 1, "bad", "neg")], "line 3: label 'neg' is not in the label set"),
        ([(1, 1, "good", 4), (2, 1, "bad", "")], "line 3: no label in column 'Sentiment'"),
        ([(1, 1, " ", 2), (2, 1, "", 2)], "has no usable text"),
    ],
)
def test_bad_labels_name_the_line(tmp_path, rows, message):
    with pytest.raises(CorpusError, match=message):
        read_labelled(kaggle(tmp_path, rows))


def test_unknown_label_names_suggest_the_labels_flag(tmp_path):
    data = tmp_path / "named.csv"
    data.write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"pass --labels with the names the file uses, e\.g\. --labels neg,pos"):
        read_labelled(data)


def test_empty_texts_are_skipped_in_training_with_a_count(tmp_path):
    rows = [(i, i // 3, " " if i == 4 else f"phrase number {i}", i % 5) for i in range(60)]
    valid = kaggle(tmp_path, rows[:10], "valid.tsv")
    starts = []
    seqtext.train_classifier(
        ClassifierConfig(**TINY_CLF),
        ClassifierTrainConfig(
            data=str(kaggle(tmp_path, rows)),
            out=str(tmp_path / "r"),
            valid=str(valid),
            **{**TINY_CLF_TRAIN, "epochs": 1},
        ),
        callback=lambda e: starts.append(e.info) if e.kind == "start" else None,
    )
    info = starts[0]
    assert (info["skipped_empty"], info["train_texts"], info["valid_texts"]) == (1, 59, 10)
    assert info["split"] == f"--valid {valid}"


def test_interrupted_and_resumed_classifier_ends_with_identical_weights(tmp_path):
    options = {"epochs": 3, "patience": 0, "eval_every": 5, "word_dropout": 0.1}
    straight = train_clf(tmp_path / "straight", **options)

    def interrupt_at_step_7(event):
        if event.kind == "step" and event.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    model_config = ClassifierConfig(**TINY_CLF)
    train_config = ClassifierTrainConfig(
        data=str(PHRASES), out=str(tmp_path / "resumed"), **{**TINY_CLF_TRAIN, **options}
    )
    with pytest.raises(TrainingStopped) as stopped:
        seqtext.train_classifier(model_config, train_config, callback=interrupt_at_step_7)
    assert stopped.value.interrupted and stopped.value.step == 7
    result = seqtext.train_classifier(model_config, train_config, resume=True)
    assert result.steps > 7
    a, b = weights(straight), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
    logs = [(tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in ("straight", "resumed")]
    assert [json.loads(x)["val_accuracy"] for x in logs[0]] == [json.loads(x)["val_accuracy"] for x in logs[1]]


def test_same_seed_same_classifier(tmp_path):
    a, b = (weights(train_clf(tmp_path / n, epochs=1)) for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_best_checkpoint_is_the_most_accurate(clf_run):
    records = [json.loads(x) for x in (clf_run / "metrics.jsonl").read_text().splitlines()]
    best = max(r["val_accuracy"] for r in records)
    first_best = next(r for r in records if r["val_accuracy"] == best)
    metrics = seqtext.evaluate(clf_run, PHRASES)  # the kept weights are those of the first best evaluation
    assert first_best["step"] in [r["step"] for r in records] and 0 <= metrics.accuracy <= 1


def test_balanced_class_weights():
    w = class_weights([0, 0, 0, 1], 3, "balanced")
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2, 0.0]))
    assert class_weights([0, 1], 2, "none") is None


@pytest.fixture(scope="session")
def phrase_lm(tmp_path_factory) -> Path:
    """A word LM on the phrases' text, with the tiny classifier's sizes (one layer, 16/16)."""
    folder = tmp_path_factory.mktemp("lm")
    rows, _ = read_labelled(PHRASES)
    config = ClassifierConfig(**TINY_CLF)
    (folder / "phrases.txt").write_text("".join(prepare(t, config) + "\n" for t in rows.texts), encoding="utf-8")
    seqtext.train_lm(
        LMConfig(level="word", embed_dim=16, hidden_dim=16, layers=1, dropout=0.0, sample_by="line"),
        TrainConfig(
            data=str(folder / "phrases.txt"),
            out=str(folder / "lm"),
            bptt=16,
            batch_size=16,
            epochs=1,
            precision="fp32",
            device="cpu",
        ),
    )
    return folder / "lm"


def test_init_from_starts_from_the_language_model(phrase_lm, tmp_path):
    out = train_clf(tmp_path / "ulm", init_from=str(phrase_lm), lr=1e-9, epochs=1)
    clf, lm = seqtext.load(out), seqtext.load(phrase_lm)
    assert (out / "tokenizer.json").read_text() == (phrase_lm / "tokenizer.json").read_text()
    assert torch.allclose(clf.model.embed.weight, lm.model.embed.weight, atol=1e-6)
    for name, value in clf.model.rnn.named_parameters():
        assert torch.allclose(value, getattr(lm.model.rnn, name.removesuffix("_reverse")), atol=1e-6), name
    assert json.loads((out / "train_config.json").read_text())["init_from"] == str(phrase_lm)


def test_init_from_fills_a_two_layer_bidirectional_stack():
    lm = RNNLanguageModel(LMConfig(level="word", cell="gru", embed_dim=4, hidden_dim=6, layers=2, vocab_size=9))
    clf = RNNClassifier(
        ClassifierConfig(cell="gru", embed_dim=4, hidden_dim=6, layers=2, vocab_size=9, labels=("a", "b"))
    )
    init_from_lm(clf, lm)
    upper = clf.rnn.weight_ih_l1_reverse  # (3·6, 2·6): reads forward outputs, then backward ones
    assert torch.equal(upper[:, 6:], lm.rnn.weight_ih_l1) and not upper[:, :6].any()
    assert torch.equal(clf.rnn.weight_ih_l1[:, :6], lm.rnn.weight_ih_l1)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"level": "char"},
            "has --level 'word' but the classifier asks for 'char'; the classifier reuses the "
            "language model's tokenizer",
        ),
        ({"max_vocab": 500}, "has --max-vocab 20000 but the classifier asks for 500"),
        ({"hidden_dim": 32}, "has --hidden-dim 16 but the classifier asks for 32"),
        ({"cell": "gru"}, "has --cell 'lstm' but the classifier asks for 'gru'"),
    ],
)
def test_init_from_mismatch_is_a_clear_error(phrase_lm, tmp_path, model, message):
    with pytest.raises(ConfigError, match=message):
        train_clf(tmp_path / "x", model=model, init_from=str(phrase_lm))
    assert not (tmp_path / "x").exists(), "nothing is written before the checks"


def test_init_from_a_classifier_is_refused(clf_run, tmp_path):
    with pytest.raises(CheckpointError, match="is a classifier run; '--init-from' needs a language model"):
        train_clf(tmp_path / "x", init_from=str(clf_run))


def test_metrics_by_hand():
    probs = torch.tensor(
        [[0.7, 0.1, 0.1, 0.05, 0.05], [0.1, 0.2, 0.1, 0.3, 0.3], [0.1, 0.1, 0.6, 0.1, 0.1], [0.3, 0.3, 0.0, 0.2, 0.2]]
    )
    m = classifier_metrics(probs, [0, 1, 2, 4], ("n", "sn", "u", "sp", "p"))
    assert m.accuracy == 0.5 and m.confusion[1][3] == 1 and m.confusion[4][0] == 1 and m.texts == 4
    # present labels 0, 1, 2, 3 (predicted), 4: F1 1/(0.5·(1+1/2)) = 2/3 for label 0, 1 for label 2, else 0
    assert m.macro_f1 == pytest.approx((2 / 3 + 1.0) / 5)
    assert m.per_class[0]["precision"] == 0.5 and m.per_class[0]["recall"] == 1.0
    # binary, neutral excluded: row 1 (gold 1) p3+p4 0.6 > 0.3 → wrong; row 3 (gold 4) 0.4 < 0.6 → wrong
    assert binary_accuracy(probs, torch.tensor([0, 1, 2, 4])) == pytest.approx(1 / 3)
    assert classifier_metrics(probs[:, :2].softmax(-1), [0, 1, 0, 1], ("a", "b")).binary_accuracy is None


def test_evaluate_dispatches_on_the_run_kind(clf_run):
    metrics = seqtext.evaluate(clf_run, PHRASES)
    assert isinstance(metrics, seqtext.ClassifierMetrics)
    assert {"accuracy", "macro_f1", "confusion", "binary_accuracy"} <= set(metrics.to_dict())
    assert sum(map(sum, metrics.confusion)) == 594


def test_read_inputs_streams_in_chunks_and_counts_rows(tmp_path):
    data = kaggle(tmp_path, [(i, 1, f"phrase {i}", 2) for i in range(10)])
    inputs = read_inputs(str(data), id_column="PhraseId", chunk_size=4)
    chunks = list(inputs.chunks)
    assert inputs.total == 10 and [len(t) for t, _ in chunks] == [4, 4, 2]
    assert chunks[2][1] == [8, 9] and chunks[0][0][0] == "phrase 0"


@needs_shared_data
def test_the_kaggle_file_reads_exactly():
    rows, _ = read_labelled(SHARED_DATA / "rotten_tomatoes_phrases" / "train.tsv")
    assert len(rows.texts) == 156_060 and rows.texts.count(" ") == 1, "the lone-space phrase is a text"
    assert [rows.labels.count(c) for c in range(5)] == [7072, 27273, 79582, 32927, 9206]
    train, valid, _ = split_labelled(rows, 0.05, seed=0)
    assert set(train.groups).isdisjoint(valid.groups)


def test_one_sentence_cannot_be_split(tmp_path):
    rows, _ = read_labelled(kaggle(tmp_path, [(1, 7, "good", 4), (2, 7, "fun", 3)]))
    with pytest.raises(CorpusError, match=r"has only 1 SentenceId value; .* pass --valid FILE"):
        split_labelled(rows, 0.2, seed=0)


def test_class_label_names_of_a_dataset_become_the_label_names(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    table = datasets.Dataset.from_dict({"text": ["good", "bad", "fine"], "label": [1, 0, 1]}, features=features)
    table.to_parquet(str(tmp_path / "d.parquet"))
    rows, names = read_labelled(tmp_path / "d.parquet")
    assert names == ("neg", "pos") and rows.labels == [1, 0, 1]
    inputs = read_inputs(str(tmp_path / "d.parquet"))
    assert [texts for texts, _ in inputs.chunks] == [["good", "bad", "fine"]] and inputs.total is None

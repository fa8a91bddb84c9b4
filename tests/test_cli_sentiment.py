"""`seqtext train classifier`, `seqtext classify` and `seqtext evaluate` on a classifier, end to end."""

import csv
import io
import json
import subprocess
import sys

import pytest
from helpers import PHRASES, ROOT, TINY_CLASSIFIER_FLAGS, assert_clean_error, invoke, needs_shared_data

TINY = TINY_CLASSIFIER_FLAGS
HEADER = "PhraseId\tSentenceId\tPhrase\tSentiment\n"


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "clf"
    result = invoke("train", "classifier", PHRASES, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    return out


def test_train_classifier_with_every_option(tmp_path):
    valid = tmp_path / "valid.tsv"
    valid.write_text(HEADER + "1\t1\tgood fun\t4\n2\t1\tdreary\t0\n3\t2\t \t2\n", encoding="utf-8")
    out = tmp_path / "every"
    result = invoke(
        "train",
        "classifier",
        PHRASES,
        "--out",
        out,
        "--level",
        "word",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--embed-dim",
        "8",
        "--hidden-dim",
        "8",
        "--no-bidirectional",
        "--pooling",
        "attention",
        "--dropout",
        "0.1",
        "--no-lowercase",
        "--max-vocab",
        "300",
        "--labels",
        "neg,sneg,neu,spos,pos",
        "--valid",
        valid,
        "--text-column",
        "Phrase",
        "--label-column",
        "Sentiment",
        "--group-column",
        "SentenceId",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--weight-decay",
        "0",
        "--clip",
        "0.5",
        "--epochs",
        "1",
        "--max-time",
        "1m",
        "--patience",
        "2",
        "--eval-every",
        "10",
        "--class-weights",
        "balanced",
        "--word-dropout",
        "0.1",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "saved" in result.stderr and "val accuracy" in result.stderr
    assert "594 training texts (0 empty skipped) · 3 validation texts: --valid" in result.stderr
    model = json.loads((out / "config.json").read_text(encoding="utf-8"))["model"]
    assert (model["cell"], model["layers"], model["bidirectional"], model["pooling"]) == ("gru", 2, False, "attention")
    assert model["labels"] == ["neg", "sneg", "neu", "spos", "pos"] and model["vocab_size"] == 300
    saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert (saved["class_weights"], saved["word_dropout"], saved["max_time"], saved["seed"]) == ("balanced", 0.1, 60, 3)
    for pooling, cell in [("last", "rnn"), ("mean", "lstm"), ("max", "lstm")]:
        result = invoke(
            "train",
            "classifier",
            PHRASES,
            "--out",
            tmp_path / pooling,
            *TINY,
            "--pooling",
            pooling,
            "--cell",
            cell,
            "--level",
            "char",
            "--epochs",
            "1",
        )
        assert result.exit_code == 0, result.output


def test_classify_every_input_format_in_order(clf, tmp_path):
    texts = ["a warm , funny film", "", "dull , lifeless and too long", "None"]
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    (tmp_path / "in.tsv").write_text(
        "id\ttext\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    (tmp_path / "in.csv").write_text(
        "text,id\n" + "".join(f'"{t}",{i}\n' for i, t in enumerate(texts)), encoding="utf-8"
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    answers = []
    for name in ("in.txt", "in.tsv", "in.csv", "in.jsonl"):
        result = invoke("classify", clf, tmp_path / name, "--format", "jsonl")
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["text"] for r in rows] == texts, name
        assert all(set(r) == {"text", "label", "name", "probs"} and len(r["probs"]) == 5 for r in rows)
        answers.append([r["label"] for r in rows])
    assert all(a == answers[0] for a in answers), "the same texts got different labels by format"
    result = invoke("classify", clf, "-", input="".join(t + "\n" for t in texts))
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout), delimiter="\t"))
    assert table[0][:3] == ["label", "name", "prob_negative"] and table[0][-1] == "text"
    assert [int(r[0]) for r in table[1:]] == answers[0] and [r[-1] for r in table[1:]] == texts


def test_classify_csv_output_to_a_file_and_two_inputs(clf, tmp_path):
    (tmp_path / "a.txt").write_text("good\nbad\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("fine\n", encoding="utf-8")
    result = invoke(
        "classify", clf, tmp_path / "a.txt", tmp_path / "b.txt", "--format", "csv", "--output", tmp_path / "o.csv"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "wrote" in result.stderr
    rows = list(csv.DictReader((tmp_path / "o.csv").open(encoding="utf-8")))
    assert [r["text"] for r in rows] == ["good", "bad", "fine"]
    assert all(abs(sum(float(r[k]) for k in r if k.startswith("prob_")) - 1) < 1e-3 for r in rows)


def test_kaggle_submission_covers_every_phrase_id(clf, tmp_path):
    test = tmp_path / "test.tsv"
    rows = [
        "156061\t8545\tAn intermittently pleasing but mostly routine effort .",
        "156062\t8545\t ",
        "156063\t8545\tNone",
        "156064\t8546\tintermittently pleasing",
    ]
    test.write_text("PhraseId\tSentenceId\tPhrase\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = invoke("classify", clf, test, "--format", "kaggle")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "PhraseId,Sentiment"
    assert [line.split(",")[0] for line in lines[1:]] == ["156061", "156062", "156063", "156064"]
    assert all(line.split(",")[1] in "01234" for line in lines[1:])


def test_evaluate_a_classifier(clf, tmp_path):
    result = invoke("evaluate", clf, PHRASES, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "confusion", "binary_accuracy", "per_class"} <= set(figures)
    assert len(figures["confusion"]) == 5 and sum(map(sum, figures["confusion"])) == 594
    result = invoke("evaluate", clf, PHRASES, "--plot", tmp_path / "confusion.png")
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.stderr and "macro-F1" in result.stderr and "somewhat positive" in result.stderr
    pytest.importorskip("matplotlib")
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_init_from_a_language_model_on_the_command_line(tmp_path):
    text = tmp_path / "phrases.txt"
    text.write_text("".join(f" a {w} film .\n" for w in ["good", "bad", "dull", "warm", "fine"] * 20), encoding="utf-8")
    lm = tmp_path / "lm"
    result = invoke(
        "train",
        "lm",
        text,
        "--out",
        lm,
        "--level",
        "word",
        "--embed-dim",
        "16",
        "--hidden-dim",
        "16",
        "--layers",
        "1",
        "--bptt",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--precision",
        "fp32",
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "ulm"
    result = invoke(
        "train",
        "classifier",
        PHRASES,
        "--out",
        out,
        "--init-from",
        lm,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--precision",
        "fp32",
    )
    assert result.exit_code == 0, result.output  # sizes, level and vocabulary came from the language model
    model = json.loads((out / "config.json").read_text(encoding="utf-8"))["model"]
    assert (model["embed_dim"], model["hidden_dim"], model["layers"], model["level"]) == (16, 16, 1, "word")
    result = invoke("train", "classifier", PHRASES, "--out", tmp_path / "x", "--init-from", lm, "--level", "char")
    assert_clean_error(result, "has --level 'word' but the classifier asks for 'char'")
    result = invoke("train", "classifier", PHRASES, "--out", tmp_path / "x", "--init-from", out)
    assert_clean_error(result, "is a classifier run; '--init-from' needs a language model")


def kaggle_file(tmp_path, body: bytes, name="data.tsv"):
    path = tmp_path / name
    path.write_bytes(HEADER.encode() + body)
    return path


@pytest.mark.parametrize(
    ("name", "body", "options", "message"),
    [
        (
            "d.tsv",
            b"1\t1\tgood\t4\n",
            ["--text-column", "review"],
            "has no column 'review' (columns: PhraseId, SentenceId, Phrase, Sentiment). Pass --text-column NAME.",
        ),
        (
            "d.tsv",
            b"1\t1\tgood\t4\n",
            ["--label-column", "stars"],
            "has no column 'stars' (columns: PhraseId, SentenceId, Phrase, Sentiment). Pass --label-column NAME.",
        ),
        ("d.tsv", b"1\t1\tgood\t4\n2\t1\tbad\t9\n", [], "line 3: label 9 is outside the label set 0-4"),
        ("d.tsv", b"1\t1\t \t4\n2\t1\t\t1\n", [], "has no usable text"),
        ("d.tsv", b"1\t1\tgood\t4\n2\t1\tcaf\xe9\t3\n", [], "line 3: not valid UTF-8"),
        ("d.txt", b"good film\n", [], "a classifier needs a table with a text and a label column"),
        ("d.tsv", None, [], "no such file"),
    ],
)
def test_bad_training_data_is_one_clear_line(tmp_path, name, body, options, message):
    data = tmp_path / name if body is None else kaggle_file(tmp_path, body, name)
    result = invoke("train", "classifier", data, "--out", tmp_path / "r", *TINY, *options)
    assert_clean_error(result, message)
    assert not (tmp_path / "r" / "config.json").exists()


def test_bad_classify_inputs_are_one_clear_line(clf, char_run, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"good\nbad \xff\n")
    assert_clean_error(invoke("classify", clf, tmp_path / "bad.txt"), "bad.txt, line 2: not valid UTF-8")
    assert_clean_error(
        invoke("classify", char_run, tmp_path / "bad.txt"), "is a language model run; 'classify' needs a classifier"
    )
    (tmp_path / "plain.tsv").write_text("text\ngood\n", encoding="utf-8")
    result = invoke("classify", clf, tmp_path / "plain.tsv", "--format", "kaggle")
    assert_clean_error(result, "has no column 'PhraseId' (columns: text); --format kaggle needs the Kaggle test.tsv")
    result = invoke("classify", clf, tmp_path / "plain.tsv", "--text-column", "Phrase")
    assert_clean_error(result, "has no column 'Phrase' (columns: text). Pass --text-column NAME.")
    result = invoke("evaluate", clf, kaggle_file(tmp_path, b"1\t1\tgood\t7\n"))
    assert_clean_error(result, "line 2: label 7 is outside the label set 0-4")


def test_a_column_option_for_plain_text_is_refused_not_ignored(clf, tmp_path):
    (tmp_path / "plain.txt").write_text("good film\n", encoding="utf-8")
    message = "is plain text (one text per line) with no columns; --text-column applies to"
    assert_clean_error(invoke("classify", clf, tmp_path / "plain.txt", "--text-column", "review"), message)
    result = invoke("classify", clf, "-", "--text-column", "review", input="good film\n")
    assert_clean_error(result, "standard input " + message)


def test_resume_continues_with_the_saved_options(tmp_path):
    out = tmp_path / "r"
    result = invoke("train", "classifier", PHRASES, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert_clean_error(invoke("train", "classifier", PHRASES, "--out", out, *TINY), "already holds a run")
    assert_clean_error(invoke("train", "classifier", PHRASES, "--out", out, "--resume"), "has nothing to resume")


@needs_shared_data
def test_sentiment_benchmark_smoke():
    command = [sys.executable, "scripts/bench_sentiment.py", "--smoke", "--init-from-lm", "--seeds", "2"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["benchmark"] == "bench_sentiment"
    for name in ("seqtext_single", "seqtext_ensemble", "seqtext_distilled"):
        figures = report[name]["mean_std"]["dev_phrases.accuracy"]
        assert len(figures["values"]) == 2 and [r["seed"] for r in report[name]["runs"]] == [0, 1]
        assert figures["mean"] == pytest.approx(sum(figures["values"]) / 2) and figures["std"] >= 0
    ulm = report["seqtext_init_from_lm"]  # an LM and a classifier from it per seed
    assert [r["seed"] for r in ulm["runs"]] == [0, 1] and ulm["lm_text"] == "all" and ulm["lm_seconds"] > 0
    assert 0 <= ulm["mean_std"]["dev_phrases.accuracy"]["mean"] <= 1
    assert all(r["lm"]["steps"] > 0 and r["sst5_sentences"]["binary_accuracy"] >= 0 for r in ulm["runs"])
    assert 0 <= report["phrase_memory"]["dev_phrases_seen_in_training"] <= 1
    assert report["classify_ensemble"]["cli_phrases_per_s"] > 0
    assert report["fasttext"]["dev_phrases"]["accuracy"] > 0 and report["classify"]["api_phrases_per_s"] > 0


def test_plot_of_a_language_model_is_refused(char_run, lines_file, tmp_path):
    result = invoke("evaluate", char_run, lines_file, "--plot", tmp_path / "x.png")
    assert_clean_error(result, "--plot draws a classifier's confusion matrix")
    assert not (tmp_path / "x.png").exists()

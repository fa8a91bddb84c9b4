"""Classifier ensembles (--ensemble), distillation (--distill-from), weight averaging (--ema) and the
ordinal loss term (--ordinal-weight): API, CLI end to end, and every bad input."""

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import PHRASES, assert_clean_error, invoke
from safetensors.torch import load_file

import seqtext
from seqtext.config import ClassifierConfig, ClassifierTrainConfig
from seqtext.errors import CheckpointError, ConfigError, TrainingStopped
from seqtext.runtime import resolve_precision
from seqtext.sentiment.classification import average_proba, encode_texts, predict_proba
from seqtext.sentiment.distill import soft_labels

TINY = {"embed_dim": 16, "hidden_dim": 16, "dropout": 0.0}
TINY_TRAIN = {"batch_size": 32, "epochs": 2, "precision": "fp32", "device": "cpu", "phrase_memory": False}
TEXTS = ["a warm and funny film", "dreary", "", "the plot is a mess"]


def train(out: Path, data: Path = PHRASES, model: dict | None = None, callback=None, **options):
    return seqtext.train_classifier(
        ClassifierConfig(**{**TINY, **(model or {})}),
        ClassifierTrainConfig(data=str(data), out=str(out), **{**TINY_TRAIN, **options}),
        callback=callback,
    )


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ens") / "ensemble"
    train(out, ensemble=3)
    return out


def test_an_ensemble_is_one_run_directory_of_members_with_one_tokenizer(ensemble_run):
    assert json.loads((ensemble_run / "ensemble.json").read_text()) == {"format": 1, "members": 3}
    loaded = seqtext.load(ensemble_run).members
    assert len(loaded) == 3 and [m.path for m in loaded[1:]] == [ensemble_run / "members" / k for k in "12"]
    seeds = [json.loads((m.path / "train_config.json").read_text())["seed"] for m in loaded[1:]]
    assert seeds == [1, 2] and json.loads((ensemble_run / "train_config.json").read_text())["ensemble"] == 3
    weights = [load_file(str(m.path / "model.safetensors"))["head.weight"] for m in loaded]
    assert not torch.equal(weights[0], weights[1])  # other seeds, other models
    assert len({m.tokenizer.to_str() for m in loaded}) == 1


def test_classify_and_evaluate_average_the_members(ensemble_run):
    clf = seqtext.load(ensemble_run)
    ids = encode_texts(clf.tokenizer, clf.config, TEXTS)
    each = [predict_proba(m.model, ids, m.device) for m in clf.members]
    mean = sum(each) / 3
    got = torch.tensor([p.probs for p in seqtext.classify(clf, TEXTS, precision="fp32")])
    assert torch.allclose(got, mean, atol=1e-6) and not torch.allclose(got, each[0], atol=1e-4)
    assert torch.allclose(average_proba(clf, ids), mean, atol=1e-6)
    metrics = seqtext.evaluate(ensemble_run, PHRASES)
    assert 0 <= metrics.accuracy <= 1 and metrics.texts == 594


def test_a_single_model_run_stays_one_model(tmp_path):
    train(tmp_path / "one")
    assert not (tmp_path / "one" / "ensemble.json").exists() and not (tmp_path / "one" / "members").exists()
    assert len(seqtext.load(tmp_path / "one").members) == 1


def copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_a_member_of_another_tokenizer_is_refused(ensemble_run, tmp_path):
    other = tmp_path / "other"
    train(other, model={"max_vocab": 40})  # another vocabulary
    bad = copy(ensemble_run, tmp_path / "bad")
    shutil.rmtree(bad / "members" / "2")
    shutil.copytree(other, bad / "members" / "2")
    with pytest.raises(CheckpointError, match=r"member 2 of the ensemble .* another tokenizer or vocabulary"):
        seqtext.classify(bad, TEXTS)


def test_a_member_of_another_label_set_is_refused(ensemble_run, tmp_path):
    data = tmp_path / "binary.tsv"
    rows = [line.split("\t") for line in PHRASES.read_text(encoding="utf-8").splitlines()[1:]]
    data.write_text("text\tlabel\n" + "".join(f"{r[2]}\t{int(r[3]) >= 3:d}\n" for r in rows), encoding="utf-8")
    other = tmp_path / "other"
    train(other, data, model={"labels": ("bad", "good")})
    bad = copy(ensemble_run, tmp_path / "bad")
    shutil.rmtree(bad / "members" / "1")
    shutil.copytree(other, bad / "members" / "1")
    with pytest.raises(CheckpointError, match=r"member 1 of the ensemble .* predicts the labels bad, good"):
        seqtext.evaluate(bad, PHRASES)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda run: shutil.rmtree(run / "members" / "2"), "names member 2 but"),
        (lambda run: (run / "ensemble.json").write_text('{"format": 1, "members": 99}'), '"members" must be between'),
        (lambda run: (run / "ensemble.json").write_text('{"format": 1, "members": "3"}'), "a whole number"),
        (lambda run: (run / "ensemble.json").write_text('{"format": 7, "members": 3}'), "ensemble format 1"),
        (lambda run: (run / "ensemble.json").write_text("[1]"), "ensemble.json"),
    ],
)
def test_a_damaged_ensemble_is_a_clear_error(ensemble_run, tmp_path, edit, message):
    bad = copy(ensemble_run, tmp_path / "bad")
    edit(bad)
    with pytest.raises(CheckpointError, match=message):
        seqtext.classify(bad, TEXTS)


def test_an_ensemble_cannot_be_resumed_or_distilled_at_once(ensemble_run, tmp_path):
    with pytest.raises(ConfigError, match="--resume continues a single-model run"):
        seqtext.train_classifier(
            ClassifierConfig(**TINY),
            ClassifierTrainConfig(data=str(PHRASES), out=str(tmp_path / "x"), ensemble=2, **TINY_TRAIN),
            resume=True,
        )
    with pytest.raises(ConfigError, match="pass only one"):
        ClassifierTrainConfig(ensemble=2, distill_from=str(ensemble_run))


def test_a_student_learns_the_teachers_soft_labels(ensemble_run, tmp_path):
    starts = []
    train(tmp_path / "student", distill_from=str(ensemble_run), distill_weight=1.0,
          callback=lambda e: starts.append(e.info) if e.kind == "start" else None)  # fmt: skip
    student = seqtext.load(tmp_path / "student")
    assert len(student.members) == 1 and starts[0]["distill_from"] == str(ensemble_run)
    soft = soft_labels(str(ensemble_run), student.config.labels, TEXTS)
    teacher = torch.tensor([p.probs for p in seqtext.classify(ensemble_run, TEXTS)])  # precision auto, as distilling
    assert torch.allclose(soft, teacher, atol=1e-6)  # the teacher's averaged probabilities are the soft labels
    plain = load_file(str(train(tmp_path / "plain").out_dir / "model.safetensors"))
    distilled = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert not torch.equal(plain["head.weight"], distilled["head.weight"])  # same seed: only the soft labels differ


def test_a_teacher_of_another_label_set_or_kind_is_refused(tmp_path, word_run):
    data = tmp_path / "binary.tsv"
    data.write_text("text\tlabel\n" + "good fun\t1\ndreary\t0\n" * 20, encoding="utf-8")
    binary = tmp_path / "binary"
    train(binary, data, model={"labels": ("bad", "good")}, epochs=1)
    with pytest.raises(ConfigError, match=r"--distill-from .* predicts the labels \(bad, good\) but the training data"):
        train(tmp_path / "s1", distill_from=str(binary))
    with pytest.raises(CheckpointError, match="is a language model run; '--distill-from' needs a classifier"):
        train(tmp_path / "s2", distill_from=str(word_run))
    with pytest.raises(CheckpointError, match="is not a seqtext run"):
        train(tmp_path / "s3", distill_from=str(tmp_path / "nowhere"))


def test_ema_keeps_the_average_and_resumes_exactly(tmp_path):
    options = {"epochs": 3, "patience": 0, "eval_every": 5, "ema": 0.9}
    straight = train(tmp_path / "straight", **options).out_dir

    def interrupt_at_step_7(event):
        if event.kind == "step" and event.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingStopped):
        train(tmp_path / "resumed", callback=interrupt_at_step_7, **options)
    seqtext.train_classifier(
        ClassifierConfig(**TINY),
        ClassifierTrainConfig(data=str(PHRASES), out=str(tmp_path / "resumed"), **{**TINY_TRAIN, **options}),
        resume=True,
    )
    a, b = (load_file(str(run / "model.safetensors")) for run in (straight, tmp_path / "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = load_file(str(train(tmp_path / "plain", **{**options, "ema": 0.0}).out_dir / "model.safetensors"))
    assert not torch.equal(plain["head.weight"], a["head.weight"])  # the average, not the last weights


def test_the_ordinal_term_changes_training(tmp_path):
    a = load_file(str(train(tmp_path / "a", epochs=1).out_dir / "model.safetensors"))
    b = load_file(str(train(tmp_path / "b", epochs=1, ordinal_weight=1.0).out_dir / "model.safetensors"))
    assert not torch.equal(a["head.weight"], b["head.weight"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ensemble": 0}, "ensemble"),
        ({"ensemble": 33}, "ensemble"),
        ({"ema": 1.0}, "ema"),
        ({"distill_weight": 1.5}, "distill.weight"),
        ({"ordinal_weight": -1.0}, "ordinal.weight"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        ClassifierTrainConfig(**options)


def test_cli_trains_an_ensemble_distils_it_and_classifies(tmp_path):
    tiny = ["--embed-dim", "16", "--hidden-dim", "16", "--epochs", "1", "--precision", "fp32", "--device", "cpu"]
    tiny += ["--no-phrase-memory"]
    result = invoke(
        "train", "classifier", PHRASES, "--out", tmp_path / "e", "--ensemble", "2", "--max-time", "1m", *tiny
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "ensemble.json").read_text())["members"] == 2
    assert json.loads((tmp_path / "e" / "members" / "1" / "train_config.json").read_text())["max_time"] <= 60
    result = invoke(
        "train", "classifier", PHRASES, "--out", tmp_path / "s", "--distill-from", tmp_path / "e",
        "--ema", "0.99", "--ordinal-weight", "0.5", *tiny,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    for run in ("e", "s"):
        result = invoke("classify", tmp_path / run, texts)
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == len(TEXTS) + 1
    result = invoke(
        "train", "classifier", PHRASES, "--out", tmp_path / "x", "--distill-from", tmp_path / "nowhere", *tiny
    )
    assert_clean_error(result, "is not a seqtext run")


def test_fast_encoding_gives_the_ids_of_the_plain_one(ensemble_run):
    from seqtext.sentiment.classification import prepare

    clf = seqtext.load(ensemble_run)
    texts = [*TEXTS, "Ünïcode ,  spaces\tand UPPER case", "a" * 300]
    prepared = [prepare(t, clf.config) for t in texts]
    plain = [enc.ids for enc in clf.tokenizer.encode_batch(prepared, add_special_tokens=False)]
    assert encode_texts(clf.tokenizer, clf.config, texts) == plain  # encode_batch takes encode_batch_fast


def model_probs(run, texts):
    """What the run's model alone says of each text (its phrase memory set aside), as classify computes it."""
    clf = seqtext.load(run)
    ids = encode_texts(clf.tokenizer, clf.config, texts)
    return average_proba(clf, ids, precision=resolve_precision("auto", clf.device)).tolist()


def test_phrase_memory_answers_training_phrases_with_their_label(tmp_path):
    run = train(tmp_path / "memory", phrase_memory=True).out_dir
    phrases = json.loads((run / "phrase_memory.json").read_text())["phrases"]
    text, label = next(iter(phrases.items()))
    got = seqtext.classify(run, [text.upper(), "zzz never seen qqq"])
    assert got[0].label == label and got[0].probs[label] == 1.0
    assert max(got[1].probs) < 1.0  # the model answers the rest
    # The model reads only what the memory does not answer: the others' answers are those of the model alone.
    others = ["zzz never seen qqq", "qqq fun zzz", "an utterly unseen zzz sentence"]  # not in the memory
    mixed = seqtext.classify(run, [others[0], text, others[1], text.upper(), others[2]])
    assert [mixed[i].probs for i in (0, 2, 4)] == model_probs(run, others)
    assert mixed[1].label == mixed[3].label == label
    plain = train(tmp_path / "plain").out_dir
    assert seqtext.evaluate(run, PHRASES).accuracy > seqtext.evaluate(plain, PHRASES).accuracy
    assert not (tmp_path / "plain" / "phrase_memory.json").exists()  # --no-phrase-memory
    bad = copy(run, tmp_path / "bad")
    (bad / "phrase_memory.json").write_text('{"format": 1, "phrases": {"good": 9}}')
    with pytest.raises(CheckpointError, match=r"phrase_memory.json.*not a label id"):
        seqtext.classify(bad, ["good"])


def test_a_phrase_memory_too_large_to_read_back_is_refused_before_training(tmp_path, monkeypatch):
    import seqtext.sentiment.memory as memory

    monkeypatch.setattr(memory, "MAX_JSON_BYTES", 1000)
    with pytest.raises(ConfigError, match=r"too many distinct phrases .* pass --no-phrase-memory"):
        train(tmp_path / "big", phrase_memory=True)
    assert not (tmp_path / "big" / "model.safetensors").exists()

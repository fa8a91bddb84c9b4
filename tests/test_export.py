"""`seqtext export`: the exported files, run in ONNX Runtime, give seqtext's suggestions and probabilities."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import KEYBOARD_TEXTS, PHRASES, assert_clean_error, copy_run, invoke, train_tiny

pytest.importorskip("onnx", reason="needs the export extra: pip install -e '.[export]'")
ort = pytest.importorskip("onnxruntime", reason="needs the export extra: pip install -e '.[export]'")

import seqtext  # noqa: E402
from seqtext.keyboard.completion import Completer  # noqa: E402
from seqtext.keyboard.lexicon import load_lexicon  # noqa: E402
from seqtext.keyboard.memory import load_memory  # noqa: E402
from seqtext.keyboard.ngramfile import load_ngram  # noqa: E402
from seqtext.models import join_states, select_state  # noqa: E402
from seqtext.sentiment.classification import encode_texts, predict_proba  # noqa: E402
from seqtext.tokenizer import from_json  # noqa: E402

TYPED = KEYBOARD_TEXTS


def export(run, out, *flags):
    result = invoke("export", run, "--out", out, *flags)
    assert result.exit_code == 0, result.output
    return out


class OnnxLM:
    """The exported lm_step.onnx behind the two calls the keyboard engine makes to its network."""

    def __init__(self, path, lstm: bool):
        self.session, self.lstm = ort.InferenceSession(str(path)), lstm

    def parameters(self):  # where its tensors live, for the engine: the CPU
        yield torch.zeros(0)

    def step(self, ids, state):
        feed = {"ids": np.asarray(ids, dtype=np.int64), "h": state[0].numpy() if self.lstm else state.numpy()}
        if self.lstm:
            feed["c"] = state[1].numpy()
        logits, _, *new = self.session.run(None, feed)
        new = [torch.from_numpy(s) for s in new]
        return torch.from_numpy(logits), (new[0], new[1]) if self.lstm else new[0]

    def read(self, ids, state=None):
        if state is None:
            zeros = torch.zeros(1, ids.size(0), self.session.get_inputs()[1].shape[2])
            state = (zeros, zeros.clone()) if self.lstm else zeros
        for t in range(ids.size(1)):
            logits, state = self.step(ids[:, t], state)
        return logits, state

    def read_rows(self, rows, state):
        one_by_one = [
            self.read(torch.tensor([ids]), select_state(state, torch.tensor([i]))) for i, ids in enumerate(rows)
        ]
        return torch.cat([logits for logits, _ in one_by_one]), join_states([state for _, state in one_by_one])


def exported_keyboard(run, out):
    """A keyboard whose network, tokenizer, n-gram and mixing weights all come from the export's files."""
    described = json.loads((out / "keyboard.json").read_text(encoding="utf-8"))
    lm = dataclasses.replace(
        seqtext.load(run),  # its config only: the shape the engine needs
        model=OnnxLM(out / "lm_step.onnx", described["cell"] == "lstm"),
        tokenizer=from_json((out / "tokenizer.json").read_text(encoding="utf-8")),
    )
    keyboard = Completer(lm, ngram=False)
    if described["ngram"]:
        lexicon = load_lexicon(out) if described["lexicon"] else None
        weight = described["lexicon"]["weight"] if lexicon else 0.0
        ngram, shares = load_ngram(out, lm.tokenizer), described["ngram"]
        memory = load_memory(out, ngram.vocab) if described["memory"] else None
        memory_weights = described["memory"]["weights"] if memory else ()
        keyboard.use_ngram(ngram, shares["weights"], lexicon, weight, shares["oov_weights"], memory, memory_weights)
    return keyboard, described


def test_the_exported_keyboard_gives_seqtexts_suggestions(keyboard_run, tmp_path):
    out = export(keyboard_run, tmp_path / "export")
    names = {p.name for p in out.iterdir()}
    assert names == {"lm_step.onnx", "lm_forward.onnx", "weights.safetensors", "tokenizer.json", "vocab.json",
                     "keyboard.json", "ngram.safetensors", "README.md"}  # fmt: skip
    keyboard, described = exported_keyboard(keyboard_run, out)
    assert described["ngram"]["weights"] == list(seqtext.load(keyboard_run).config.ngram_weights)
    reference = Completer(keyboard_run, int8=False)  # the export is fp32: seqtext's --no-int8 keyboard
    assert reference.mixer is not None and keyboard.mixer is not None  # the n-gram mix on both sides
    for typed in TYPED:
        got, want = keyboard.suggest(typed, 5), reference.suggest(typed, 5)
        assert [c.word for c in got] == [c.word for c in want], typed
        assert [c.prob for c in got] == pytest.approx([c.prob for c in want], abs=1e-4), typed
    assert "periquito" in [c.word for c in reference.suggest(TYPED[1], 5)]


def test_a_keyboard_with_its_memory_and_shares_for_unknown_words_exports_too(memory_run, tmp_path):
    out = export(memory_run, tmp_path / "export")
    keyboard, described = exported_keyboard(memory_run, out)
    config = seqtext.load(memory_run).config
    assert described["version"] == 2, "a reader of version 1 would mix it without them: it refuses it"
    assert described["ngram"]["oov_weights"] == list(config.ngram_oov_weights) != described["ngram"]["weights"]
    assert described["memory"]["weights"] == list(config.memory_weights) and (out / "memory.safetensors").is_file()
    reference = Completer(memory_run, int8=False)
    assert reference.mixer.memory is not None and keyboard.mixer.memory is not None
    for typed in [*TYPED, "Mi perro c", "Voy al parque con mi p"]:
        got, want = keyboard.suggest(typed, 5), reference.suggest(typed, 5)
        assert [c.word for c in got] == [c.word for c in want], typed
        assert [c.prob for c in got] == pytest.approx([c.prob for c in want], abs=1e-4), typed


def test_a_plain_keyboard_s_export_stays_version_1(keyboard_run, tmp_path):
    described = json.loads((export(keyboard_run, tmp_path / "export") / "keyboard.json").read_text(encoding="utf-8"))
    assert described["version"] == 1 and described["memory"] is None  # readers of version 1 still read it
    assert described["ngram"]["oov_weights"] == described["ngram"]["weights"]


@pytest.mark.parametrize("run", ["char_run", "prose_run"])
def test_character_and_gru_models_export_too(run, request, tmp_path):
    path = request.getfixturevalue(run)
    keyboard, _ = exported_keyboard(path, export(path, tmp_path / "export"))
    reference = Completer(path, int8=False)
    for typed in ["Voy al parque con mi pe", "En un lugar de la Man", "Mi "]:
        got, want = keyboard.suggest(typed, 3), reference.suggest(typed, 3)
        assert [c.word for c in got] == [c.word for c in want]
        assert [c.prob for c in got] == pytest.approx([c.prob for c in want], abs=1e-4)


def test_a_character_aware_input_exports_as_its_table(lines_file, tmp_path):
    run = train_tiny(lines_file, tmp_path / "run", {"level": "word", "char_input": True})
    out = export(run, tmp_path / "export")
    assert json.loads((out / "keyboard.json").read_text(encoding="utf-8"))["char_input"]
    keyboard, reference = exported_keyboard(run, out)[0], Completer(run, int8=False)
    for typed in ["Voy al parque con mi pe", "Mi ", "El niño juega con el p"]:
        got, want = keyboard.suggest(typed, 3), reference.suggest(typed, 3)
        assert [c.word for c in got] == [c.word for c in want]
        assert [c.prob for c in got] == pytest.approx([c.prob for c in want], abs=1e-4)


def test_the_forward_graph_reads_a_batch_as_the_model_does(word_run, tmp_path):
    out = export(word_run, tmp_path / "export")
    lm = seqtext.load(word_run)
    ids = np.array([[2, 5, 9, 11, 7], [2, 8, 6, 4, 10]], dtype=np.int64)
    zeros = np.zeros((1, 2, lm.config.hidden_dim), dtype=np.float32)
    logits, h, _ = ort.InferenceSession(str(out / "lm_forward.onnx")).run(None, {"ids": ids, "h": zeros, "c": zeros})
    with torch.inference_mode():
        want, (want_h, _) = lm.model(torch.from_numpy(ids))
    assert np.abs(logits - want.numpy()).max() < 1e-4 and np.abs(h - want_h.numpy()).max() < 1e-5


@pytest.mark.parametrize("pooling", ["max", "kmax", "mean", "attention", "last"])
def test_the_exported_classifier_gives_seqtexts_probabilities(sentiment_run, tmp_path, pooling):
    run = sentiment_run
    if pooling != "max":  # the fixture's is the default, max
        run = tmp_path / "run"
        seqtext.train_classifier(
            seqtext.ClassifierConfig(embed_dim=8, hidden_dim=8, pooling=pooling),
            seqtext.ClassifierTrainConfig(data=str(PHRASES), out=str(run), epochs=1, precision="fp32", seed=0),
        )
    out = export(run, tmp_path / "export")
    described = json.loads((out / "classifier.json").read_text(encoding="utf-8"))
    assert described["pooling"] == pooling
    clf = seqtext.load(run)
    assert described["labels"] == list(clf.config.labels)
    texts = ["a warm , funny and deeply moving film", "", "bad", "Zorbaxa is the worst movie ever made", "ok"]
    ids = encode_texts(from_json((out / "tokenizer.json").read_text(encoding="utf-8")), clf.config, texts)
    width = max(map(len, ids))
    feed = {
        "ids": np.array([i + [0] * (width - len(i)) for i in ids], dtype=np.int64),
        "lengths": np.array([len(i) for i in ids], dtype=np.int64),
    }
    (probs,) = ort.InferenceSession(str(out / "classifier.onnx")).run(None, feed)
    assert probs == pytest.approx(predict_proba(clf.model, ids, clf.device).numpy(), abs=1e-4)
    memory = clf.phrase_memory
    if memory:
        assert json.loads((out / "phrases.json").read_text(encoding="utf-8"))["phrases"] == memory


def test_bad_export_targets_are_refused_before_any_work(word_run, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me", encoding="utf-8")
    assert "is not empty" in assert_clean_error(invoke("export", str(word_run), "--out", str(full)))
    assert (full / "mine.txt").read_text(encoding="utf-8") == "keep me"
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    assert "is a file" in assert_clean_error(invoke("export", str(word_run), "--out", str(a_file)))
    under_a_file = a_file / "sub"
    assert "is a file" in assert_clean_error(invoke("export", str(word_run), "--out", str(under_a_file)))
    result = invoke("export", word_run, "--out", tmp_path / "x", "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output  # typer names the formats there are
    assert "not a seqtext run" in assert_clean_error(invoke("export", str(tmp_path), "--out", str(tmp_path / "y")))


def test_force_writes_into_a_directory_that_holds_files(word_run, tmp_path):
    out = export(word_run, tmp_path / "export")
    export(word_run, out, "--force")  # again, over the first export
    assert json.loads((out / "keyboard.json").read_text(encoding="utf-8"))["level"] == "word"


def test_an_ensemble_is_refused_with_what_to_do(sentiment_run, tmp_path, monkeypatch):
    from seqtext.runs.loading import Loaded

    monkeypatch.setattr(Loaded, "members", property(lambda self: (self, self)))
    message = assert_clean_error(invoke("export", str(sentiment_run), "--out", str(tmp_path / "e")))
    assert "ensemble of 2 models" in message


def test_a_damaged_run_is_refused(keyboard_run, tmp_path):
    damaged = copy_run(keyboard_run, tmp_path / "damaged")
    (damaged / "ngram.safetensors").write_bytes(b"not safetensors")
    assert "ngram.safetensors" in assert_clean_error(invoke("export", str(damaged), "--out", str(tmp_path / "e")))


def test_the_graphs_are_written_in_a_file_format_older_runtimes_read(word_run, sentiment_run, tmp_path):
    import onnx

    from seqtext.export.graphs import IR_VERSION, OPSET

    for run, names in ((word_run, ("lm_step.onnx", "lm_forward.onnx")), (sentiment_run, ("classifier.onnx",))):
        out = export(run, tmp_path / run.name)
        for name in names:
            model = onnx.load(out / name)
            assert model.ir_version == IR_VERSION == 8 and model.opset_import[0].version == OPSET, name

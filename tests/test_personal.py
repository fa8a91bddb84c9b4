"""The keyboard's personal model (keyboard/personal.py) through the Python API, and the engine's thread policy."""

import json
import os
import stat

import pytest
import torch

import seqtext
from seqtext.errors import ConfigError, CorpusError
from seqtext.keyboard.personal import PersonalModel, default_user_data, forget_file, mix, words_with_context


def words(completer, typed, k=3):
    return [s.word for s in completer.suggest(typed, k)]


def test_a_learned_word_is_offered_saved_and_forgotten(word_run, tmp_path):
    data = tmp_path / "me" / "personal.json"
    completer = seqtext.Completer(word_run, user_data=data)
    assert "Zorbaxa" not in words(completer, "Hola Zo") and not data.exists()
    completer.learn("Me llamo Zorbaxa.")
    assert words(completer, "Hola Zo")[0] == "Zorbaxa"  # a word outside the model's vocabulary
    assert words(completer, "hola zo")[0] == "Zorbaxa"  # a name keeps its capital
    saved = json.loads(data.read_text(encoding="utf-8"))
    assert saved["format"] == "seqtext-personal" and saved["words"]["Zorbaxa"] == 1
    assert saved["follows"]["llamo"] == {"Zorbaxa": 1} and saved["follows"][""] == {"Me": 1}
    again = seqtext.Completer(word_run, user_data=data)  # a restart
    assert words(again, "Hola Zo")[0] == "Zorbaxa"
    again.forget()
    assert not data.exists() and "Zorbaxa" not in words(again, "Hola Zo")
    assert "Zorbaxa" not in words(seqtext.Completer(word_run, user_data=data), "Hola Zo")


def test_without_a_file_learning_stays_in_memory(char_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    completer = seqtext.Completer(char_run)  # the character model's beam search gets the same hook
    completer.learn("Saludos de Zorbaxa\nZorbaxa vuelve")
    assert words(completer, "Hola Zor")[0] == "Zorbaxa" and list(tmp_path.iterdir()) == []
    completer.save()  # nothing to do, and no error
    completer.forget()
    assert "Zorbaxa" not in words(completer, "Hola Zor")


def test_personal_context_and_weights(word_run):
    assert words_with_context("Me llamo Ana. Vivo  en Lugo") == [
        ("", "Me"), ("me", "llamo"), ("llamo", "Ana"), ("", "Vivo"), ("vivo", "en"), ("en", "Lugo"),
    ]  # fmt: skip
    model = PersonalModel()
    model.learn("en Lugo\nen Lima\nen Lugo\nde Lima", save=False)
    assert [w for w, _ in model.candidates("vivo en ", "L", 3)] == ["Lugo", "Lima"]
    assert [w for w, _ in model.candidates("vino de ", "L", 3)] == ["Lima", "Lugo"]  # what followed "de"
    assert sum(model.prob(w, "en") for w in model.words) == pytest.approx(1.0)
    assert mix([("a", 1.0, 0.5), ("b", 1.0, 0.4)], [("b", 1.0, 1.0)], 0.5, 2) == [("b", 0.7), ("a", 0.25)]
    plain = seqtext.Completer(word_run, personal_weight=0.0)
    plain.learn("Me llamo Zorbaxa")
    assert words(plain, "Mi per") == words(seqtext.Completer(word_run), "Mi per")  # weight 0: the model alone
    with pytest.raises(ConfigError, match="personal_weight"):
        seqtext.Completer(word_run, personal_weight=1.5)


def test_an_empty_personal_model_changes_nothing(word_run):
    completer, learned = seqtext.Completer(word_run), seqtext.Completer(word_run)
    learned.learn("perro perro perro")
    for typed in ["", "Voy al parque con mi per", "¿que", "Mi "]:
        assert completer.suggest(typed, 3) == seqtext.complete(seqtext.load(word_run), typed, 3)
    assert words(learned, "Mi p")[0] == "perro"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not readable JSON .* at line 1, column 2"),
        ('{"format": "other", "version": 1}', "not a seqtext personal-data file"),
        ('{"format": "seqtext-personal", "version": 9}', "newer seqtext"),
        ('{"format": "seqtext-personal", "version": 1, "words": {"a": -1}}', "must be a whole number from 1 to 9,007"),
        ('{"format": "seqtext-personal", "version": 1, "words": {"a b": 1}}', "is not a word"),
        ('{"format": "seqtext-personal", "version": 1, "words": {}, "follows": {"x": {"y": 1}}}', "not in"),
        ('{"format": "seqtext-personal", "version": 1, "extra": 1}', "unknown field 'extra'"),
        ("[1, 2]", "not a seqtext personal-data file"),
    ],
)
def test_a_damaged_file_is_refused_and_left_alone(word_run, tmp_path, content, message):
    data = tmp_path / "personal.json"
    data.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as caught:
        seqtext.Completer(word_run, user_data=data)
    assert "\n" not in str(caught.value) and str(data) in str(caught.value)
    assert data.read_text(encoding="utf-8") == content  # never overwritten
    assert seqtext.load(word_run)  # and the model is untouched


def test_not_utf8_and_not_a_file(word_run, tmp_path):
    data = tmp_path / "personal.json"
    data.write_bytes(b'{"format": "\xff"}')
    with pytest.raises(CorpusError, match="not UTF-8"):
        seqtext.Completer(word_run, user_data=data)
    with pytest.raises(CorpusError, match="not a regular file"):
        seqtext.Completer(word_run, user_data=tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_an_unwritable_place_is_a_clear_error(word_run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        completer = seqtext.Completer(word_run, user_data=locked / "personal.json")
        with pytest.raises(ConfigError, match="--user-data"):
            completer.personal.check_writable()
        with pytest.raises(ConfigError, match="cannot write it"):
            completer.learn("Hola Zorbaxa")
        assert words(completer, "Hola Zo")[0] == "Zorbaxa"  # what was learned is still in memory
    finally:
        locked.chmod(stat.S_IRWXU)


def test_a_file_in_place_of_the_directory(word_run, tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    completer = seqtext.Completer(word_run, user_data=tmp_path / "file" / "personal.json")
    with pytest.raises(ConfigError, match="is a file"):
        completer.personal.check_writable()


def test_the_default_place_is_the_users_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert default_user_data() == tmp_path / "seqtext" / "personal.json"
    assert default_user_data().name == "personal.json"


def test_many_words_are_pruned_to_the_budget(monkeypatch):
    import seqtext.keyboard.personal as personal

    monkeypatch.setattr(personal, "MAX_WORDS", 10)
    monkeypatch.setattr(personal, "MAX_PAIRS", 10)
    model = PersonalModel()
    model.learn("uno dos tres cuatro cinco seis siete ocho nueve diez once\nuno uno dos", save=False)
    assert len(model.words) == 9 and model.words["uno"] == 3 and model.words["dos"] == 2
    assert sum(map(len, model.follows.values())) <= 9
    assert [w for w, _ in model.candidates("", "u", 3)] == ["uno"]


def test_single_row_steps_run_on_one_thread_and_restore_the_callers(word_run, char_run):
    for run in (word_run, char_run):
        completer = seqtext.Completer(run)
        seen = []
        model = completer.reader.steps  # the model, or its int8 steps (keyboard/int8.py)
        for name in ("read", "read_rows"):  # a long read, and short ones (a batch of rows)
            original = getattr(model, name)

            def spy(*args, call=original, seen=seen, **kwargs):
                seen.append(torch.get_num_threads())
                return call(*args, **kwargs)

            setattr(model, name, spy)
        torch.set_num_threads(2)
        try:
            completer.suggest("Voy al parque con mi pe", 3)
            assert seen and set(seen) == {1}
            assert torch.get_num_threads() == 2  # the caller's setting, restored
            completer.threads = None  # the engine's choice off: the caller's setting reaches the model
            seen.clear()
            completer.suggest("Hoy hace sol en el pa", 3)
            assert set(seen) == {2}
        finally:
            torch.set_num_threads(1)


def test_a_failed_write_is_a_clear_error_and_keeps_the_old_file(word_run, tmp_path, monkeypatch):
    data = tmp_path / "personal.json"
    completer = seqtext.Completer(word_run, user_data=data)
    completer.learn("Hola Zorbaxa")
    before = data.read_text(encoding="utf-8")

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)  # as a read-only disk or a full one would
    with pytest.raises(ConfigError, match=r"--user-data .*personal.json: cannot write it \(Permission denied\)"):
        completer.learn("Adiós Zorbaxa")
    assert data.read_text(encoding="utf-8") == before and [p.name for p in tmp_path.iterdir()] == ["personal.json"]
    monkeypatch.undo()
    (tmp_path / "d").mkdir()
    with pytest.raises(CorpusError, match="not a regular file"):
        seqtext.Completer(word_run, user_data=tmp_path / "d")
    with pytest.raises(ConfigError, match="is a directory"):
        forget_file(tmp_path / "d")

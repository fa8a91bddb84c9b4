import pytest

from seqtext.config import LMConfig, TrainConfig, from_dict, parse_duration, to_dict
from seqtext.errors import ConfigError


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("45", 45)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "0s", "m"])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(ConfigError, match="--max-time"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"dropout": 1.0}, "--dropout"),
        ({"hidden_dim": 0}, "--hidden-dim"),
        ({"level": "byte"}, "--level"),
        ({"layers": 0}, "--layers"),
        ({"max_vocab": 3}, "--max-vocab"),
    ],
)
def test_lm_config_errors_speak_in_flags(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        LMConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"bptt": 0}, "--bptt"),
        ({"lr": -1.0}, "--lr"),
        ({"teacher_forcing": 1.5}, "--teacher-forcing"),
        ({"valid_fraction": 1.0}, "--valid-fraction"),
        ({"precision": "fp8"}, "--precision"),
        ({"max_time": 0.0}, "--max-time"),
    ],
)
def test_train_config_errors_speak_in_flags(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainConfig(**kwargs)


def test_configs_round_trip_through_json_dicts():
    config = LMConfig(level="word", cell="gru", tie_weights=True, vocab_size=99)
    assert from_dict(LMConfig, to_dict(config)) == config


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="no field"):
        from_dict(LMConfig, {"hidden_size": 3})


@pytest.mark.parametrize("option", [{"bptt": 64}, {"teacher_forcing": 0.5}])
def test_language_model_options_are_refused_for_classifiers(option):
    from seqtext.config import ClassifierTrainConfig

    with pytest.raises(ConfigError, match="apply to language models"):
        ClassifierTrainConfig(**option)

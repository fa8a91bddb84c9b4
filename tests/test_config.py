import pytest

from seqtext.config import LMConfig, TrainConfig, from_dict, to_dict
from seqtext.errors import ConfigError
from seqtext.limits import parse_duration


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


# Issue 9, class 4: values that are not numbers of the right kind are refused where a config is made,
# from the CLI, the Python API or a file alike.

import dataclasses  # noqa: E402
import math  # noqa: E402
import typing  # noqa: E402

from seqtext.config import ClassifierConfig, ClassifierTrainConfig  # noqa: E402

CONFIGS = (LMConfig, TrainConfig, ClassifierConfig, ClassifierTrainConfig)
FLOAT_FIELDS = [
    (cls, f.name)
    for cls in CONFIGS
    for f in dataclasses.fields(cls)
    if float in (typing.get_type_hints(cls)[f.name], *typing.get_args(typing.get_type_hints(cls)[f.name]))
]


@pytest.mark.parametrize(("cls", "name"), FLOAT_FIELDS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_field_refuses_non_finite_values(cls, name, value):
    if typing.get_origin(typing.get_type_hints(cls)[name]) is tuple:
        value = (0.5, value)  # a tuple of floats (LMConfig.ngram_weights): each item is checked
    if typing.get_origin(typing.get_type_hints(cls)[name]) is dict:
        value = {"training_words": value}  # a dict of floats (TrainConfig.embeddings_coverage): each value is checked
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be a finite number") as raised:
        cls(**{name: value})
    assert raised.value.field == name


def test_float_fields_are_found():
    names = {name for _, name in FLOAT_FIELDS}
    assert {"lr", "clip", "weight_decay", "dropout", "max_time", "teacher_forcing", "word_dropout"} <= names


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_dim": True}, "--hidden-dim must be a whole number (got true)"),
        ({"hidden_dim": 32.0}, "--hidden-dim must be a whole number (got 32.0)"),
        ({"dropout": "0.1"}, "--dropout must be a number (got '0.1')"),
        ({"tie_weights": 1}, "--tie-weights must be true or false (got 1)"),
        ({"cell": None}, "--cell must be one of rnn, lstm, gru, cifg (got null)"),
        ({"embed_dim": 100_000}, "--embed-dim must be between 1 and 65,536"),
    ],
)
def test_wrong_types_are_refused(kwargs, message):
    with pytest.raises(ConfigError) as raised:
        LMConfig(**kwargs)
    assert str(raised.value).startswith(message)


def test_ints_are_accepted_for_floats_and_stored_as_floats():
    config = TrainConfig(lr=1, clip=2)
    assert isinstance(config.lr, float) and config.clip == 2.0


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, "--seed must be between 0 and 4,294,967,295"),
        (2**32, "--seed must be between 0 and 4,294,967,295"),
        (2**70, r"--seed is out of range \(got a number of 22 digits\)"),  # beyond 64 bits: refused by its type
    ],
)
def test_seeds_must_fit_the_generators(seed, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(seed=seed)


@pytest.mark.parametrize("text", ["9" * 400, "1e9999s"])
def test_durations_must_be_finite(text):
    with pytest.raises(ConfigError, match="--max-time"):
        parse_duration(text)

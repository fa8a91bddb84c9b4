"""The options of `train lm`, `train classifier` and `serve` are their config dataclasses' fields: every field
is an option (or named below as one the command does not offer), an option left out gives the field's
default, and a field's `Literal` type is the option's list of choices. Checked through the command line
itself: the configs a command builds are caught where it hands them to the public API."""

import dataclasses
import re
import typing
from typing import Any

import pytest
import typer
from helpers import invoke

import seqtext
import seqtext.serve
from seqtext.cli import app
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import SeqtextError
from seqtext.presets import PRESETS
from seqtext.serve.config import ServeConfig

# set by training (the tokenizer, the validation text, the vectors file, a budget recipe), never typed
DERIVED = {"vocab_size", "char_vocab", "ngram_weights", "lexicon_weight", "embeddings_coverage", "chosen"}
DERIVED |= {"ngram_oov_weights", "memory_weights"}
LM_ONLY = {"bptt", "teacher_forcing", "ngram", "ngram_order", "ngram_mb", "fp16_weights", "sampled_softmax"}
LM_ONLY |= {"lexicon", "lexicon_words", "memory"}
COMMANDS = {  # the arguments before the options, where the configs go, the configs, the fields it does not offer
    "train lm": (["train", "lm", "corpus.txt"], "train_lm", (LMConfig, TrainConfig), DERIVED | {"data"}),
    "train classifier": (
        ["train", "classifier", "corpus.tsv"],
        "train_classifier",
        (ClassifierConfig, ClassifierTrainConfig),
        DERIVED | LM_ONLY | {"data"},
    ),
    "serve": (["serve", "runs/x"], "run", (ServeConfig,), set()),
}
NOT_FIELDS = {"ctx", "data", "runs", "resume", "preset", "plot"}  # --preset picks field values; --plot draws


class Caught(SeqtextError):
    """Raised by the stand-in for the public API once it has the configs: nothing is trained or served."""


def configs_built(monkeypatch, command: str, *options: str) -> Any:
    """The configs the command hands to the public API, or the CLI's result when it refused the options."""
    args, target, _, _ = COMMANDS[command]
    caught = []

    def stand_in(*configs, **_):
        caught.extend(c for c in configs if dataclasses.is_dataclass(c))
        raise Caught("caught")

    if command == "serve":
        monkeypatch.setattr(seqtext.serve, "require_extra", lambda: None)
        monkeypatch.setattr(seqtext.serve, "load_runs", lambda runs, device, user_data=None: {}, raising=False)
        monkeypatch.setattr(seqtext.serve, "run", stand_in)
    else:
        monkeypatch.setattr(seqtext, target, stand_in, raising=False)
    result = invoke(*args, *options)
    return tuple(caught) if caught else result


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_is_an_option(command):
    args, _, configs, not_offered = COMMANDS[command]
    click_command = typer.main.get_command(app)
    for name in args[: 2 if command.startswith("train") else 1]:
        click_command = click_command.commands[name]
    options = {p.name for p in click_command.params} - NOT_FIELDS
    fields = {f.name for config in configs for f in dataclasses.fields(config)} - not_offered
    assert options == fields


@pytest.mark.parametrize("command", COMMANDS)
def test_options_left_out_are_the_fields_defaults(command, monkeypatch):
    configs = configs_built(monkeypatch, command)
    assert isinstance(configs, tuple), configs.output
    args, _, classes, _ = COMMANDS[command]
    typed = {"data": args[-1]} if command.startswith("train") else {}  # the argument before the options
    assert configs == tuple(cls(**{k: v for k, v in typed.items() if k in cls.__dataclass_fields__}) for cls in classes)


def literal_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    """(command, field, choices) for every field of a command's configs whose type is a Literal."""
    cases = [("train lm", "preset", tuple(PRESETS))]
    for command, (_, _, configs, not_offered) in COMMANDS.items():
        for config in configs:
            for name, hint in typing.get_type_hints(config).items():
                if typing.get_origin(hint) is typing.Literal and name not in not_offered:
                    cases.append((command, name, typing.get_args(hint)))
    return cases


def one_line(text: str) -> str:
    """An error box's text with its frame and line breaks gone."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(("command", "field", "choices"), literal_fields(), ids=lambda v: str(v))
def test_a_literal_field_is_the_options_choices(command, field, choices, monkeypatch):
    flag = "--" + field.replace("_", "-")
    refused = configs_built(monkeypatch, command, flag, "no-such-choice")
    assert refused.exit_code == 2
    listed = ", ".join(f"'{c}'" for c in choices)
    assert f"'no-such-choice' is not one of {listed}." in one_line(refused.stderr), refused.stderr
    for choice in choices:
        configs = configs_built(monkeypatch, command, flag, choice)
        if field == "preset":
            assert isinstance(configs, tuple), configs.output
            continue
        assert any(getattr(c, field, None) == choice for c in configs), (choice, configs)

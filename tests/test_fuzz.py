"""Fuzzed readers (issue 9, class 8): random bytes, random Unicode, ragged tables and random JSON fed
to the corpus readers, the table readers, the config loader and the resume-state loader. The only
outcomes allowed are a result or a SeqtextError. Derandomized with a bounded number of examples, so
CI is deterministic and fast."""

import io
import json
import shutil
import string
from pathlib import Path

import pytest
import torch
from helpers import copy_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqtext
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig, from_dict
from seqtext.data import read_prompt, read_texts
from seqtext.errors import SeqtextError
from seqtext.models import RNNLanguageModel, on_meta
from seqtext.runs import resume
from seqtext.sentiment.inputs import read_inputs
from seqtext.sentiment.labelled import read_labelled
from seqtext.textfiles import text_lines
from seqtext.training.loop import _Counters

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Values near the valid ones, so that checks past the first (types) are reached too.
PLAUSIBLE = (
    st.integers(-3, 70)
    | st.sampled_from([0.0, 0.5, 1.0, 1e-3, float("nan"), float("inf"), True, False, None, "lstm", "char", "line"])
    | JSON
)
FIELD_TEXT = st.text(alphabet=string.ascii_letters + " \t,\"'\n\\\x00é¿😀", max_size=12)


def outcome(read):
    """Run a reader; a SeqtextError is a fine answer, anything else fails the test."""
    try:
        return read()
    except SeqtextError:
        return None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def fresh(scratch: Path, name: str) -> Path:
    """A new file name for every example (the table reader caches by file)."""
    fresh.count = getattr(fresh, "count", 0) + 1
    folder = scratch / str(fresh.count)
    folder.mkdir()
    return folder / name


@FAST
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".txt", ".text", ""]))
def test_corpus_reader_on_random_bytes(scratch, data, suffix):
    path = fresh(scratch, "corpus" + suffix)
    path.write_bytes(data)
    texts = outcome(lambda: read_texts(path))
    assert texts is None or all(isinstance(t, str) and "\ufeff" not in t[:1] for t in texts)
    outcome(lambda: read_prompt(path))
    outcome(lambda: list(text_lines(io.BytesIO(data), "standard input")))


@FAST
@given(text=st.text(max_size=300))
def test_corpus_reader_on_random_unicode(scratch, text):
    path = fresh(scratch, "corpus.txt")
    path.write_text(text, encoding="utf-8", newline="")
    texts = outcome(lambda: read_texts(path))
    assert texts is None or all("\x00" not in t for t in texts)


def ragged_table(separator: str):
    header = st.lists(
        st.sampled_from(["PhraseId", "SentenceId", "Phrase", "Sentiment", "text", "label", "x"]) | FIELD_TEXT,
        min_size=1,
        max_size=5,
    )
    rows = st.lists(st.lists(FIELD_TEXT | st.integers(-2, 6).map(str), max_size=6), max_size=8)
    return st.tuples(header, rows).map(
        lambda hr: "".join(separator.join(row) + "\n" for row in [hr[0], *hr[1]]).encode("utf-8")
    )


@SLOW
@given(
    table=st.one_of(
        ragged_table("\t").map(lambda b: ("t.tsv", b)),
        ragged_table(",").map(lambda b: ("t.csv", b)),
        st.lists(
            st.dictionaries(st.sampled_from(["text", "label", "SentenceId", "Phrase"]), JSON, max_size=4), max_size=5
        )
        .map(lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
        .map(lambda b: ("t.jsonl", b)),
        st.binary(max_size=200).map(lambda b: ("t.parquet", b)),
    )
)
def test_table_readers_on_ragged_tables(scratch, table):
    name, content = table
    path = fresh(scratch, name)
    path.write_bytes(content)
    outcome(lambda: read_labelled(path))
    outcome(lambda: read_texts(path))

    def classify_inputs():
        inputs = read_inputs(str(path))
        return [texts for texts, _ in inputs.chunks]

    outcome(classify_inputs)


@FAST
@given(
    cls=st.sampled_from([LMConfig, TrainConfig, ClassifierConfig, ClassifierTrainConfig]),
    data=st.dictionaries(st.text(max_size=12), JSON, max_size=5) | JSON,
)
def test_config_loader_on_random_json(cls, data):
    outcome(lambda: from_dict(cls, data))
    outcome(lambda: from_dict(cls, data, complete=True))


MODEL_FIELDS = [
    "level", "cell", "embed_dim", "hidden_dim", "layers", "dropout", "tie_weights", "max_vocab", "sample_by",
    "vocab_size",
]  # fmt: skip


@SLOW
@given(
    edits=st.dictionaries(st.sampled_from(MODEL_FIELDS) | st.text(max_size=6), PLAUSIBLE, min_size=1, max_size=3),
    header=st.dictionaries(st.sampled_from(["format_version", "kind", "model"]), PLAUSIBLE, max_size=2),
)
def test_run_loader_on_edited_config_json(char_run, scratch, edits, header):
    run = fresh(scratch, "run")
    shutil.copytree(char_run, run)
    saved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    saved["model"].update(edits)
    saved.update(header)
    (run / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    loaded = outcome(lambda: seqtext.load(run))
    if loaded is not None:  # what loads must work
        outcome(lambda: seqtext.generate(loaded, "Mi ", max_new_tokens=3))


STATE_FIELDS = [
    "step", "epoch", "position", "best_score", "best_step", "best_metrics", "bad_evals", "seconds", "eval_seconds",
    "tokens", "torch_rng", "kind", "model_config", "train_config", "sources", "param_groups",
]  # fmt: skip


def resume_state(run: Path) -> None:
    """What --resume reads before it trains: the saved configs, the tensors, the counters."""
    model_config, _ = resume.saved_configs(run)
    if sum(p.numel() for p in on_meta(RNNLanguageModel, model_config).parameters()) > 10**6:
        return  # training refuses what does not fit (runtime.check_fits); no need to allocate it here
    model = RNNLanguageModel(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    saved, _ = resume.load_resume_state(run, model, optimizer, torch.device("cpu"))
    _Counters.resumed(saved, run / "trainer_state.json")
    torch.set_rng_state(torch.tensor(saved["torch_rng"], dtype=torch.uint8))


@SLOW
@given(edits=st.dictionaries(st.sampled_from(STATE_FIELDS) | st.text(max_size=6), PLAUSIBLE, min_size=1, max_size=3))
def test_resume_state_loader_on_edited_trainer_state(interrupted_run, scratch, edits):
    run = copy_run(interrupted_run, fresh(scratch, "run"))
    state = json.loads((run / "trainer_state.json").read_text(encoding="utf-8"))
    state.update(edits)
    (run / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    rng = torch.get_rng_state()
    try:
        outcome(lambda: resume_state(run))
    finally:
        torch.set_rng_state(rng)


@SLOW
@given(data=st.binary(max_size=400), keep=st.integers(0, 4000))
def test_resume_state_loader_on_damaged_files(interrupted_run, scratch, data, keep):
    run = copy_run(interrupted_run, fresh(scratch, "run"))
    original = (run / "optimizer.safetensors").read_bytes()
    (run / "optimizer.safetensors").write_bytes(original[:keep] + data)
    (run / "trainer_state.json").write_bytes(data[:200])
    outcome(lambda: resume_state(run))
    outcome(lambda: resume.saved_configs(run))

"""The keyboard's Kneser-Ney n-gram: hand-computed probabilities, distributions that sum to 1,
pruning to a budget, the saved file and its bad-input cases, and the mix with the recurrent model."""

import json

import pytest
import torch
from helpers import SENTENCES, TINY_MODEL, TINY_TRAIN, copy_run, invoke

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.ngram import build_ngram, modified_discounts
from seqtext.keyboard.ngramfile import NGRAM_FILE, load_ngram, save_ngram

HAND = ["a b", "c b", "a c"]  # worked by hand below, with every discount 0.5


def test_modified_discounts_by_hand():
    d1, d2, d3 = modified_discounts({1: 10, 2: 5, 3: 3, 4: 2})  # Y = 10 / (10 + 2·5) = 0.5
    assert (d1, d2, d3) == pytest.approx((1 - 2 * 0.5 * 5 / 10, 2 - 3 * 0.5 * 3 / 5, 3 - 4 * 0.5 * 2 / 3))


def test_bigram_probabilities_by_hand():
    # Continuation counts: a ← {<s>}, b ← {a, c}, c ← {<s>, a}, </s> ← {b, c}: 1, 2, 2, 2 of 7, and the
    # unigram's gamma 4 · 0.5 / 7 spread over the 4 words: p(a) = 1/7, p(b) = p(c) = p(</s>) = 2/7.
    model = build_ngram(HAND, order=2, discounts=(0.5, 0.5, 0.5))
    assert model.prob("a", "") != model.prob("a", "x")  # "" is the line start: context <s>
    unigram = {w: float(model.unigram[model.ids[w]]) for w in ("a", "b", "c", "</s>")}
    assert unigram == pytest.approx({"a": 1 / 7, "b": 2 / 7, "c": 2 / 7, "</s>": 2 / 7})
    # After "a": b and c seen once each of 2: alpha 0.5/2, gamma 2 · 0.5/2 = 0.5.
    assert model.prob("b", "a") == pytest.approx(0.25 + 0.5 * 2 / 7, rel=1e-3)
    assert model.prob("a", "a") == pytest.approx(0.5 * 1 / 7, rel=1e-3)
    # After <s>: a twice, c once of 3: alpha 1.5/3, gamma 1/3.
    assert model.prob("a", "") == pytest.approx(0.5 + 1 / 21, rel=1e-3)


def test_lower_orders_count_from_the_line_start_by_raw_counts():
    # A trigram model has no <s> <s> context: "a" at the line start uses the bigram (<s>, a), raw counts.
    model = build_ngram(HAND, order=3, discounts=(0.5, 0.5, 0.5))
    assert model.prob("a", "") == pytest.approx(0.5 + 1 / 21, rel=1e-3)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("budget", [None, 600])
def test_every_distribution_sums_to_one(order, budget):
    model = build_ngram(SENTENCES * 3, order=order, budget_bytes=budget)
    for text in ("", "Voy al", "Mi perro", "¿Quedamos", "palabra desconocida"):
        dist = model.dist(model.history(text))
        assert float(dist.sum()) == pytest.approx(1.0, abs=1e-5), text
        assert float(dist[0]) == 0.0, "<s> is never predicted"


def test_pruning_fits_the_budget_and_keeps_the_frequent():
    lines = SENTENCES * 5 + [f"Voy al sitio número {i}." for i in range(200)]
    full = build_ngram(lines, order=3)
    pruned = build_ngram(lines, order=3, budget_bytes=full.size_bytes() // 2)
    assert pruned.size_bytes() <= full.size_bytes() // 2
    assert pruned.prob("sitio", "Voy al") > 0.9  # "Voy al sitio" (200 times) is kept, "número 7." is not
    assert pruned.prob("sitio", "Voy al") == pytest.approx(full.prob("sitio", "Voy al"), rel=1e-2)
    assert sum(len(t.words) for t in pruned.tables) < sum(len(t.words) for t in full.tables)


BUILT: dict = {}  # what ngram_run's training said about the n-gram it built


@pytest.fixture(scope="module")
def ngram_run(lines_file, tmp_path_factory):
    """A tiny word-level run with an n-gram; its vocabulary (max_vocab 30) lacks some words."""
    out = tmp_path_factory.mktemp("runs") / "with-ngram"
    corpus = tmp_path_factory.mktemp("corpus") / "frases.txt"
    corpus.write_text(lines_file.read_text(encoding="utf-8") + "Voy al parque con mi periquito.\n", encoding="utf-8")
    result = seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, "level": "word", "max_vocab": 30}),
        TrainConfig(data=str(corpus), out=str(out), ngram=True, **TINY_TRAIN),
    )
    BUILT.update(result.extras["ngram"])
    return out


def test_the_order_below_is_tried_and_the_better_mix_kept(ngram_run):
    summary = BUILT
    nats = summary["nats_by_order"]
    assert set(nats) == {3, 4}, "--ngram-order 4 tries the 4-gram and the 3-gram"
    assert summary["order"] == min(nats, key=nats.__getitem__)
    assert summary["nats_per_word_chosen"] == nats[summary["order"]]
    assert load_ngram(ngram_run, seqtext.load(ngram_run).tokenizer).order == summary["order"]


def test_training_saves_the_ngram_and_its_weight(ngram_run):
    lm = seqtext.load(ngram_run)
    assert (ngram_run / NGRAM_FILE).is_file()
    order = load_ngram(ngram_run, lm.tokenizer).order
    assert len(lm.config.ngram_weights) == order and all(0 < w < 1 for w in lm.config.ngram_weights)
    saved = json.loads((ngram_run / "config.json").read_text())["model"]["ngram_weights"]
    assert tuple(saved) == lm.config.ngram_weights


def test_saved_ngram_round_trips(ngram_run, tmp_path):
    lm = seqtext.load(ngram_run)
    model = build_ngram(SENTENCES, order=3)
    run = copy_run(ngram_run, tmp_path / "run")
    save_ngram(run, model, lm.tokenizer)
    again = load_ngram(run, lm.tokenizer)
    assert again.vocab == model.vocab and again.order == 3
    for text in ("", "Voy al", "Mi perro come"):
        assert torch.equal(again.dist(again.history(text)), model.dist(model.history(text)))


def test_open_vocabulary_offers_words_the_model_lacks(ngram_run):
    lm = seqtext.load(ngram_run)
    assert "▁periquito" not in lm.tokenizer.get_vocab()
    mixed = [c.word for c in Completer(lm).suggest("Voy al parque con mi peri", k=3)]
    assert mixed[:1] == ["periquito"]
    assert "periquito" not in [c.word for c in Completer(lm, ngram=False).suggest("Voy al parque con mi peri", k=3)]
    ranked = Completer(lm).suggest("Voy al parque con mi pe", k=3)
    assert [c.word for c in ranked][:2] == ["perro", "periquito"]  # the frequent word first, by the mix
    assert ranked[0].prob > ranked[1].prob


def test_run_without_ngram_completes_with_the_model_alone(ngram_run, tmp_path):
    run = copy_run(ngram_run, tmp_path / "run")
    (run / NGRAM_FILE).unlink()
    completer = Completer(run)
    assert completer.mixer is None
    assert completer.suggest("Voy al parque con mi pe", k=3)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a complete safetensors file"),
        (lambda p: p.write_bytes(b"\x00" * 64), "not a complete safetensors file"),
    ],
)
def test_damaged_ngram_file_is_one_clear_error(ngram_run, tmp_path, damage, message):
    run = copy_run(ngram_run, tmp_path / "run")
    damage(run / NGRAM_FILE)
    with pytest.raises(CheckpointError, match=message) as info:
        Completer(run)
    assert NGRAM_FILE in str(info.value) and "\n" not in str(info.value)
    assert Completer(run, ngram=False).suggest("Voy al ", k=1)  # --no-ngram still types


def test_ngram_file_missing_a_tensor_is_refused(ngram_run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = copy_run(ngram_run, tmp_path / "run")
    path = run / NGRAM_FILE
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    del tensors["order2.alpha"]
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"'order2\.alpha' is missing"):
        Completer(run)


def test_ngram_of_another_vocabulary_is_refused(ngram_run, word_run, tmp_path):
    run = copy_run(word_run, tmp_path / "run")  # another run, another tokenizer
    (run / NGRAM_FILE).write_bytes((ngram_run / NGRAM_FILE).read_bytes())
    config = json.loads((run / "config.json").read_text())
    config["model"]["ngram_weights"] = [0.3] * 4
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="built for another vocabulary"):
        Completer(run)


def test_char_model_cannot_take_an_ngram(lines_file, tmp_path):
    with pytest.raises(ConfigError, match="--no-ngram"):
        seqtext.train_lm(LMConfig(**TINY_MODEL), TrainConfig(data=str(lines_file), out=str(tmp_path / "c"), ngram=True))


def test_cli_ngram_flags_end_to_end(lines_file, tmp_path):
    out = tmp_path / "kb"
    args = ["train", "lm", str(lines_file), "--out", str(out), "--preset", "keyboard", "--embed-dim", "16"]
    args += ["--hidden-dim", "32", "--epochs", "2", "--max-vocab", "40", "--batch-size", "8", "--device", "cpu"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "n-gram" in result.stderr and (out / NGRAM_FILE).is_file()
    text = "Voy al parque con mi pe"
    mixed = invoke("complete", out, "--text", text, "--json")
    alone = invoke("complete", out, "--text", text, "--json", "--no-ngram")
    assert mixed.exit_code == 0 and alone.exit_code == 0, mixed.output + alone.output
    assert json.loads(mixed.stdout) != json.loads(alone.stdout)
    figures = {}
    for flag in ([], ["--no-ngram"]):
        result = invoke("evaluate", out, lines_file, "--keyboard", "--json", *flag)
        assert result.exit_code == 0, result.output
        figures[bool(flag)] = json.loads(result.stdout)["ksr"]
    assert figures[False] != figures[True]
    no_ngram = invoke(*args[:4], tmp_path / "plain", *args[5:], "--no-ngram")
    assert no_ngram.exit_code == 0, no_ngram.output
    assert not (tmp_path / "plain" / NGRAM_FILE).exists()
    assert seqtext.load(tmp_path / "plain").config.ngram_weights == ()


def test_fp16_weights_halve_the_file_and_keep_the_answers(lines_file, tmp_path):
    runs = {}
    for half in (False, True):
        runs[half] = tmp_path / f"half-{half}"
        seqtext.train_lm(
            LMConfig(**{**TINY_MODEL, "level": "word"}),
            TrainConfig(data=str(lines_file), out=str(runs[half]), fp16_weights=half, **TINY_TRAIN),
        )
    sizes = {half: (run / "model.safetensors").stat().st_size for half, run in runs.items()}
    assert sizes[True] < 0.6 * sizes[False]
    ids = torch.tensor([[2, 5, 6, 7]])
    full, half = (seqtext.load(runs[h]).model(ids)[0] for h in (False, True))
    assert half.dtype == torch.float32
    assert torch.allclose(full, half, atol=2e-2)
    text = "Voy al parque con mi "
    assert [c.word for c in seqtext.complete(runs[True], text)] == [c.word for c in seqtext.complete(runs[False], text)]


def test_classifier_refuses_the_keyboard_options():
    from seqtext.config import ClassifierTrainConfig

    for option in ({"ngram": True}, {"ngram_mb": 3.0}, {"fp16_weights": True}):
        with pytest.raises(ConfigError):
            ClassifierTrainConfig(**option)


def test_longest_known_context_order_picks_the_weight():
    model = build_ngram(HAND, order=3, discounts=(0.5, 0.5, 0.5))
    assert model.dist_and_order(model.history(""))[1] == 2  # (<s>) is a bigram context
    assert model.dist_and_order(model.history("a"))[1] == 3  # (<s>, a) is a trigram context
    assert model.dist_and_order(model.history("zzz"))[1] == 1  # an unknown word: the unigrams alone


def test_weights_that_do_not_fit_the_ngram_are_refused(ngram_run, tmp_path):
    run = copy_run(ngram_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"]["ngram_weights"] = [0.3, 0.4]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"ngram_weights has 2 values but the n-gram is of order [34]"):
        Completer(run)
    config["model"]["ngram_weights"] = [1.5] * 4
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="ngram_weights"):
        seqtext.load(run)

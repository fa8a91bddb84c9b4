"""Pretrained word vectors (--embeddings): the reader (formats, folding, coverage, every bad file), and
training with them: classifier and word language model, frozen or fine-tuned, resumed, and classifying
once the file is gone."""

import gzip
import json
import re
import subprocess
import sys
import tracemalloc
from dataclasses import replace

import pytest
import torch
from helpers import PHRASES, ROOT, TINY_MODEL, TINY_TRAIN, assert_clean_error, interrupt_at, invoke, needs_shared_data
from safetensors.torch import load_file

import seqtext
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import ConfigError, CorpusError, TrainingStopped
from seqtext.sentiment.classification import encode_texts
from seqtext.vectors import frequent_words, read_vectors, vector_dim

DIM = 8
TINY_CLF = {"embed_dim": DIM, "hidden_dim": 16, "dropout": 0.0}
TINY_CLF_TRAIN = {"batch_size": 32, "epochs": 2, "precision": "fp32", "device": "cpu"}
VOCAB = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, "▁film": 4, "film": 5, "▁Café": 6, "▁Apple": 7, "▁zzz": 8}


def vector(seed: int) -> list[float]:
    return [round((seed * 7 + i * 3) % 11 / 10 - 0.5, 2) for i in range(DIM)]


def row(word: str, seed: int) -> str:
    return word + " " + " ".join(str(x) for x in vector(seed)) + "\n"


def glove(tmp_path, rows: str, name: str = "vectors.txt", compress: bool = False):
    path = tmp_path / name
    path.write_bytes(gzip.compress(rows.encode()) if compress else rows.encode())
    return path


def phrase_words() -> list[str]:
    """The words of the shipped phrases, lower-cased, as the word tokenizer cuts them."""
    text = PHRASES.read_text(encoding="utf-8").lower()
    return sorted(set(re.findall(r"\w+|[^\w\s]", text)) - {"phraseid", "sentenceid", "phrase", "sentiment"})


@pytest.fixture(scope="module")
def phrase_vectors(tmp_path_factory):
    """GloVe-style vectors for two thirds of the phrases' words, plus words the phrases lack."""
    words = phrase_words()
    kept = [w for i, w in enumerate(words) if i % 3]
    extra = ["unseenword", "anotherword"]
    path = tmp_path_factory.mktemp("vectors") / "tiny.6B.8d.txt"
    path.write_text("".join(row(w, i) for i, w in enumerate(kept + extra)), encoding="utf-8")
    return path


# The reader


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("header", [False, True])
def test_glove_and_vec_files_plain_or_gzip_give_the_same_vectors(tmp_path, compress, header):
    rows = row("film", 1) + row("café", 2) + row("apple", 3) + row("Apple", 4)
    text = (f"4 {DIM}\n" if header else "") + rows.replace("\n", " \n" if header else "\n")  # .vec: trailing space
    path = glove(tmp_path, text, "v.vec.gz" if compress else "v.vec", compress)
    vectors = read_vectors(path, VOCAB)
    assert vectors.dim == DIM and vectors.rows == 4 and vector_dim(path) == DIM
    assert vectors.found.tolist() == [False] * 4 + [True, True, True, True, False]
    assert vectors.weight[4].tolist() == pytest.approx(vector(1)) and torch.equal(vectors.weight[4], vectors.weight[5])
    assert vectors.weight[6].tolist() == pytest.approx(vector(2))  # "▁Café" lower-cased
    assert vectors.weight[7].tolist() == pytest.approx(vector(4))  # the exact "Apple" beats the earlier "apple"
    assert vectors.weight[8].abs().sum() == 0


def test_accents_fold_after_case(tmp_path):
    vectors = read_vectors(glove(tmp_path, row("cafe", 1) + row("film", 2)), VOCAB)
    assert vectors.weight[6].tolist() == pytest.approx(vector(1))  # "Café" → "café" → "cafe"


def test_a_byte_order_mark_is_no_part_of_the_first_word(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_text("\ufeff" + row("film", 1), encoding="utf-8")
    assert read_vectors(path, VOCAB).weight[5].tolist() == pytest.approx(vector(1))


def test_the_file_is_streamed_not_held(tmp_path):
    """Only the vocabulary's rows are kept: reading a file costs far less memory than the file."""
    path = tmp_path / "big.txt"
    with path.open("w", encoding="utf-8") as out:
        for i in range(20_000):
            out.write(row(f"w{i}", i))
    tracemalloc.start()
    try:
        read_vectors(path, VOCAB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < path.stat().st_size / 10, (peak, path.stat().st_size)


def test_coverage_counts_words_and_training_tokens(tmp_path):
    vectors = read_vectors(glove(tmp_path, row("film", 1)), VOCAB)
    counts = torch.tensor([0, 2, 9, 9, 5, 1, 1, 0, 1])  # <bos>/<eos> are not words; <unk> is a word not found
    expected = {"training_words": pytest.approx(2 / 4), "training_tokens": pytest.approx(6 / 10)}  # ▁zzz: 1
    assert vectors.coverage(counts) == expected


def test_frequent_words_are_the_first_rows_that_are_one_token(tmp_path):
    path = glove(tmp_path, "".join(row(w, i) for i, w in enumerate(["the", "n't", "film", "e-mail", "movie", "late"])))
    assert frequent_words(path, 5, known={"film"}) == ["the", "movie"]


def test_a_word_with_spaces_is_read_whole(tmp_path):
    vectors = read_vectors(glove(tmp_path, row("film", 1) + row(". . .", 2)), {**VOCAB, "▁. . .": 9})
    assert vectors.found[9] and vectors.weight[9].tolist() == pytest.approx(vector(2))


def numbers(n: int) -> str:
    return " ".join(["0.5"] * n)


BAD_FILES = {
    "empty": (b"", None, "is empty"),
    "blank": (b"\n \n", None, "is empty"),
    "ragged": (f"film {numbers(DIM)}\ncafe {numbers(DIM - 1)}\n".encode(), 2, f"has {DIM - 1} numbers, not {DIM}"),
    "too long": (f"film {numbers(DIM)}\ncafe {numbers(DIM + 2)}\n".encode(), 2, f"has {DIM + 2} numbers, not {DIM}"),
    "not a number": (f"film {numbers(DIM - 1)} abc\n".encode(), 1, "'abc' is not a number"),
    "nan": (f"film {numbers(DIM - 1)} nan\n".encode(), 1, "infinite or NaN"),
    "header count": (f"3 {DIM}\nfilm {numbers(DIM)}\n".encode(), 2, "announces 3 vectors but the file holds 1"),
    "header dimension": (f"1 {DIM + 1}\nfilm {numbers(DIM)}\n".encode(), 2, f"has {DIM} numbers, not {DIM + 1}"),
    "no numbers": (b"film\ncafe\n", 1, "a word without numbers"),
    "header alone": (f"0 {DIM}\n".encode(), 1, "holds no vectors after its header line"),
    "absurd dimension": (b"3 100000000\nfilm 0.5\n", 1, "more than an embedding holds (65,536)"),
    "binary word2vec": (b"2 8\nfilm " + bytes(range(0, 32)) + b"\ncafe ", 2, "binary word2vec"),
    "binary fastText": (b"\xba\x16\x4f\x2f\x0c\x00\x00\x00" + bytes(range(32)), 1, "not a binary .bin file"),
    "binary, not utf-8": (b"2 8\nfilm \xff\xfe\x80\x81abcd\n", 2, "binary word2vec"),
    "invalid utf-8": (f"film {numbers(DIM)}\n".encode() + b"caf\xe9 " + numbers(DIM).encode() + b"\n", 2, "UTF-8"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_vectors_file_is_one_line_naming_file_and_line(tmp_path, name):
    content, line, problem = BAD_FILES[name]
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError) as caught:
        read_vectors(path, VOCAB)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and problem in message
    assert (f"line {line}:" in message) if line else not re.search(r"line \d", message)


def test_gzip_that_is_not_gzip_and_gzip_cut_short(tmp_path):
    fake = glove(tmp_path, row("film", 1), "v.txt.gz")
    with pytest.raises(CorpusError, match=r"v\.txt\.gz: is named \.gz but is not gzip-compressed; rename it"):
        read_vectors(fake, VOCAB)
    whole = gzip.compress("".join(row(f"w{i}", i) for i in range(2000)).encode())
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorpusError, match=r"cut\.txt\.gz, line [\d,]+: the gzip data is damaged or cut short"):
        read_vectors(cut, VOCAB)


# Training with vectors


def train_clf(out, vectors, model=None, **train):
    seqtext.train_classifier(
        ClassifierConfig(**{**TINY_CLF, **(model or {})}),
        ClassifierTrainConfig(data=str(PHRASES), out=str(out), embeddings=str(vectors), **{**TINY_CLF_TRAIN, **train}),
    )
    return out


def test_frozen_vectors_stay_and_the_run_classifies_without_the_file(tmp_path, phrase_vectors):
    local = tmp_path / "vectors.txt"
    local.write_bytes(phrase_vectors.read_bytes())
    run = train_clf(tmp_path / "run", local, freeze_embeddings=True)
    weight = load_file(str(run / "model.safetensors"))["embed.weight"]
    expected = read_vectors(local, seqtext.load(run).tokenizer.get_vocab())
    assert torch.equal(weight[expected.found], expected.weight[expected.found])  # unchanged by training
    recipe = json.loads((run / "train_config.json").read_text(encoding="utf-8"))
    assert recipe["embeddings"] == str(local) and recipe["freeze_embeddings"] is True
    coverage = recipe["embeddings_coverage"]
    assert 0.55 < coverage["training_words"] < 0.75 and 0 < coverage["training_tokens"] <= 1
    before = seqtext.classify(run, ["a warm , funny film", "dull and lifeless"])
    local.unlink()  # the run holds the vectors in its weights
    assert seqtext.classify(seqtext.load(run), ["a warm , funny film", "dull and lifeless"]) == before


def test_fine_tuned_vectors_start_from_the_file_and_move(tmp_path, phrase_vectors):
    run = train_clf(tmp_path / "run", phrase_vectors)
    expected = read_vectors(phrase_vectors, seqtext.load(run).tokenizer.get_vocab())
    weight = load_file(str(run / "model.safetensors"))["embed.weight"]
    assert not torch.equal(weight[expected.found], expected.weight[expected.found])
    assert torch.allclose(weight[expected.found], expected.weight[expected.found], atol=0.2)


def test_embeddings_vocab_adds_the_files_frequent_words(tmp_path, phrase_vectors):
    run = train_clf(tmp_path / "run", phrase_vectors, embeddings_vocab=10_000, freeze_embeddings=True)
    clf = seqtext.load(run)
    unseen = clf.tokenizer.token_to_id("▁unseenword")
    assert unseen is not None and encode_texts(clf.tokenizer, clf.config, ["unseenword"]) == [[unseen]]
    weight = load_file(str(run / "model.safetensors"))["embed.weight"]
    assert weight[unseen].tolist() == pytest.approx(vector(len([w for i, w in enumerate(phrase_words()) if i % 3])))


def test_a_conflicting_embed_dim_and_other_misuses_are_refused(tmp_path, phrase_vectors):
    with pytest.raises(ConfigError, match=rf"--embed-dim is 16 but --embeddings .* holds {DIM}-dimensional .* 8"):
        train_clf(tmp_path / "a", phrase_vectors, model={"embed_dim": 16})
    with pytest.raises(ConfigError, match="--level char"):
        train_clf(tmp_path / "b", phrase_vectors, model={"level": "char"})
    with pytest.raises(ConfigError, match="give them with --embeddings"):
        ClassifierTrainConfig(freeze_embeddings=True)
    with pytest.raises(ConfigError, match="--init-from and --embeddings"):
        ClassifierTrainConfig(embeddings="v.txt", init_from="lm")
    assert not (tmp_path / "a").exists()


def test_vectors_of_none_of_the_training_words_are_refused(tmp_path):
    other = glove(tmp_path, row("perro", 1) + row("gato", 2))
    with pytest.raises(CorpusError, match=r"none of the training text's words has a vector in its 2 rows"):
        train_clf(tmp_path / "run", other)


def test_resume_with_vectors_ends_like_the_straight_run(tmp_path, phrase_vectors):
    options = {"epochs": 2, "patience": 0, "eval_every": 5}
    straight = train_clf(tmp_path / "straight", phrase_vectors, **options)
    model_config = ClassifierConfig(**TINY_CLF)
    copy = tmp_path / "moved.txt"  # the same bytes under another name are the same data
    copy.write_bytes(phrase_vectors.read_bytes())
    train_config = ClassifierTrainConfig(
        data=str(PHRASES),
        out=str(tmp_path / "resumed"),
        embeddings=str(phrase_vectors),
        **{**TINY_CLF_TRAIN, **options},
    )
    with pytest.raises(TrainingStopped):
        seqtext.train_classifier(model_config, train_config, callback=interrupt_at(7))
    other = glove(tmp_path, row("film", 1) + row("warm", 2))
    with pytest.raises(ConfigError, match=r"--embeddings is .* but the run .* was started with"):
        seqtext.train_classifier(model_config, replace(train_config, embeddings=str(other)), resume=True)
    seqtext.train_classifier(model_config, replace(train_config, embeddings=str(copy)), resume=True)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    recipes = [
        json.loads((r / "train_config.json").read_text(encoding="utf-8")) for r in (straight, tmp_path / "resumed")
    ]
    assert recipes[0]["embeddings_coverage"] == recipes[1]["embeddings_coverage"] != {}


def test_resume_needs_no_vectors_file(tmp_path, phrase_vectors):
    local = tmp_path / "vectors.txt"
    local.write_bytes(phrase_vectors.read_bytes())
    out = tmp_path / "run"
    train_config = ClassifierTrainConfig(
        data=str(PHRASES), out=str(out), embeddings=str(local), **{**TINY_CLF_TRAIN, "eval_every": 5}
    )
    with pytest.raises(TrainingStopped):
        seqtext.train_classifier(ClassifierConfig(**TINY_CLF), train_config, callback=interrupt_at(7))
    local.unlink()  # the vectors are in the saved weights: resuming reads the run alone
    result = invoke("train", "classifier", PHRASES, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert seqtext.load(out).config.embed_dim == DIM


@pytest.mark.parametrize("tie", [False, True])
def test_word_language_model_with_frozen_vectors(tmp_path, lines_file, tie):
    words = sorted(set(re.findall(r"\w+|[^\w\s]", lines_file.read_text(encoding="utf-8"))))
    path = glove(tmp_path, "".join(row(w.lower(), i) for i, w in enumerate(words)))
    out = tmp_path / "lm"
    seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, "level": "word", "embed_dim": DIM, "tie_weights": tie}),
        TrainConfig(data=str(lines_file), out=str(out), embeddings=str(path), freeze_embeddings=True, **TINY_TRAIN),
    )
    lm = seqtext.load(out)
    expected = read_vectors(path, lm.tokenizer.get_vocab())
    weight = load_file(str(out / "model.safetensors"))
    assert torch.equal(weight["embed.weight"][expected.found], expected.weight[expected.found])
    if tie:  # the output layer is the same matrix
        assert lm.model.head.weight is lm.model.embed.weight
    coverage = json.loads((out / "train_config.json").read_text(encoding="utf-8"))["embeddings_coverage"]
    assert coverage["training_words"] == 1.0 and coverage["training_tokens"] == 1.0


def test_char_language_model_refuses_vectors(tmp_path, lines_file):
    path = glove(tmp_path, row("perro", 1))
    with pytest.raises(ConfigError, match="--level word"):
        seqtext.train_lm(
            LMConfig(**{**TINY_MODEL, "embed_dim": DIM}),
            TrainConfig(data=str(lines_file), out=str(tmp_path / "lm"), embeddings=str(path), **TINY_TRAIN),
        )


# The command line

TINY_CLI = ["--hidden-dim", "16", "--batch-size", "32", "--epochs", "2", "--precision", "fp32", "--device", "cpu"]


def test_cli_trains_with_vectors_shows_coverage_and_classifies_without_the_file(tmp_path, phrase_vectors):
    local = tmp_path / "vectors.txt.gz"
    local.write_bytes(gzip.compress(phrase_vectors.read_bytes()))
    out = tmp_path / "run"
    result = invoke(
        "train", "classifier", PHRASES, "--out", out, "--embeddings", local, "--freeze-embeddings", *TINY_CLI
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        r"word vectors for \d+\.\d% of the training text's words, \d+\.\d% of the training tokens", result.stderr
    )
    assert seqtext.load(out).config.embed_dim == DIM  # the file's dimension, not --embed-dim's default
    shown = invoke("inspect", out)
    assert shown.exit_code == 0 and re.search(
        r"word vectors .*vectors\.txt\.gz \(frozen\): \d", shown.stdout + shown.stderr
    )
    local.unlink()
    classified = invoke("classify", out, "-", input="a warm , funny film\n")
    assert classified.exit_code == 0 and classified.stdout.count("\n") == 2


def test_cli_refuses_a_conflicting_embed_dim_and_a_bad_file_in_one_line(tmp_path, phrase_vectors):
    result = invoke(
        "train",
        "classifier",
        PHRASES,
        "--out",
        tmp_path / "a",
        "--embeddings",
        phrase_vectors,
        "--embed-dim",
        "16",
        *TINY_CLI,
    )
    assert_clean_error(result, f"--embed-dim is 16 but --embeddings {phrase_vectors} holds {DIM}-dimensional vectors")
    bad = glove(tmp_path, row("film", 1) + "warm 0.1 0.2\n")
    result = invoke("train", "classifier", PHRASES, "--out", tmp_path / "b", "--embeddings", bad, *TINY_CLI)
    assert_clean_error(result, f"{bad}, line 2: has 2 numbers, not {DIM}")
    result = invoke("train", "classifier", PHRASES, "--out", tmp_path / "c", "--freeze-embeddings", *TINY_CLI)
    assert_clean_error(result, "--freeze-embeddings keeps pretrained vectors fixed; give them with --embeddings FILE")


def test_cli_word_lm_takes_the_files_dimension(tmp_path, lines_file):
    words = sorted(set(re.findall(r"\w+|[^\w\s]", lines_file.read_text(encoding="utf-8"))))
    path = glove(tmp_path, f"{len(words)} {DIM}\n" + "".join(row(w, i) for i, w in enumerate(words)), "v.vec")
    out = tmp_path / "lm"
    tiny = ["--layers", "1", "--hidden-dim", "16", "--batch-size", "8", "--epochs", "1", "--precision", "fp32"]
    result = invoke("train", "lm", lines_file, "--out", out, "--level", "word", "--embeddings", path, *tiny)
    assert result.exit_code == 0, result.output
    assert (
        seqtext.load(out).config.embed_dim == DIM
        and "word vectors for 100.0% of the training text's words" in result.stderr
    )


def test_frozen_vectors_export_and_classify_without_the_file(tmp_path, phrase_vectors):
    ort = pytest.importorskip("onnxruntime", reason="needs the export extra: pip install -e '.[export]'")
    pytest.importorskip("onnx", reason="needs the export extra: pip install -e '.[export]'")
    from seqtext.sentiment.classification import predict_proba
    from seqtext.tokenizer import from_json

    local = tmp_path / "vectors.txt"
    local.write_bytes(phrase_vectors.read_bytes())
    run = train_clf(tmp_path / "run", local, freeze_embeddings=True)
    local.unlink()  # the export, like classify, reads the run alone
    result = invoke("export", run, "--out", tmp_path / "export")
    assert result.exit_code == 0, result.output
    clf = seqtext.load(run)
    texts = ["a warm , funny film", "unseenword and dull", "ok"]
    ids = encode_texts(
        from_json((tmp_path / "export" / "tokenizer.json").read_text(encoding="utf-8")), clf.config, texts
    )
    width = max(map(len, ids))
    feed = {"ids": [i + [0] * (width - len(i)) for i in ids], "lengths": [len(i) for i in ids]}
    feed = {k: torch.tensor(v).numpy() for k, v in feed.items()}
    (probs,) = ort.InferenceSession(str(tmp_path / "export" / "classifier.onnx")).run(None, feed)
    assert probs == pytest.approx(predict_proba(clf.model, ids, clf.device).numpy(), abs=1e-4)


def test_word_lm_with_character_aware_input_starts_its_word_embedding_from_the_vectors(tmp_path, lines_file):
    words = sorted(set(re.findall(r"\w+|[^\w\s]", lines_file.read_text(encoding="utf-8"))))
    path = glove(tmp_path, "".join(row(w.lower(), i) for i, w in enumerate(words)))
    out = tmp_path / "lm"
    model = LMConfig(**{**TINY_MODEL, "level": "word", "embed_dim": DIM, "char_input": True})
    seqtext.train_lm(
        model,
        TrainConfig(data=str(lines_file), out=str(out), embeddings=str(path), freeze_embeddings=True, **TINY_TRAIN),
    )
    lm = seqtext.load(out)
    expected = read_vectors(path, lm.tokenizer.get_vocab())
    weight = load_file(str(out / "model.safetensors"))
    assert torch.equal(weight["embed.weight"][expected.found], expected.weight[expected.found])
    assert seqtext.complete(lm, "el ")  # the character CNN beside the frozen vectors still predicts


@needs_shared_data
def test_sentiment_benchmark_smoke_with_vectors():
    """bench_sentiment --embeddings: from scratch, frozen, fine-tuned and the ensemble with vectors, and coverage."""
    command = [sys.executable, "scripts/bench_sentiment.py", "--smoke", "--seeds", "1", "--embeddings", "glove.6B.50d"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    for name in ("seqtext_single", "seqtext_frozen", "seqtext_tuned", "seqtext_ensemble"):
        assert 0 <= report[name]["mean_std"]["sst5_sentences.accuracy"]["mean"] <= 1
    assert "seqtext_distilled" not in report  # with vectors, the ensemble's row replaces the from-scratch pair
    assert 0.5 < report["embeddings"]["coverage"]["training_words"] < 0.8  # the smoke vectors: 2/3 of the words
    assert report["classify_vectors"]["cli_phrases_per_s"] > 0

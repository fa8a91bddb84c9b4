"""Configuration dataclasses and their JSON form. Stdlib only: configs import fast and round-trip.

Field names are the CLI's flag names (`hidden_dim` ⇔ `--hidden-dim`), so messages speak in flags, and
the CLI takes its options' defaults and choices (the `Literal` types) from these fields.
Every field is checked when a config is made, from the CLI, the Python API or a file alike: its type
(`seqtext.schema`: a bool is no int, a string no number, floats finite) and its range.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from seqtext.errors import ConfigError
from seqtext.jsonfiles import read_json as read_json  # re-exported, with the writer: configs are saved with them
from seqtext.jsonfiles import write_json as write_json
from seqtext.limits import (
    MAX_CLIP,
    MAX_LAYERS,
    MAX_LR,
    MAX_MEMBERS,
    MAX_NGRAM_MB,
    MAX_NGRAM_ORDER,
    MAX_SECONDS,
    MAX_SEED,
    MAX_VOCAB,
    MAX_WEIGHT,
    MAX_WIDTH,
    MAX_WINDOW,
    MEMORY_BUCKETS,
    check_positive,
)
from seqtext.schema import check_range, check_types, field_error
from seqtext.schema import from_dict as from_dict  # re-exported: configs are read with it

# The choices of the fields below, which the CLI offers as they are (`--cell rnn|lstm|gru`): add one here.
LMLevel = Literal["char", "word"]
Level = Literal[LMLevel, "subword"]  # subword: classifiers only
Cell = Literal["rnn", "lstm", "gru"]
LMCell = Literal[Cell, "cifg"]  # cifg (coupled input-forget gates, seqtext.cells): language models only
SampleBy = Literal["auto", "line", "stream"]
Precision = Literal["auto", "fp32", "bf16"]
Device = Literal["auto", "cpu", "cuda"]


def _check_recurrent_stack(config: Any) -> None:
    """What language models and classifiers share: types, sizes, dropout."""
    check_types(config)
    for name in ("embed_dim", "hidden_dim"):
        check_range(name, getattr(config, name), 1, MAX_WIDTH)
    check_range("layers", config.layers, 1, MAX_LAYERS)
    check_range("max_vocab", config.max_vocab, 5, MAX_VOCAB)  # the special tokens and one word
    check_range("vocab_size", config.vocab_size, 0, MAX_VOCAB)  # 0 until the tokenizer is trained
    if not 0.0 <= config.dropout < 1.0:
        raise field_error("dropout", f"must be in [0, 1) (got {config.dropout})")


@dataclass(frozen=True, kw_only=True)
class LMConfig:
    """Architecture of a next-token language model; stored under "model" in config.json."""

    # Fields added after runs were first saved: files written before lack them, and their defaults apply.
    OPTIONAL_IN_FILES: ClassVar[frozenset[str]] = frozenset(
        {"ngram_weights", "lexicon_weight", "char_input", "char_vocab", "weight_drop"}
        | {"ngram_oov_weights", "memory_weights"}
    )

    level: LMLevel = "char"
    cell: LMCell = "lstm"
    embed_dim: int = 64
    hidden_dim: int = 512
    layers: int = 2
    dropout: float = 0.1
    weight_drop: float = 0.0  # DropConnect on the recurrent (hidden-to-hidden) weights in training (seqtext.cells)
    tie_weights: bool = False
    max_vocab: int = 20_000  # word level only; char level keeps every character seen
    sample_by: SampleBy = "auto"  # resolved to line or stream by training; decides how text is read
    vocab_size: int = 0  # derived from the trained tokenizer, never set by hand
    # Word level: each word's input is its embedding plus a character CNN of its spelling (seqtext.wordinput).
    char_input: bool = False
    char_vocab: int = 0  # character ids of the spellings (char_input), derived from the tokenizer
    # The keyboard's n-gram share in its linear mix with this model, one per order of the longest context
    # the n-gram knows (1 … its order), chosen on the validation text when training builds the n-gram
    # (--ngram); empty when the run has none. Derived, never set by hand.
    ngram_weights: tuple[float, ...] = ()
    # The share of the keyboard's lexicon words (words no model of the run knows, --lexicon), chosen on the
    # validation text with the n-gram's weights; 0 when the run has no lexicon. Derived, never set by hand.
    lexicon_weight: float = 0.0
    # The n-gram's share for the words this model lacks, by order like ngram_weights (empty: the same as
    # ngram_weights), and the sentence memory's share by how much of the line matched (--memory; empty:
    # no memory). Chosen on the validation text with ngram_weights. Derived, never set by hand.
    ngram_oov_weights: tuple[float, ...] = ()
    memory_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.level == "subword":  # before the type check, which would only list char and word
            raise field_error("level", "subword is for classifiers; a language model is char or word level")
        _check_recurrent_stack(self)
        if not 0.0 <= self.weight_drop < 1.0:
            raise field_error("weight_drop", f"must be in [0, 1) (got {self.weight_drop})")
        if not 0.0 <= self.lexicon_weight < 1.0:
            raise field_error("lexicon_weight", f"must be in [0, 1) (got {self.lexicon_weight})")
        check_range("char_vocab", self.char_vocab, 0, MAX_VOCAB)
        for name, most in (("ngram_weights", MAX_NGRAM_ORDER), ("memory_weights", MEMORY_BUCKETS)):
            values = getattr(self, name)
            if not all(0.0 <= w < 1.0 for w in values) or len(values) > most:
                raise field_error(name, f"must be at most {most} numbers in [0, 1) (got {values})")
        oov = self.ngram_oov_weights
        if oov and (len(oov) != len(self.ngram_weights) or not all(0 <= w < 1 for w in oov)):
            raise field_error("ngram_oov_weights", f"must be one number in [0, 1) per ngram_weights value (got {oov})")
        if self.memory_weights and len(self.memory_weights) != MEMORY_BUCKETS:
            raise field_error("memory_weights", f"must be {MEMORY_BUCKETS} numbers or none (got {self.memory_weights})")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a run is trained; stored in train_config.json. Paths are kept as given by the user."""

    # Fields added after runs were first saved: files written before lack them, and their defaults apply.
    OPTIONAL_IN_FILES: ClassVar[frozenset[str]] = frozenset(
        {"log_gradients", "ngram", "ngram_order", "ngram_mb", "fp16_weights", "sampled_softmax", "max_steps"}
        | {"lexicon", "lexicon_words", "chosen", "memory"}
        | {"embeddings", "freeze_embeddings", "embeddings_coverage", "ema"}
    )

    data: str = ""
    out: str = "runs/lm"
    valid: str | None = None
    valid_fraction: float = 0.05
    text_column: str | None = None
    bptt: int = 128
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient-norm limit; 0 turns clipping off
    epochs: int | None = None  # None: 20, or no limit when max_time or max_steps is set
    max_time: float | None = None  # seconds of training (evaluation included); None means no limit
    max_steps: int | None = None  # optimizer steps at most; None means no limit (the schedule is planned over them)
    patience: int = 4  # evaluations without a better validation loss before stopping
    eval_every: int = 0  # optimizer steps between evaluations; 0 means twice per epoch
    teacher_forcing: float = 1.0
    sampled_softmax: int = 0  # train the output layer on the targets and this many drawn words; 0: full softmax
    log_gradients: bool = False  # gradient norms (and, for language models, gradients through time) in metrics.jsonl
    precision: Precision = "auto"
    device: Device = "auto"
    seed: int = 0
    ngram: bool = False  # after training, build the keyboard's word n-gram and choose its mixing weight
    ngram_order: int = 4
    ngram_mb: float | None = None  # the n-gram's size budget; None: what keeps the keyboard within KEYBOARD_MB
    fp16_weights: bool = False  # store the final weights in float16 (half the size; computed in float32)
    ema: float = 0.0  # decay of an exponential moving average of the weights, which is what is kept; 0 turns it off
    # Words no model of the run knows, offered by their frequency in the language (keyboard/lexicon.py):
    # "wordfreq:LANG" (the wordfreq package's list) or a word-list file; needs --ngram.
    lexicon: str | None = None
    lexicon_words: int = 100_000  # the lexicon's most frequent words kept (of those the training text lacks)
    memory: bool = False  # with --ngram: the keyboard's memory of the training lines, for near-repeats
    embeddings: str | None = None  # word vectors that start the embedding (then in the weights: the path is provenance)
    freeze_embeddings: bool = False  # keep the embedding as --embeddings gave it (words it lacks keep a random vector)
    # Derived, never set by hand: the shares of the training text's distinct words and tokens with a vector.
    embeddings_coverage: dict[str, float] = field(default_factory=dict)
    # What a budget recipe chose for --max-time on this machine, and why (seqtext.training.fitting); empty
    # when nothing was chosen. Derived, never set by hand.
    chosen: str = ""

    @property
    def epoch_limit(self) -> int:
        """Passes over the data at most: --epochs, else 20, else (with --max-time or --max-steps) as many as fit."""
        if self.epochs is not None:
            return self.epochs
        return 1_000_000 if self.max_time is not None or self.max_steps is not None else 20

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("bptt", "batch_size"):
            check_range(name, getattr(self, name), 1, MAX_WINDOW)
        for name, high in (("lr", MAX_LR), ("max_time", MAX_SECONDS), ("ngram_mb", MAX_NGRAM_MB)):
            if getattr(self, name) is not None:
                check_positive(f"--{name.replace('_', '-')}", getattr(self, name))
                check_range(name, getattr(self, name), 0, high)
        for name in ("epochs", "max_steps"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 1)
        for name, high in (("patience", None), ("eval_every", None), ("weight_decay", MAX_WEIGHT), ("clip", MAX_CLIP)):
            check_range(name, getattr(self, name), 0, high)  # --clip 0: no clipping
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("ngram_order", self.ngram_order, 1, MAX_NGRAM_ORDER)
        if not 0.0 < self.valid_fraction < 1.0:
            raise field_error("valid_fraction", f"must be in (0, 1) (got {self.valid_fraction})")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise field_error("teacher_forcing", f"must be in [0, 1] (got {self.teacher_forcing})")
        check_range("sampled_softmax", self.sampled_softmax, 0, MAX_VOCAB)
        check_range("lexicon_words", self.lexicon_words, 1, 1_000_000)
        if not 0.0 <= self.ema < 1.0:
            raise field_error("ema", f"must be in [0, 1) (got {self.ema}); 0.999 is a usual decay")
        if self.freeze_embeddings and not self.embeddings:
            raise ConfigError("--freeze-embeddings keeps pretrained vectors fixed; give them with --embeddings FILE")
        coverage = self.embeddings_coverage
        if set(coverage) - {"training_words", "training_tokens"} or not all(0 <= v <= 1 for v in coverage.values()):
            raise field_error("embeddings_coverage", f"must be training_words and training_tokens shares ({coverage})")
        if self.sampled_softmax and self.teacher_forcing < 1.0:
            raise ConfigError(
                "sampled_softmax trains with teacher forcing; scheduled sampling needs every word's score: "
                "drop one of --sampled-softmax and --teacher-forcing"
            )


SENTIMENT_LABELS = ("negative", "somewhat negative", "neutral", "somewhat positive", "positive")
Pooling = Literal["last", "mean", "max", "kmax", "attention"]
ClassWeights = Literal["none", "balanced"]


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Architecture of a many-to-one text classifier; stored under "model" in config.json.

    `labels` are the class names in id order. Left empty, training fills them in: the names of a hub
    dataset's ClassLabel column, else the five sentiment labels (integer labels 0-4 index into them).
    """

    level: Level = "word"
    cell: Cell = "lstm"
    embed_dim: int = 256  # 256 beat 128 by 0.8 points on the dev phrases at equal time; inference cost small
    hidden_dim: int = 128
    layers: int = 1
    bidirectional: bool = True
    pooling: Pooling = "max"
    dropout: float = 0.3
    lowercase: bool = True  # applied before the tokenizer, in training and inference alike
    max_vocab: int = 20_000  # word and subword levels
    labels: tuple[str, ...] = ()
    vocab_size: int = 0  # derived from the trained tokenizer, never set by hand

    def __post_init__(self) -> None:
        _check_recurrent_stack(self)  # also turns the list JSON gives into a tuple of names
        if len(self.labels) == 1:
            raise field_error("labels", f"needs at least two names (got {self.labels[0]!r})")
        if len(set(self.labels)) != len(self.labels):
            raise field_error("labels", f"names a label twice ({', '.join(self.labels)})")
        if any(not name.strip() or any(c in name for c in "\t\r\n") for name in self.labels):
            raise field_error("labels", "cannot hold an empty name, a tab or a line break (they break tsv output)")

    @property
    def num_classes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, kw_only=True)
class ClassifierTrainConfig(TrainConfig):
    """How a classifier is trained; stored in train_config.json. Defaults are the recommended recipe.

    Inherits the shared loop's options from TrainConfig; the language-model-only ones (bptt,
    teacher_forcing) must keep their defaults (they are refused otherwise; the CLI does not offer them).
    """

    out: str = "runs/classifier"
    label_column: str | None = None
    group_column: str | None = None  # None: SentenceId when the table has it, else single rows
    batch_size: int = 128
    # The learning rate decays over these epochs rather than over a --max-time budget (which then
    # only caps, unless it is the shorter): a time-based schedule follows machine load, and two
    # seeded runs on train.tsv differed by 1.3 points of dev accuracy; 8 epochs (3.4 minutes on 2
    # cores) scored as well as the better of them.
    epochs: int | None = 8
    class_weights: ClassWeights = "none"
    word_dropout: float = 0.0  # share of training tokens read as <unk>, so unseen words get a trained vector
    init_from: str | None = None  # language-model run whose embedding and recurrent layers start the model
    ensemble: int = 1  # members (seeds seed, seed+1, …) trained within one --max-time; their probabilities averaged
    distill_from: str | None = None  # classifier run (an ensemble) whose averaged probabilities are soft labels
    distill_weight: float = 0.5  # share of the loss on the teacher's soft labels (the rest on the gold labels)
    ordinal_weight: float = 0.0  # weight of |expected label - gold label| added to the cross-entropy
    split_seed: int | None = None  # seed of the validation split; None: --seed (ensemble members share one split)
    # Answer a text found verbatim among the training phrases with its training label: +4.1 points on the
    # SST dev phrases (mean of 2 seeds, 0.652 → 0.692), whole sentences unchanged.
    phrase_memory: bool = True
    embeddings_vocab: int = 0  # with --embeddings: the words of its first N rows (most frequent) join the vocabulary

    # Fields added after runs were first saved: files written before lack them, and their defaults apply.
    OPTIONAL_IN_FILES: ClassVar[frozenset[str]] = TrainConfig.OPTIONAL_IN_FILES | {
        "ensemble", "distill_from", "distill_weight", "ordinal_weight", "split_seed",
        "phrase_memory", "embeddings_vocab",
    }  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("ensemble", self.ensemble, 1, MAX_MEMBERS)
        if self.split_seed is not None:
            check_range("split_seed", self.split_seed, 0, MAX_SEED)
        check_range("ordinal_weight", self.ordinal_weight, 0, MAX_WEIGHT)
        if not 0.0 <= self.distill_weight <= 1.0:
            raise field_error("distill_weight", f"must be in [0, 1] (got {self.distill_weight})")
        if self.ensemble > 1 and self.distill_from:
            raise ConfigError("--ensemble trains several models and --distill-from one student; pass only one")
        # Inherited language-model options: refuse them rather than silently ignore them.
        if self.teacher_forcing != 1.0 or self.bptt != TrainConfig.bptt:
            raise ConfigError("bptt and teacher_forcing apply to language models; a classifier reads whole texts")
        if self.sampled_softmax:
            raise ConfigError("sampled_softmax trains a language model's output layer; a classifier has five labels")
        keyboard = self.ngram_mb is not None or self.lexicon or self.lexicon_words != TrainConfig.lexicon_words
        if self.ngram or self.ngram_order != TrainConfig.ngram_order or keyboard or self.memory:
            raise ConfigError(
                "ngram, ngram_order, ngram_mb, lexicon, lexicon_words and memory build a keyboard's mix; "
                "a classifier has none"
            )
        if self.fp16_weights:
            raise ConfigError("fp16_weights applies to language models (seqtext train lm --fp16-weights)")
        if not 0.0 <= self.word_dropout < 1.0:
            raise field_error("word_dropout", f"must be in [0, 1) (got {self.word_dropout})")
        check_range("embeddings_vocab", self.embeddings_vocab, 0, MAX_VOCAB)
        if self.embeddings_vocab and not self.embeddings:
            raise ConfigError("--embeddings-vocab adds words of a vectors file; give the file with --embeddings")
        if self.embeddings and self.init_from:
            raise ConfigError(
                "--init-from and --embeddings both start the embedding; pass one of them (an LM "
                "trained with --embeddings carries the vectors into --init-from)"
            )


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass → JSON-ready dict (paths become strings)."""
    return {k: str(v) if isinstance(v, os.PathLike) else v for k, v in asdict(config).items()}

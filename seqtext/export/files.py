"""The files of an export: ONNX graphs, weights and n-gram arrays in safetensors, JSON descriptions."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqtext.cells import as_lstm
from seqtext.keyboard.lexicon import LEXICON_FILE
from seqtext.keyboard.memory import COUNTS, LENGTHS, MAX_SCAN, MEMORY_FILE, MIN_TOKENS
from seqtext.keyboard.ngramfile import NGRAM_FILE, load_ngram
from seqtext.keyboard.personal import PERSONAL_WEIGHT
from seqtext.keyboard.words import INEXACT_DISCOUNT
from seqtext.runs.loading import Loaded
from seqtext.runs.saving import save_tensors
from seqtext.tokenizer import SPACE_MARK, SPECIAL_TOKENS

FORMAT, VERSION = "seqtext-export", 1
MIXES_BY_WORD = 2  # the version of an export whose mix has oov_weights or a sentence memory
MEMORY_SHAPE = {"min_tokens": MIN_TOKENS, "lengths": list(LENGTHS), "counts": list(COUNTS), "max_scan": MAX_SCAN}


def weights_of(loaded: Loaded) -> dict[str, torch.Tensor]:
    """The network's weights in float32 under PyTorch's names (a tied head is written once more as head.weight).

    A character-aware input (train lm --char-input) is written as it runs at inference too: `embed.table`,
    the input vector of every token (its embedding plus the CNN of its spelling), computed once here.
    A coupled-gate LSTM (cifg) is written as the LSTM it equals (seqtext.cells.as_lstm), which ONNX and
    the page's keyboard run.
    """
    state = loaded.model.state_dict()
    weights = {name: tensor.detach().float().cpu().contiguous().clone() for name, tensor in state.items()}
    if loaded.config.cell == "cifg":
        for layer in range(loaded.config.layers):
            names = [f"rnn.{name}_l{layer}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            weights.update(zip(names, as_lstm(*(weights[name] for name in names)), strict=True))
    if getattr(loaded.config, "char_input", False):
        with torch.inference_mode():
            ids = torch.arange(loaded.config.vocab_size, device=loaded.device)
            weights["embed.table"] = loaded.model.embed(ids).float().cpu().contiguous().clone()
    return weights


def write_json(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def common(loaded: Loaded, out: Path, kind: str) -> tuple[dict[str, np.ndarray], list[Path]]:
    """What every export has: weights.safetensors, tokenizer.json, vocab.json."""
    weights = weights_of(loaded)
    save_tensors(out, "weights.safetensors", weights, {"format": FORMAT, "kind": kind})
    shutil.copyfile(loaded.path / "tokenizer.json", out / "tokenizer.json")
    vocab = loaded.tokenizer.get_vocab(with_added_tokens=True)
    tokens = sorted(vocab, key=vocab.__getitem__)
    described = {"tokens": tokens, "special": {t: vocab[t] for t in SPECIAL_TOKENS}, "space_mark": SPACE_MARK}
    written = [out / "weights.safetensors", out / "tokenizer.json", write_json(out / "vocab.json", described)]
    return {k: v.numpy() for k, v in weights.items()}, written


def model_fields(config: Any) -> dict[str, Any]:
    names = ("level", "cell", "layers", "embed_dim", "hidden_dim", "vocab_size")
    return {name: getattr(config, name) for name in names}


def write_lm(loaded: Loaded, out: Path, graphs: bool = True) -> list[Path]:
    """lm_step.onnx, lm_forward.onnx, weights, tokenizer, vocabulary, keyboard.json (+ the n-gram);
    graphs=False leaves out the two ONNX graphs (what the page's keyboard reads, without onnx)."""
    config = replace(loaded.config, cell="lstm") if loaded.config.cell == "cifg" else loaded.config  # see weights_of
    weights, written = common(loaded, out, "lm")
    if graphs:
        import onnx

        from seqtext.export.graphs import language_model

        for name, step in (("lm_step.onnx", True), ("lm_forward.onnx", False)):
            onnx.save(language_model(weights, config, step), out / name)
            written.append(out / name)
    ngram = load_ngram(loaded.path, loaded.tokenizer) if config.level == "word" and config.ngram_weights else None
    if ngram is not None:
        shutil.copyfile(loaded.path / NGRAM_FILE, out / NGRAM_FILE)
        written.append(out / NGRAM_FILE)
    lexicon_weight = getattr(config, "lexicon_weight", 0.0)
    if ngram is not None and lexicon_weight and (loaded.path / LEXICON_FILE).exists():
        shutil.copyfile(loaded.path / LEXICON_FILE, out / LEXICON_FILE)
        written.append(out / LEXICON_FILE)
    memory = None
    if ngram is not None and config.memory_weights:
        shutil.copyfile(loaded.path / MEMORY_FILE, out / MEMORY_FILE)
        written.append(out / MEMORY_FILE)
        memory = {"file": MEMORY_FILE, "weights": list(config.memory_weights), **MEMORY_SHAPE}
    newer = ngram is not None and bool(config.ngram_oov_weights or config.memory_weights)
    keyboard = {
        "format": FORMAT,
        "version": MIXES_BY_WORD if newer else VERSION,  # a reader of version 1 refuses what it would mix wrongly
        "kind": "lm",
        **model_fields(config),
        "sample_by": config.sample_by,
        "tied_head": bool(config.tie_weights),
        "projection": "proj.weight" in weights,
        "ngram": None
        if ngram is None
        else {
            "file": NGRAM_FILE,
            "order": ngram.order,
            "weights": list(config.ngram_weights),
            "oov_weights": list(config.ngram_oov_weights or config.ngram_weights),
        },
        "memory": memory,
        "lexicon": {"file": LEXICON_FILE, "weight": lexicon_weight} if (out / LEXICON_FILE).exists() else None,
        "char_input": bool(getattr(config, "char_input", False)),
        "inexact_discount": INEXACT_DISCOUNT,
        "personal_weight": PERSONAL_WEIGHT,
        "char_beam": 8,
        "char_max_chars": 24,
        "files": [*sorted(p.name for p in written), "keyboard.json", "README.md"],
    }
    return [*written, write_json(out / "keyboard.json", keyboard)]


def write_classifier(loaded: Loaded, out: Path) -> list[Path]:
    """classifier.onnx, weights, tokenizer, vocabulary, classifier.json (+ phrases.json, the phrase memory)."""
    import onnx

    from seqtext.export import graphs

    config = loaded.config
    weights, written = common(loaded, out, "classifier")
    onnx.save(graphs.classifier(weights, config), out / "classifier.onnx")
    written.append(out / "classifier.onnx")
    memory = loaded.phrase_memory
    if memory:
        written.append(write_json(out / "phrases.json", {"phrases": memory}))
    described = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "classifier",
        **model_fields(config),
        "bidirectional": bool(config.bidirectional),
        "pooling": config.pooling,
        "lowercase": bool(config.lowercase),
        "labels": list(config.labels),
        "phrase_memory": "phrases.json" if memory else None,
        "files": [*sorted(p.name for p in written), "classifier.json", "README.md"],
    }
    return [*written, write_json(out / "classifier.json", described)]

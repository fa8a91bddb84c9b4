"""The keyboard's n-gram in a run directory: `ngram.safetensors`, arrays and a JSON header, never pickle.

The header (the file's safetensors metadata, key "seqtext_ngram") names the format, the order, the
vocabulary size and a fingerprint of the run's tokenizer; the tensors are checked against it, and
every value for its range, before the model is built. A run without the file types with its
recurrent model alone; a damaged file, or one of another run, is one clear error line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from seqtext import jsonfiles
from seqtext.errors import CheckpointError
from seqtext.keyboard.ngram import BOS, NgramModel, Order
from seqtext.runs import checks
from seqtext.runs.saving import lines_tensor, save_tensors
from seqtext.schema import shown

NGRAM_FILE = "ngram.safetensors"
FORMAT = 1
KEY = "seqtext_ngram"
FIX = "delete it to type with the model alone, or train the run again (seqtext train lm ... --ngram)"
MAX_ENTRIES = 1 << 28


def fingerprint(tokenizer: Any) -> str:
    """A hash of the run's vocabulary: an n-gram built beside another tokenizer is refused."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return hashlib.sha256("\n".join(sorted(vocab, key=vocab.__getitem__)).encode("utf-8")).hexdigest()[:16]


def save_ngram(run: Path, model: NgramModel, tokenizer: Any) -> Path:
    """Write the n-gram into a run directory (atomically)."""
    tensors: dict[str, torch.Tensor] = {
        "vocab": lines_tensor(model.vocab),
        "unigram": model.unigram.float(),
    }
    for n, table in enumerate(model.tables, start=2):
        for name in ("contexts", "gamma", "offsets", "words", "alpha"):
            tensors[f"order{n}.{name}"] = getattr(table, name)
    header = {
        "format": FORMAT,
        "order": model.order,
        "vocab_size": len(model.vocab),
        "tokenizer": fingerprint(tokenizer),
    }
    save_tensors(run, NGRAM_FILE, tensors, {KEY: json.dumps(header)})
    return run / NGRAM_FILE


def _header(path: Path) -> dict:
    raw = checks.tensor_metadata(path).get(KEY)
    try:
        header = jsonfiles.parse(raw) if raw is not None else None
    except jsonfiles.JsonError:
        header = None
    if not isinstance(header, dict):
        raise checks.problem(path, f'no seqtext n-gram header (metadata "{KEY}")', FIX)
    for key in ("format", "order", "vocab_size"):
        if type(header.get(key)) is not int or header[key] < 1:
            raise checks.problem(
                path, f'header field "{key}" must be a positive whole number (got {shown(header.get(key))})', FIX
            )
    if header["format"] > FORMAT:
        raise CheckpointError(
            f"{path}: n-gram format {header['format']} is newer than this seqtext reads; upgrade seqtext"
        )
    if header["order"] > 9 or not isinstance(header.get("tokenizer"), str):
        raise checks.problem(path, "the header's order or tokenizer fingerprint is not valid", FIX)
    return header


def _expected(found: dict, order: int, vocab_size: int) -> dict[str, checks.Spec]:
    """The tensors a file of this order and vocabulary holds, their sizes taken from the file itself."""
    expected: dict[str, checks.Spec] = {
        "vocab": ("U8", found.get("vocab", ("U8", (0,)))[1]),
        "unigram": ("F32", (vocab_size,)),
    }
    for n in range(2, order + 1):
        contexts = found.get(f"order{n}.gamma", ("F16", (0,)))[1][:1] or (0,)
        entries = found.get(f"order{n}.words", ("I32", (0,)))[1][:1] or (0,)
        expected |= {
            f"order{n}.contexts": ("I32", (contexts[0], n - 1)),
            f"order{n}.gamma": ("F16", contexts),
            f"order{n}.offsets": ("I32", (contexts[0] + 1,)),
            f"order{n}.words": ("I32", entries),
            f"order{n}.alpha": ("F16", entries),
        }
    return expected


def load_ngram(run: Path, tokenizer: Any) -> NgramModel | None:
    """The run's n-gram, every tensor checked; None when the run has none."""
    path = checks.optional_run_file(Path(run), NGRAM_FILE)
    if path is None:
        return None
    found = checks.tensor_specs(path)
    header = _header(path)
    if header["tokenizer"] != fingerprint(tokenizer):
        raise checks.problem(path, "it was built for another vocabulary (another run's tokenizer)", FIX)
    order, size = header["order"], header["vocab_size"]
    expected = _expected(found, order, size)
    for name, spec in expected.items():
        if name not in found:
            raise checks.problem(path, f"tensor {name!r} is missing", FIX)
        if found[name] != spec or (spec[1] and spec[1][0] > MAX_ENTRIES):
            raise checks.problem(
                path,
                f"tensor {name!r} is {found[name][0]} {list(found[name][1])}, expected {spec[0]} {list(spec[1])}",
                FIX,
            )
    if set(found) - set(expected):
        raise checks.problem(path, f"unexpected tensors ({', '.join(sorted(set(found) - set(expected))[:3])})", FIX)
    tensors = checks.load_tensors(path)
    vocab = checks.tensor_lines(tensors["vocab"])
    if len(vocab) != size or vocab[0] != BOS or len(set(vocab)) != size:
        raise checks.problem(path, f"its vocabulary is not {size:,} distinct words from {BOS}", FIX)
    unigram = tensors["unigram"]
    if bool((unigram < 0).any()) or abs(float(unigram.sum()) - 1) > 1e-3:
        raise checks.problem(path, "its unigram probabilities do not sum to 1", FIX)
    return NgramModel(vocab, unigram, [_order(path, tensors, n, size) for n in range(2, order + 1)])


def _order(path: Path, tensors: dict[str, torch.Tensor], n: int, size: int) -> Order:
    """One order's tables, each value checked for its range (ids, offsets, probabilities)."""
    t = {name: tensors[f"order{n}.{name}"] for name in ("contexts", "gamma", "offsets", "words", "alpha")}
    offsets, entries = t["offsets"].long(), len(t["words"])
    why = None
    if int(offsets[0]) != 0 or int(offsets[-1]) != entries or bool((offsets[1:] < offsets[:-1]).any()):
        why = "its offsets do not run from 0 to the number of entries"
    elif entries and (int(t["words"].min()) < 1 or int(t["words"].max()) >= size):
        why = "a word id is outside the vocabulary"
    elif t["contexts"].numel() and (int(t["contexts"].min()) < 0 or int(t["contexts"].max()) >= size):
        why = "a context word id is outside the vocabulary"
    elif any(bool(((v < 0) | (v > 1)).any()) for v in (t["gamma"].float(), t["alpha"].float())):
        why = "a probability is outside [0, 1]"
    if why is None:
        table = Order(**t)
        if len(table.lookup) == len(t["gamma"]):
            return table
        why = "a context appears twice"
    raise checks.problem(path, f"order {n}: {why}", FIX)

"""Sample text from a language model: temperature, top-k, top-p (nucleus), greedy, seeded.

The RNN reads the prompt once, then steps one token at a time with its carried state, so each new
token costs O(1) however long the text is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from seqtext.errors import ConfigError
from seqtext.limits import MAX_SEED
from seqtext.runs.loading import Loaded, as_loaded
from seqtext.schema import MAX_INT, check_finite
from seqtext.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, decode, encode_batch

NEVER_SAMPLED = (PAD_ID, UNK_ID, BOS_ID)  # <unk> is a class of words, not text a reader can use
MAX_TEMPERATURE = 100  # the distribution is flat long before; far beyond it, float32 overflows


def sample_next(
    logits: Tensor, *, temperature: float, top_k: int | None, top_p: float | None, generator: torch.Generator
) -> Tensor:
    """Choose one id per row of (B, V) logits → (B, 1). Temperature 0 means greedy (seed-independent)."""
    logits = logits.float().clone()
    logits[:, list(NEVER_SAMPLED)] = float("-inf")
    if temperature < torch.finfo(logits.dtype).tiny:  # 0, or so small it is 0 in float32: greedy
        return logits.argmax(dim=-1, keepdim=True)
    # Shifted so the best token scores 0: a tiny temperature then gives -inf to the others, never inf/inf.
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator)


def check_sampling(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None, seed: int = 0
) -> None:
    """Refuse options that cannot mean anything, in the words of the CLI."""
    check_finite("--temperature", temperature)
    if top_p is not None:
        check_finite("--top-p", top_p)
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and {MAX_SEED:,} (got {seed})")
    if not 0 <= max_new_tokens <= MAX_INT:
        raise ConfigError(f"--max-new-tokens must be between 0 and 2^63 - 1 (got {max_new_tokens})")
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ConfigError(
            f"--temperature must be between 0 and {MAX_TEMPERATURE} (got {temperature}); 0 is greedy, 1 samples "
            "as the model learned, higher is more random"
        )
    if top_k is not None and not 1 <= top_k <= MAX_INT:
        raise ConfigError(f"--top-k must be between 1 and 2^63 - 1 (got {top_k})")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1] (got {top_p})")


def prompt_ids(lm: Loaded, prompt: str) -> list[int]:
    """<bos> and the prompt's tokens, read as the model was trained (one line, or a stream of lines)."""
    if lm.config.level == "word":
        prompt = prompt.rstrip(" ")  # the next word brings its own space mark
    if lm.config.sample_by != "stream":
        return [BOS_ID, *encode_batch(lm.tokenizer, [prompt])[0]]
    lines = prompt.split("\n")
    ids = [BOS_ID]
    for i, line_ids in enumerate(encode_batch(lm.tokenizer, lines)):
        ids += line_ids if i == len(lines) - 1 else [*line_ids, EOS_ID]
    return ids


@torch.inference_mode()
def generate_stream(
    source: Loaded | str | Path,
    prompt: str = "",
    *,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> Iterator[str]:
    """Yield the continuation of `prompt` piece by piece as it is sampled (not the prompt itself)."""
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed)
    lm = as_loaded(source, "lm", "generate")
    generator = torch.Generator(device=lm.device).manual_seed(seed)
    ids = torch.tensor([prompt_ids(lm, prompt)], device=lm.device)  # (1, T)
    logits, state = lm.model.read(ids)  # (1, V): read the prompt once (no (T, V) logits); the state carries it
    stream = lm.config.sample_by == "stream"
    strip_space = lm.config.level == "word" and prompt.endswith(" ")
    for _ in range(max_new_tokens):
        lm.check_finite(logits)  # finite but extreme weights can overflow
        next_id = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        token = int(next_id)
        if token == EOS_ID and not stream:
            return
        piece = "\n" if token == EOS_ID else decode(lm.tokenizer, [token])
        if strip_space:
            piece, strip_space = piece.lstrip(" "), False
        yield piece
        logits, state = lm.model.read(next_id, state)  # one step: (1, 1) in, (1, V) and the state out


def generate(
    source: Loaded | str | Path,
    prompt: str = "",
    *,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> str:
    """Continue `prompt` with up to max_new_tokens sampled tokens; returns only the new text."""
    return "".join(
        generate_stream(
            source,
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
    )

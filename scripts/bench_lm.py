"""Language-model training benchmark: seqtext's defaults against a plain hand-written PyTorch loop.

    python scripts/bench_lm.py [--seconds 600] [--word-seconds 600] [--profile native|laptop] [--smoke]

Both train a character-level model on ../shared/data/spanish/quijote.txt (first 95% of lines for
training, last 5% for validation) for the same wall-clock budget, and are scored by the same
measure: validation bits per character (NLL in bits ÷ characters, newlines included), the state
carried through the text. The plain loop is the textbook recipe: fp32 nn.LSTM, embedding 64, 2×512,
bptt 128, batch 64, AdamW 2e-3, clip 1.0. seqtext runs `train lm --max-time` with nothing else (its
budget recipe chooses the model on the machine at hand: the JSON's "chosen" says which, and why).
Then a word-level seqtext LSTM trains on tatoeba_es_train.txt (validated on tatoeba_es_valid.txt).
Takes about 2 × --seconds + --word-seconds. Prints one JSON object and appends a row to
docs/benchmarks.md. --profile laptop runs both as on an fp32 AVX2 laptop (scripts/machine.py).
--smoke runs a few seconds on a tiny corpus (for the test suite).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from machine import add_profile_option, describe, enter_profile, row_cells
from torch import nn

import seqtext
from seqtext import LMConfig, TrainConfig
from seqtext.lm.recipe import budget_recipe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "spanish"
COLUMNS = 16  # validation stream cut into 16 parallel columns, as seqtext.evaluate does


class PlainLM(nn.Module):
    def __init__(self, vocab: int, embed: int = 64, hidden: int = 512, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def batchify(ids: torch.Tensor, columns: int) -> torch.Tensor:
    length = len(ids) // columns
    return ids[: length * columns].view(columns, length)


def plain_loop(train_text: str, valid_text: str, seconds: float, bptt: int, batch: int) -> dict:
    """The textbook truncated-BPTT loop (pytorch/examples word_language_model, batch-first)."""
    torch.manual_seed(0)
    chars = sorted(set(train_text))
    index = {c: i + 1 for i, c in enumerate(chars)}  # 0 = unknown character
    encode = lambda text: torch.tensor([index.get(c, 0) for c in text])  # noqa: E731
    data = batchify(encode(train_text), batch)
    model = PlainLM(len(chars) + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    tokens, spent, state, start = 0, 0.0, None, 0
    while spent < seconds:
        if start + bptt + 1 > data.size(1):
            start, state = 0, None
        x, y = data[:, start : start + bptt], data[:, start + 1 : start + bptt + 1]
        t0 = time.perf_counter()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = tuple(s.detach() for s in state)
        spent += time.perf_counter() - t0
        tokens += x.numel()
        start += bptt
    return {
        "tokens_per_s": tokens / spent,
        "valid_bpc": plain_bpc(model, encode, valid_text),
        "tokens_seen": tokens,
        "seconds": spent,
    }


@torch.inference_mode()
def plain_bpc(model: PlainLM, encode, text: str) -> float:
    """Bits per character of `text`, every character predicted once, in parallel columns."""
    model.eval()
    ids = encode("\n" + text)  # a newline gives the first character its context
    length = math.ceil((len(ids) - 1) / COLUMNS)
    padded = torch.full((COLUMNS * length + 1,), -100)
    padded[: len(ids)] = ids
    columns = padded.unfold(0, length + 1, length)  # (16, L + 1), neighbours share one token
    inputs, targets = columns[:, :-1].clamp(min=0), columns[:, 1:]
    nll, state = 0.0, None
    for s in range(0, length, 256):
        logits, state = model(inputs[:, s : s + 256], state)
        nll += F.cross_entropy(
            logits.flatten(0, 1), targets[:, s : s + 256].flatten(), ignore_index=-100, reduction="sum"
        ).item()
    return nll / math.log(2) / len(text)


def seqtext_run(train: Path, valid: Path, seconds: float, out: Path, **model: object) -> dict:
    """`seqtext train lm --max-time` with the options in `model` typed: the budget recipe chooses the rest."""
    config = LMConfig(**model)
    result = seqtext.train_lm(
        config,
        TrainConfig(data=str(train), valid=str(valid), out=str(out), max_time=seconds),
        recipe=budget_recipe(None, config.level, set(model)),
    )
    metrics = seqtext.evaluate(out, valid)
    chosen = json.loads((out / "train_config.json").read_text(encoding="utf-8"))["chosen"]
    return {
        "chosen": chosen,
        "tokens_per_s": result.tokens_per_s,
        "valid_bpc": metrics.bits_per_char,
        "valid_perplexity": metrics.perplexity,
        "steps": result.steps,
        "precision": result.precision,
        "stopped_by": result.stopped_by,
        "seconds": result.seconds,
    }


def split_lines(path: Path, folder: Path, keep: int | None = None) -> tuple[Path, Path, str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()[:keep]
    cut = int(len(lines) * 0.95)
    train_text, valid_text = "".join(t + "\n" for t in lines[:cut]), "".join(t + "\n" for t in lines[cut:])
    (folder / "train.txt").write_text(train_text, encoding="utf-8")
    (folder / "valid.txt").write_text(valid_text, encoding="utf-8")
    return folder / "train.txt", folder / "valid.txt", train_text, valid_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="budget of each char-level run")
    parser.add_argument("--word-seconds", type=float, default=600.0, help="budget of the word-level run")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on a tiny corpus")
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    quijote, tatoeba = DATA / "quijote.txt", DATA / "tatoeba_es_train.txt"
    if args.smoke:
        args.seconds, args.word_seconds = 3.0, 3.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keep = 2000 if args.smoke else None
        train, valid, train_text, valid_text = split_lines(quijote, folder, keep)
        bptt, batch = (32, 8) if args.smoke else (128, 64)
        small = {"hidden_dim": 32, "embed_dim": 16} if args.smoke else {}
        plain = plain_loop(train_text, valid_text, args.seconds, bptt, batch)
        ours = seqtext_run(train, valid, args.seconds, folder / "char", **small)
        word_dir = folder / "word_data"
        word_dir.mkdir()
        word_train = tatoeba if not args.smoke else split_lines(tatoeba, word_dir, 3000)[0]
        word_valid = DATA / "tatoeba_es_valid.txt"
        word = seqtext_run(word_train, word_valid, args.word_seconds, folder / "word", level="word", **small)
    report = {
        "benchmark": "bench_lm",
        "data": "quijote.txt 95/5 line split; tatoeba_es train/valid",
        "budget_seconds": args.seconds,
        "machine": describe(args.profile),
        "plain_loop": plain,
        "seqtext": ours,
        "throughput_ratio": ours["tokens_per_s"] / plain["tokens_per_s"],
        "bpc_gain": plain["valid_bpc"] - ours["valid_bpc"],
        "word_lm": {
            "valid_perplexity": word["valid_perplexity"],
            "valid_bpc": word["valid_bpc"],
            "budget_seconds": args.word_seconds,
            "steps": word["steps"],
        },
    }
    print(json.dumps(report, indent=2))
    if not args.smoke:
        write_row(report)


def write_row(report: dict) -> None:
    command = (
        f"python scripts/bench_lm.py --seconds {report['budget_seconds']:g} "
        f"--word-seconds {report['word_lm']['budget_seconds']:g} --profile {report['machine']['profile']}"
    )
    p, s, w = report["plain_loop"], report["seqtext"], report["word_lm"]
    model = s["chosen"].split(" (")[0] or "as typed"  # what the budget recipe chose here
    precision = f"seqtext {s['precision']} {model}, plain loop fp32"
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {row_cells(report['machine'], precision)} | "
        f"{p['tokens_per_s']:,.0f} / {s['tokens_per_s']:,.0f} ({report['throughput_ratio']:.2f}×) | "
        f"{p['valid_bpc']:.3f} / {s['valid_bpc']:.3f} ({report['bpc_gain']:+.3f}) | "
        f"{w['valid_perplexity']:.1f} / {w['valid_bpc']:.3f} |\n"
    )
    append_row(
        "bench_lm",
        "| date | command | profile | machine | tokens/s plain / seqtext | valid bpc plain / seqtext (gain) "
        "| word LM tatoeba valid ppl / bpc |\n|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())

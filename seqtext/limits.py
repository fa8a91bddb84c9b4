"""The bounds of every config field, and durations. Stdlib only, like the configs that check against them."""

from __future__ import annotations

import re

from seqtext.errors import ConfigError
from seqtext.schema import check_finite, check_range, field_error

# Bounds far beyond any model a CPU or GPU trains, so that an absurd value (typed, or edited into a
# file) is refused with its name instead of overflowing or allocating gigabytes somewhere later.
MAX_WIDTH = 65_536  # --embed-dim, --hidden-dim
MAX_LAYERS = 256
MAX_VOCAB = 10_000_000
MAX_WINDOW = 1_000_000  # --bptt, --batch-size
MAX_SEED = 2**32 - 1  # seeds feed torch generators, which take 64 bits (seqtext multiplies them)
MAX_NGRAM_ORDER = 9
MEMORY_BUCKETS = 12  # the keyboard's sentence memory: a weight per bucket of its matches (keyboard/memory.py)
KEYBOARD_MB = 20.0  # what the keyboard loads (weights, tokenizer, n-gram) should fit in this on disk
MAX_MEMBERS = 32  # --ensemble: each member is a whole model, trained in a share of the budget
# Floats too: beyond these a value means nothing (AdamW diverges long before --lr 10) or overflows later.
MAX_LR = 10
MAX_WEIGHT = 100  # --weight-decay, --ordinal-weight
MAX_CLIP = 1_000_000  # --clip: far above any gradient norm that does not overflow (0 turns clipping off)
MAX_SECONDS = 366 * 86_400  # --max-time: a year
MAX_NGRAM_MB = 1_000_000  # --ngram-mb: a terabyte
VALID_TWICE = "--valid names the validation data and --valid-fraction holds out a share of DATA instead: pass only one"


def check_positive(flag: str, value: float) -> None:
    if value <= 0:
        raise field_error(flag.removeprefix("--").replace("-", "_"), f"must be positive (got {value})")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m' or '45' (seconds) → seconds."""
    compact = text.strip().lower().replace(" ", "")
    parts = list(_DURATION.finditer(compact))
    if not compact or "".join(p.group(0) for p in parts) != compact:
        raise ConfigError(f"--max-time {text!r} is not a duration; write e.g. 90s, 10m, 1h or 1h30m")
    seconds = sum(float(p.group(1)) * _SECONDS[p.group(2)] for p in parts)
    check_positive("--max-time", seconds)
    check_range("max_time", check_finite("--max-time", seconds), 0, MAX_SECONDS)
    return seconds

"""The budget recipe of the default character model: the candidates `train lm --max-time` chooses among on
the machine at hand (seqtext.training.fitting).

The steps the larger model needs come from the step-budget experiments in docs/benchmarks.md
("Choosing the model for the budget"): on Quijote, with the defaults' window (bptt 128, batch 64) and
learning-rate schedule, the validation bits per character of each model after N steps.
"""

from __future__ import annotations

from seqtext.training.fitting import Candidate, Recipe

CHAR_LM = Recipe(
    "char LM",
    (
        Candidate("LSTM 2×512", {"hidden_dim": 512, "layers": 2}, needs_steps=600),
        Candidate("LSTM 1×512", {"hidden_dim": 512, "layers": 1}),
    ),
    # what the experiments kept at their defaults: a user who types one of them has chosen the model
    assumes=frozenset({"cell", "embed_dim", "bptt", "batch_size", "sampled_softmax", "teacher_forcing"}),
)


def budget_recipe(preset: str | None, level: str, typed: set[str]) -> Recipe | None:
    """The recipe that chooses the model for a --max-time budget: the default character model's; None with a
    preset or at word level (trained as they are), or when the user typed a field the recipe would choose
    or assumes (they chose)."""
    if preset is not None or level != "char":
        return None
    return CHAR_LM.open_to(typed)

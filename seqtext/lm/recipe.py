"""The budget recipe of the default character model: the candidates `train lm --max-time` chooses among on
the machine at hand (seqtext.training.fitting).

The steps the LSTM needs come from step-budget experiments: on Quijote, with the defaults' window (bptt
128, batch 64) and learning-rate schedule, the validation bits per character of each model after N steps.
"""

from __future__ import annotations

from seqtext.training.fitting import Candidate, Recipe

# Step budgets on Quijote (docs/benchmarks.md, "Choosing the model for the budget"), validation bpc: the
# LSTM 2×512 2.954 after 125 steps and 2.746 after 250; the Elman RNN 1×512, whose step costs several times
# less, 2.616 after 250 and 2.135 after 750. While the budget buys the LSTM 250 steps or fewer (all an fp32
# laptop gets in 10 minutes), the RNN learns more in the same time. Beyond 250 LSTM steps the two are not
# compared yet: from 300 the recipe keeps the default LSTM, which bf16 machines train 800-1,600 steps in
# 5-10 minutes.
CHAR_LM = Recipe(
    "char LM",
    (
        Candidate("LSTM 2×512", {"cell": "lstm", "hidden_dim": 512, "layers": 2}, needs_steps=300),
        Candidate("Elman RNN 1×512", {"cell": "rnn", "hidden_dim": 512, "layers": 1}),
    ),
    # what the experiments kept at their defaults: a user who types one of them has chosen the model
    assumes=frozenset({"embed_dim", "bptt", "batch_size", "sampled_softmax", "teacher_forcing"}),
)


def budget_recipe(preset: str | None, level: str, typed: set[str]) -> Recipe | None:
    """The recipe that chooses the model for a --max-time budget: the default character model's; None with a
    preset or at word level (trained as they are), or when the user typed a field the recipe would choose
    or assumes (they chose)."""
    if preset is not None or level != "char":
        return None
    return CHAR_LM.open_to(typed)

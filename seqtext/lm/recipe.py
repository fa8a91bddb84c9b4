"""The budget recipe of the default character model: the candidates `train lm --max-time` chooses among on
the machine at hand (seqtext.training.fitting).

The learning curves come from experiments on Quijote (docs/benchmarks.md, "Choosing the model for the
budget"): the defaults' window (bptt 128, batch 64) and learning-rate schedule, the validation bits per
character of each model after a run planned for N steps, seed 0. An epoch of its 95% training part is 246
steps, so the LSTM's curve reaches 6.3 epochs: a budget that buys it more passes over a smaller text keeps
it (the demo's 25 kB text: 11 steps an epoch, where 2 minutes on a bf16 CPU buy the LSTM about 60 epochs; it
stopped by patience after 252 steps at 2.15 bpc, the Elman RNN the curves had chosen at 2.34).
"""

from __future__ import annotations

from seqtext.training.fitting import Candidate, Recipe

# LSTM 2×512: step budgets of 125 and 250 steps, and the budget runs of bench_lm that bought it 379 steps
# (10 minutes, laptop profile, fp32), 629 (5 minutes, bf16) and 1,548 (10 minutes, bf16, 2026-11-22).
# Elman RNN 1×512: step budgets of 250, 750 and 2,300 steps, and bench_lm's 5 minutes on the laptop
# profile (1,165 steps). The LSTM's step costs the RNN's several times over (5× in fp32 on AVX2), so the
# RNN takes that many more steps in the same minutes: it learns more until the budget buys the LSTM
# several hundred steps, which bf16 machines reach in minutes and an fp32 laptop does not in 10.
LSTM_CURVE = ((125, 2.954), (250, 2.746), (379, 2.193), (629, 1.970), (1548, 1.758))
RNN_CURVE = ((250, 2.616), (750, 2.135), (1165, 2.014), (2300, 1.900))
CHAR_LM = Recipe(
    "char LM",
    (
        Candidate("LSTM 2×512", {"cell": "lstm", "hidden_dim": 512, "layers": 2}, LSTM_CURVE),
        Candidate("Elman RNN 1×512", {"cell": "rnn", "hidden_dim": 512, "layers": 1}, RNN_CURVE),
    ),
    loss="valid bpc",
    # what the experiments kept at their defaults: a user who types one of them has chosen the model
    assumes=frozenset({"embed_dim", "bptt", "batch_size", "sampled_softmax", "teacher_forcing"}),
    steps_per_epoch=246,
)


def budget_recipe(preset: str | None, level: str, typed: set[str]) -> Recipe | None:
    """The recipe that chooses the model for a --max-time budget: the default character model's; None with a
    preset or at word level (trained as they are), or when the user typed a field the recipe would choose
    or assumes (they chose)."""
    if preset is not None or level != "char":
        return None
    return CHAR_LM.open_to(typed)

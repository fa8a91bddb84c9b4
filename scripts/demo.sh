#!/bin/sh
# The main job on a fresh machine: install, train a small Spanish character model on the shipped corpus
# (about two minutes on a laptop CPU), then show its keyboard suggestions for "Voy al parque con mi per"
# and what it writes after it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh demo
. .venv/bin/activate
rm -rf runs/demo-es
seqtext train lm corpora/frases_es.txt --out runs/demo-es --max-time 2m
echo "--- keyboard suggestions for: Voy al parque con mi per"
seqtext complete runs/demo-es --text "Voy al parque con mi per"
echo "--- Voy al parque con mi per…"
for seed in 1 2 3; do
  printf 'Voy al parque con mi per'
  seqtext generate runs/demo-es --prompt "Voy al parque con mi per" --temperature 0.5 --max-new-tokens 60 --seed "$seed"
done
# Sentiment: a bidirectional LSTM on the 594 labelled phrases of corpora/frases_sentimiento.tsv (seconds),
# then the label and probabilities of a few new phrases, read from stdin.
rm -rf runs/demo-sentiment
seqtext train classifier corpora/frases_sentimiento.tsv --out runs/demo-sentiment --epochs 40 --patience 0
echo "--- sentiment (0 negative … 4 positive)"
printf '%s\n' "a warm , funny and deeply moving film" "dull , lifeless and far too long" \
  "the plot is predictable but the actors are charming" | seqtext classify runs/demo-sentiment -

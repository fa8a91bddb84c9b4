#!/bin/sh
# Install seqtext with its dev tools into .venv, then run the linter, the formatter's check and the test suite.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh dev
. .venv/bin/activate
ruff check .
ruff format --check .
status=0
python -m pytest -q "$@" || status=$?
[ "$status" -eq 5 ] && { echo "no tests collected"; exit 0; }  # pytest's 5 means nothing ran, not failure
exit "$status"

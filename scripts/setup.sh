#!/bin/sh
# Create .venv (if needed) and install seqtext into it. torch is installed first, pinned, when missing:
# an unpinned torch would pull gigabytes of CUDA packages on a CPU-only machine.
set -eu
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[$1]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import seqtext, torch; print('seqtext', seqtext.__version__, '· torch', torch.__version__)"

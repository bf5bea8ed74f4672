#!/usr/bin/env bash
# Create (or reuse) .venv and install taskrec with everything it needs, offline-capable models included.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${TASKREC_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The CPU wheel of torch 2.13.0 (a bare "torch" would pull several GB of CUDA builds).
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e ".[service,plot,dev]"

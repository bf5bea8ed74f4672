#!/usr/bin/env bash
# Create (or reuse) .venv and install taskrec with everything it needs, offline-capable models
# included. Idempotent and fast when nothing changed: the install is skipped while pyproject.toml
# and this script are what the last successful install saw (.venv/.taskrec-installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${TASKREC_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.taskrec-installed"
WANTED=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANTED" ] && [ -x "$VENV/bin/taskrec" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The CPU wheel of torch 2.13.0 (a bare "torch" would pull several GB of CUDA builds).
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
# The editable install's build warnings say nothing a user can act on: shown only on failure.
if ! "$VENV/bin/python" -m pip install --quiet -e ".[service,plot,dev]" > "$VENV/install.log" 2>&1; then
  cat "$VENV/install.log" >&2
  exit 1
fi
echo "$WANTED" > "$STAMP"

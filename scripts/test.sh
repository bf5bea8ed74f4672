#!/usr/bin/env bash
# Set up and run the whole test suite (unit, service, queue and the real-MiniLM integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # tests never reach a model hub
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up, then run taskrec on embedded defaults: the API with an in-process worker, SQLite and
# FAISS indexes under .taskrec/, the packaged MiniLM, and every task under the tasks root
# registered as the library (its embedding jobs run in the background; `taskrec jobs` shows them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
# Fewer examples per embedding than the service default (1,000) so a laptop CPU embeds the whole
# 64-task library in minutes rather than hours; override with TASKREC_MAX_EXAMPLES.
export TASKREC_MAX_EXAMPLES=${TASKREC_MAX_EXAMPLES:-256}
# The learned ranker starts from the project's own measured transfers (results/matrix.csv,
# fitted by results/evaluate.sh) and adds every transfer the service finishes.
export TASKREC_RANKER_PATH=${TASKREC_RANKER_PATH:-results/ranker.json}
exec .venv/bin/taskrec serve "$@"

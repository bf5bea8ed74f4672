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
# The learned ranker's settings and saved evaluation (results/evaluate.sh fits them).
export TASKREC_RANKER_PATH=${TASKREC_RANKER_PATH:-results/ranker.json}
# The packaged MiniLM's measured transfers, imported as evidence sets on start: the 1,000-row
# matrix (the default set) and the size-faithful one (sources on up to 10,000 rows; its sweep
# is still running, see results/run-matrix-10k.sh). Each owner's finished transfers add to them.
export TASKREC_EVIDENCE_FILES=${TASKREC_EVIDENCE_FILES:-'{"minilm-1k": "results/matrix.csv", "minilm-10k": "results/matrix-10k.csv"}'}
exec .venv/bin/taskrec serve "$@"

#!/usr/bin/env bash
# Set up, then run taskrec on embedded defaults: the API with an in-process worker, SQLite and
# FAISS indexes under .taskrec/, the packaged MiniLM, and every task under the tasks root
# registered as the library (its embedding jobs run in the background; `taskrec jobs` shows them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
# What is served is what was evaluated: the library's embeddings at the settings the saved
# evaluation read (1,000 examples, fp32), taken from the repository's results/embeddings where
# they are there (a library task is ready at once) and computed, as backfill, where not.
export TASKREC_EMBEDDING_SEED_PATHS=${TASKREC_EMBEDDING_SEED_PATHS:-'["results/embeddings"]'}
export TASKREC_EMBED_PRECISION=${TASKREC_EMBED_PRECISION:-fp32}
# Two job threads: backfill takes at most one, so a submitted task's job starts at once however
# much of the library is still queued.
export TASKREC_EMBEDDED_WORKERS=${TASKREC_EMBEDDED_WORKERS:-2}
# The learned ranker's settings and saved evaluation (results/evaluate.sh fits them).
export TASKREC_RANKER_PATH=${TASKREC_RANKER_PATH:-results/ranker.json}
# The packaged MiniLM's measured transfers, imported as evidence sets on start: the 1,000-row
# matrix (the default set), the size-faithful one (sources on up to 10,000 rows) and, in its
# protocol, the library calibration (every other library task as a donor on four probe targets,
# so every library task has a donor record; ask with evidence_set=). Each owner's finished
# transfers add to them.
export TASKREC_EVIDENCE_FILES=${TASKREC_EVIDENCE_FILES:-'{"minilm-1k": "results/matrix.csv", "minilm-10k": "results/matrix-10k.csv", "minilm-10k-calibration": "results/calibration-10k.csv"}'}
exec .venv/bin/taskrec serve "$@"

#!/usr/bin/env bash
# The one command that regenerates docs/results.md (and its figures) and results/ranker.json from
# results/matrix.csv. The embeddings come from results/embeddings/ (made by embed-library.sh, in
# fp32), so nothing is recomputed.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TASKREC_CACHE_PATH=results/embeddings TASKREC_EMBED_PRECISION=fp32
.venv/bin/taskrec evaluate results/matrix.csv --within-type --per-target \
  --save-ranker results/ranker.json --report docs/results.md "$@"

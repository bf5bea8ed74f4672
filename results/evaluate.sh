#!/usr/bin/env bash
# The one command that regenerates docs/results.md (and its figures) and results/ranker.json from
# results/matrix.csv. The embeddings come from results/embeddings/ (made by embed-library.sh, in
# fp32), so nothing is recomputed.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TASKREC_CACHE_PATH=results/embeddings TASKREC_EMBED_PRECISION=fp32
# Every method, TaskEmb's components one by one included.
METHODS="random,datasize,taskemb,taskemb_centred,textemb,semb,fused,sized,learned,oracle,taskemb:*"
# run-matrix.sh's MORE_TARGETS: measured after the learned ranker's settings were fixed, so the
# page scores them apart (the out-of-sample check).
FRESH="ud_gum_upos,rotten_tomatoes,btc_ner,sick,tweet_eval_hate,scitail,codah,hotpotqa"
# The evidence sets main.sh ships, compared on the page, and the size-faithful protocol's two
# sets as one: what the service fits on when both are a transfer model's defaults.
SETS="--evidence-set minilm-1k=results/matrix.csv --evidence-set minilm-10k=results/matrix-10k.csv"
SETS+=" --evidence-set minilm-10k-calibration=results/calibration-10k.csv"
SETS+=" --evidence-set minilm-10k+calibration=results/matrix-10k.csv+results/calibration-10k.csv"
.venv/bin/taskrec evaluate results/matrix.csv --within-type --per-target --methods "$METHODS" \
  --fresh-targets "$FRESH" --save-ranker results/ranker.json --report docs/results.md $SETS "$@"
# The transfer strategies' comparison (results/run-strategies.sh) into its section of the page
.venv/bin/python -m workers.research.strategies --report docs/results.md

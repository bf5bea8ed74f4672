#!/usr/bin/env bash
# The strategy comparison of issue 15: sequential, adapter and fusion on 6 sources × 6 targets ×
# 3 seeds. Resumable: run it again to continue; finished runs are skipped.
#
# Protocol: run-matrix.sh's exactly (sources 1,000 rows for 2 epochs; targets 200 rows for 3
# epochs, 200 scored, 64 tokens, batch 16), so the sequential rows are results/matrix.csv's
# own and only adapter and fusion are run here:
# - adapter: `taskrec sweep --strategy adapter` (one source per run: a fresh target adapter
#   stacked over the source's, against a fresh target adapter) into results/strategy-adapter.csv;
#   its source adapters are kept in the adapter library under the checkpoints folder;
# - fusion: `taskrec sweep --strategy fusion` with the same settings and checkpoints folder (so
#   it loads the adapter sweep's six source adapters instead of training them): per target ×
#   seed, AdapterFusion over all six sources' adapters, against a fresh target adapter, into
#   results/strategy-fusion.csv (source column snli+qnli+...).
# `.venv/bin/python -m workers.research.strategies --report docs/results.md` then writes the
# comparison into docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
CHECKPOINTS=${TASKREC_SWEEP_CHECKPOINTS:-/var/tmp/taskrec/checkpoints}
SOURCES=snli,qnli,stsb,sst2,conll2003_ner,social_i_qa
TARGETS=rte,mrpc,cb,tweet_eval_irony,sick_relatedness,wnut17_ner

# Fusion's baseline is the adapter strategy's (a fresh target adapter, same seeds and rows):
# the adapter sweep's baselines serve both rather than being measured twice.
for strategy in adapter fusion; do
  if [ "$strategy" = fusion ] && [ ! -f results/strategy-fusion.baselines.csv ]; then
    cp results/strategy-adapter.baselines.csv results/strategy-fusion.baselines.csv
  fi
  nice -n 10 .venv/bin/taskrec sweep --strategy "$strategy" --seeds 0,1,2 \
    --out "results/strategy-$strategy.csv" --checkpoints "$CHECKPOINTS" --threads 1 \
    --target-n 200 --eval-n 200 --max-length 64 --target-epochs 3 --batch-size 16 \
    --targets "$TARGETS" --sources "$SOURCES"
done

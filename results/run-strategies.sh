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
# - fusion: per target, AdapterFusion over all six sources' adapters (`taskrec transfer
#   --strategy fusion`), one JSON per target under results/strategy-fusion/.
# bash results/evaluate-strategies.sh then writes the comparison into docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
CHECKPOINTS=${TASKREC_SWEEP_CHECKPOINTS:-/var/tmp/taskrec/checkpoints}
SOURCES=snli,qnli,stsb,sst2,conll2003_ner,social_i_qa
TARGETS=rte,mrpc,cb,tweet_eval_irony,sick_relatedness,wnut17_ner

nice -n 10 .venv/bin/taskrec sweep --strategy adapter --seeds 0,1,2 \
  --out results/strategy-adapter.csv --checkpoints "$CHECKPOINTS" --threads 1 \
  --target-n 200 --eval-n 200 --max-length 64 --target-epochs 3 --batch-size 16 \
  --targets "$TARGETS" --sources "$SOURCES"

mkdir -p results/strategy-fusion
# The transfer command's adapter library is the sweep's and its token limits the sweep's (64;
# 256 per QA window), but its QA stride is the default one (the sweep's limited regime uses
# 64), which is part of an adapter's key: the first target trains the six sources' adapters
# again, on the same rows, and the next five reuse them.
export TASKREC_ADAPTERS_PATH="$CHECKPOINTS/adapters" TASKREC_MAX_LENGTH=64 TASKREC_QA_MAX_LENGTH=256
export OMP_NUM_THREADS=1
for target in ${TARGETS//,/ }; do
  out=results/strategy-fusion/$target.json
  [ -s "$out" ] && continue
  nice -n 10 .venv/bin/taskrec transfer --strategy fusion \
    $(printf -- '--source %s ' ${SOURCES//,/ }) --target "$target" --seeds 0,1,2 \
    --regime limited --source-n 1000 --source-epochs 2 --target-n 200 --eval-n 200 \
    --epochs 3 --batch-size 16 --json > "$out.tmp"
  mv "$out.tmp" "$out"
done

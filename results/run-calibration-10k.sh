#!/usr/bin/env bash
# The exact command that makes results/calibration-10k.csv: every library task that is not a
# source of results/matrix-10k.csv measured as a donor on the probe targets (the service's
# TASKREC_CALIBRATION_PROBES: four task types, all targets of the size-faithful sweep, so its 20
# sources already have their record there), 2 seeds, with run-matrix-10k.sh's protocol exactly.
# Same protocol, same checkpoints folder: sources trained by one sweep are reused by the other,
# and main.sh ships both sets as one default evidence set pair of the packaged MiniLM.
# Resumable: run it again to continue. Run it after run-matrix-10k.sh (they share the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=results/calibration-10k.csv
CHECKPOINTS=${TASKREC_SWEEP_CHECKPOINTS:-/var/tmp/taskrec/checkpoints}
TASKS_ROOT=${TASKREC_TASKS_ROOT:-../shared/tasks}
PROBES=rte,sick_relatedness,quartz,wnut17_ner
SWEPT=" snli conll2003_ner stsb sst2 ud_ewt_upos qnli social_i_qa squad commonsense_qa squad_v2 
 ag_news conll2000_chunk hellaswag trec cola pmb_semtag qqp imdb cosmos_qa ropes "
SOURCES=()
for folder in "$TASKS_ROOT"/*/; do
  name=$(basename "$folder")
  [[ -f "$folder/task.json" && "$SWEPT" != *" $name "* ]] && SOURCES+=("$name")
done
# The probes' baselines are run-matrix-10k.sh's (same target protocol, seeds and rows).
[ -f "${OUT%.csv}.baselines.csv" ] || cp results/matrix-10k.baselines.csv "${OUT%.csv}.baselines.csv"

sweep() {  # sources
  nice -n 10 .venv/bin/taskrec sweep --seeds 0,1 --out "$OUT" --checkpoints "$CHECKPOINTS" \
    --threads 1 --source-n 10000 --source-epochs 1 --target-n 200 --eval-n 200 --max-length 64 \
    --target-epochs 3 --batch-size 16 --targets "$PROBES" --sources "$1"
}
half=$(( (${#SOURCES[@]} + 1) / 2 ))
first=$(IFS=,; echo "${SOURCES[*]:0:$half}")
second=$(IFS=,; echo "${SOURCES[*]:$half}")
sweep "$first" &
sweep "$second" &
wait

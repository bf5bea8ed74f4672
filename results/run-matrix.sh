#!/usr/bin/env bash
# The exact command that makes results/matrix.csv. Resumable: run it again to continue; finished
# runs are skipped. Two sweeps of one thread each share the CSV (2 cores), each with half of the
# sources; the second starts once the first has measured every baseline, so none is run twice.
# Sources are ordered so that a partial matrix already spans all five task types.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
TARGETS=rte,mrpc,cb,tweet_eval_emotion,tweet_eval_irony,wic,sick_relatedness,copa,quartz,wnut17_ner
SOURCES_A=snli,squad,commonsense_qa,conll2003_ner,stsb,sst2,social_i_qa,ud_ewt_upos,squad_v2,qnli
SOURCES_B=hellaswag,conll2000_chunk,ag_news,ropes,cosmos_qa,pmb_semtag,qqp,trec,imdb,cola
SEEDS=0,1,2

sweep() {
  .venv/bin/taskrec sweep --seeds "$SEEDS" --out results/matrix.csv --threads 1 \
    --target-n 200 --eval-n 200 --max-length 64 --target-epochs 3 --batch-size 16 \
    --targets "$TARGETS" --sources "$1"
}

baselines() { [ -f results/matrix.baselines.csv ] && tail -n +2 results/matrix.baselines.csv | wc -l || echo 0; }

sweep "$SOURCES_A" &
first=$!
wanted=$(( $(echo "$TARGETS" | tr ',' '\n' | wc -l) * $(echo "$SEEDS" | tr ',' '\n' | wc -l) ))
while [ "$(baselines)" -lt "$wanted" ] && kill -0 "$first" 2>/dev/null; do sleep 10; done
sweep "$SOURCES_B" &
second=$!
wait "$first" "$second"

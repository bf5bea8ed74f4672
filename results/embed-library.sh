#!/usr/bin/env bash
# Embeds every task of the matrix (TaskEmb, TextEmb, SEmb; the service's default settings) into
# results/embeddings/, the cache `taskrec evaluate` reads with TASKREC_CACHE_PATH set to it.
# Resumable: an embedding already there is a cache hit. One thread (the sweeps share the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TASKREC_CACHE_PATH=results/embeddings
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
TASKS="rte mrpc cb tweet_eval_emotion tweet_eval_irony wic sick_relatedness copa quartz wnut17_ner
snli squad commonsense_qa conll2003_ner stsb sst2 social_i_qa ud_ewt_upos squad_v2 qnli
hellaswag conll2000_chunk ag_news ropes cosmos_qa pmb_semtag qqp trec imdb cola"
for task in $TASKS; do
  .venv/bin/taskrec embed "$task" --method taskemb --method textemb --method semb --json > /dev/null
  echo "embedded $task"
done

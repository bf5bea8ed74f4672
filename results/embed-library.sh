#!/usr/bin/env bash
# Embeds every task of the matrix, then every other library task (TaskEmb, TextEmb, SEmb; the
# service's default settings, fp32) into results/embeddings/: the cache `taskrec evaluate`
# reads from the repository, and the one `scripts/main.sh` serves the library from.
# Resumable: an embedding already there is a cache hit. One thread (the sweeps share the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TASKREC_CACHE_PATH=results/embeddings
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export TASKREC_EMBED_PRECISION=fp32  # how the committed vectors were made
# Targets first, then the sources in the order the two sweeps reach them.
TASKS="rte mrpc cb tweet_eval_emotion tweet_eval_irony wic sick_relatedness copa quartz wnut17_ner
snli hellaswag squad conll2000_chunk commonsense_qa ag_news conll2003_ner ropes stsb cosmos_qa
sst2 pmb_semtag social_i_qa qqp ud_ewt_upos trec squad_v2 imdb qnli cola
hotpotqa ud_gum_upos codah rotten_tomatoes btc_ner sick tweet_eval_hate scitail"
# Then every other library task, so `scripts/main.sh` (which reads this folder) serves a
# complete library at first start.
ROOT=${TASKREC_TASKS_ROOT:-../shared/tasks}
ALL=$(for folder in "$ROOT"/*/; do [ -f "$folder/task.json" ] && basename "$folder"; done)
for task in $TASKS $ALL; do
  .venv/bin/taskrec embed "$task" --method taskemb --method textemb --method semb --json > /dev/null
  echo "embedded $task"
done

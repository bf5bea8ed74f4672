#!/usr/bin/env bash
# The exact command that makes results/matrix.csv (resumable: run it again to continue).
# Sources are ordered so that a partial matrix already spans all five task types.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/taskrec sweep --seeds 0,1,2 --out results/matrix.csv \
  --target-n 200 --eval-n 300 --max-length 64 --target-epochs 3 --batch-size 16 \
  --sources snli,squad,commonsense_qa,conll2003_ner,stsb \
  --sources sst2,social_i_qa,ud_ewt_upos,squad_v2,qnli \
  --sources hellaswag,conll2000_chunk,ag_news,ropes,cosmos_qa \
  --sources pmb_semtag,qqp,trec,imdb,cola \
  --targets rte,mrpc,cb,tweet_eval_emotion,sick_relatedness \
  --targets copa,piqa,quartz,hotpotqa,wnut17_ner "$@"

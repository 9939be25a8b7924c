#!/usr/bin/env bash
# Issue 4, point 2: does CP with context/time modes beat the same encoder without modes on tail
# Recall@20 when the data's preferences really depend on context and time?
set -euo pipefail
W=${W:-/tmp/planted}
mrs synth --format hm --out "$W/raw" --users 2000 --items 3000 --interactions 60000 --seed 0 --no-images
# 8-week valid and test windows (the default 1 week leaves too few test purchases for tight CIs)
mrs prepare hm --raw "$W/raw" --out "$W/prepared" --set test_days=56 --set valid_days=56
TQDM_DISABLE=1 mrs compare --config experiments/planted/compare.yaml --set data.dir="$W/prepared" \
    --out "$W/compare" --no-wandb

# Issue 11 final (results/issue11_full/): the command above with --set train.num_threads=1 --out "$W/compare_full".
# Issue 11 rerun (results/issue11/, superseded): three seeds, both query kinds, paired differences to mf,
# with a shorter budget than the config's (<= 60 epochs, patience 15) to fit the session:
#   TQDM_DISABLE=1 mrs compare --config experiments/planted/compare.yaml --set data.dir="$W/prepared" \
#       --set train.num_threads=1 --set train.epochs=60 --set train.patience=15 --out "$W/compare" --no-wandb
# MF vs MF + CP at the committed full budget (<= 150 epochs, patience 25), three seeds:
#   TQDM_DISABLE=1 mrs compare --config experiments/planted/compare_mf_full.yaml --set data.dir="$W/prepared" \
#       --out "$W/compare_mf_full" --no-wandb

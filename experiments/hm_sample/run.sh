#!/usr/bin/env bash
# Issue 4, point 3: the compare table on the real H&M sample with text and image features.
set -euo pipefail
W=${W:-/tmp/hm}
# 4-week valid and test windows: the sample's last week alone holds ~220 purchases
mrs prepare hm --config configs/datasets/hm.yaml --out "$W/prepared" --set test_days=28 --set valid_days=28
HF_HUB_OFFLINE=1 mrs features text --dataset "$W/prepared"     # -> features/text-minilm.h5
HF_HUB_OFFLINE=1 mrs features image --dataset "$W/prepared"    # -> features/image-efficientnet_lite0.h5
TQDM_DISABLE=1 mrs compare --config experiments/hm_sample/compare.yaml --set data.dir="$W/prepared" \
    --out "$W/compare" --no-wandb

# Issue 11 rerun (results/issue11/): text features only (the image store did not finish on the
# loaded 2-core box), three seeds, both query kinds, paired differences to mf, and a shorter
# budget (<= 60 epochs, patience 15) to fit the session:
#   TQDM_DISABLE=1 mrs compare --config experiments/hm_sample/compare.yaml --set data.dir="$W/prepared" \
#       --set "data.features=[text-minilm]" --set train.num_threads=1 --set train.epochs=60 \
#       --set train.patience=15 --out "$W/compare" --no-wandb
# The kNN in-degree concentration (issue 11, point 1):
#   python experiments/hm_sample/knn_hubs.py --dataset "$W/prepared" --features text-minilm

#!/usr/bin/env bash
# Issue 4, point 1: MF-BPR and LightGCN on Amazon 2014 Sports (MMRec 8:1:1 split), no modes, 64-d.
# The numbers in README.md came from exactly these commands (on the lent H100 machine, 14 grid
# points at once, data copied to .devdata/sports); on a 2-core CPU use --jobs 1 (slow, resumable).
set -euo pipefail
DATA=${DATA:-data/prepared/sports}
OUT=${OUT:-runs/sports_grid}
[ -f "$DATA/dataset.json" ] || mrs prepare amazon2014 --split mmrec \
    --sequences ../shared/data/amazon2014/Sports_and_Outdoors.txt --out "$DATA"
export TQDM_DISABLE=1
# 1) grid on validation only (test unread), 2) report + test of the chosen point per model, once
OMP_NUM_THREADS=1 python experiments/sports_reproduction/grid.py --data "$DATA" --out "$OUT" \
    --jobs "${JOBS:-1}" --set train.num_threads=1 --no-test
python experiments/sports_reproduction/grid.py --data "$DATA" --out "$OUT" --report
# 3) wall time until the chosen LightGCN run first reached its final validation Recall@20
python experiments/benchmarks/bench_train_speed.py --skip-timing --run "$OUT/lightgcn/lr0.005_reg0.001_layers3"

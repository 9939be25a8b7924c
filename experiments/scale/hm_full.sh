#!/bin/bash
# Full-size H&M stand-in end to end on CPU: mrs synth --format hm at Kaggle's full size (the real
# full H&M files are not on this machine), prepare (full and --last-weeks 12), then one epoch of
# LightGCN+CP and MF+CP on the 12-week window (features off, global batch from BATCHES, default
# 16384, with the learning rate scaled linearly from 2048 / 1e-3), full ranking of every valid and
# test user, the test read after the train+valid refit (final_fit auto on the temporal split).
# Each step under /usr/bin/time -v: wall and peak RSS. Run from the repository root:
#   bash experiments/scale/hm_full.sh [WORKDIR]
#   ENCODERS="lightgcn" BATCHES="16384 65536" FULL=0 bash experiments/scale/hm_full.sh [WORKDIR]
# (FULL=0 skips preparing the full 105-week dataset when only the 12-week window is trained.)
set -u
W=${1:-/tmp/mrs_bench/hm_full}; mkdir -p "$W"
PY=${PYTHON:-.venv/bin/python}
step() {  # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > "$W/$name.log" 2>&1; local rc=$?
  local wall=$(grep "Elapsed (wall" "$W/$name.log" | awk '{print $NF}')
  local rss=$(grep "Maximum resident" "$W/$name.log" | awk '{printf "%.2f", $NF/1024/1024}')
  echo "$name: exit $rc, wall $wall, peak RSS $rss GB"
}
[ -f "$W/raw/transactions_train.csv" ] || step synth $PY -m mrs synth --format hm --no-images --out "$W/raw" \
    --users 1371980 --items 105542 --interactions 31788324 --seed 0
[ "${FULL:-1}" = 0 ] || [ -f "$W/full/dataset.json" ] || step prepare_full $PY -m mrs prepare hm --raw "$W/raw" --out "$W/full"
[ -f "$W/w12/dataset.json" ] || step prepare_12w $PY -m mrs prepare hm --raw "$W/raw" --out "$W/w12" --last-weeks 12
for d in full w12; do [ -f "$W/$d/dataset.json" ] && $PY -c "import json; print('$d', {k: json.load(open('$W/$d/dataset.json'))[k] for k in ('n_users', 'n_items', 'n_interactions', 'splits')})"; done
for enc in ${ENCODERS:-lightgcn mf}; do
for bs in ${BATCHES:-16384}; do
  lr=$($PY -c "print(1e-3 * $bs / 2048)"); run="$W/run_${enc}_b$bs"
  rm -rf "$run"
  echo "train_${enc}_b$bs: lr $lr, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  step "train_${enc}_b$bs" $PY -m mrs train --no-wandb --out "$run" --set data.dir="$W/w12" \
      --set model.encoder=$enc --set model.dim=64 --set train.epochs=1 --set train.batch_size=$bs \
      --set train.lr=$lr --set train.device=cpu --set eval.bootstrap=0
  # the epoch's own wall time: the last training progress line (steps, elapsed) of the log
  echo "  epoch: $(tr '\r' '\n' < "$W/train_${enc}_b$bs.log" | grep -a '^epoch 1/1: 100%' | head -1 | sed 's/ *$//')"
  $PY -c "
import json; m = json.load(open('$run/metrics.json')); h = m['history'][-1]
print('  $enc+cp b$bs: epoch incl. valid eval %.0f s; valid recall@20 %.4f; test recall@20 all %.4f; test queries %d; rank s valid %s test %s' % (
    h['time_s'], h['valid/recall@20'], m['test']['all']['recall@20'], m['n_queries']['test']['all'],
    m['eval_info']['valid'].get('rank_seconds'), m['eval_info']['test'].get('rank_seconds')))"
done
done

#!/bin/bash
# A DDP worker killed mid-epoch: torchrun fails the job naming the rank and signal; --resume
# continues from the last complete checkpoint. Run from the repository root:
#   bash experiments/scale/ddp_kill_resume.sh [WORKDIR]
set -u
W=${1:-/tmp/mrs_bench/kill}; mkdir -p "$W"; OUT=$W/run; rm -rf "$OUT"
PY=${PYTHON:-.venv/bin/python}
[ -f "$W/data/dataset.json" ] || $PY -c "from mrs.synth import make_prepared; make_prepared('$W/data', n_users=3000, n_items=2000, n_interactions=150000, seed=0, modes=True)"
S="--set data.dir=$W/data --set model.dim=32 --set train.epochs=3 --set train.batch_size=512 --set train.device=cpu --set eval.bootstrap=0 --set model.encoder=lightgcn --no-wandb"
$PY -m torch.distributed.run --standalone --nproc_per_node 2 -m mrs train $S --out "$OUT" > "$W/kill.log" 2>&1 &
TR=$!
while [ ! -f "$OUT/last.pt" ]; do sleep 1; done   # epoch 1 checkpointed
sleep 5                                            # now mid-epoch 2
R1=$(for p in $(pgrep -P $TR); do for c in $p $(pgrep -P $p); do grep -qz "^LOCAL_RANK=1$" /proc/$c/environ 2>/dev/null && echo $c; done; done | head -1)
echo "kill -9 rank 1 (pid $R1)"; kill -9 "$R1"
wait $TR; echo "torchrun exit code $?"
grep -A6 "Root Cause" "$W/kill.log"
$PY -c "import torch; print('last.pt: epochs completed =', torch.load('$OUT/last.pt', weights_only=False)['state']['epoch'])"
$PY -m torch.distributed.run --standalone --nproc_per_node 2 -m mrs train $S --out "$OUT" --resume 2>&1 | tr '\r' '\n' | grep "resuming\|INFO mrs.train.trainer: epoch\|best epoch"

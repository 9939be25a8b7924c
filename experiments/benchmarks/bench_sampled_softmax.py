"""Issue 20, point 2: the cost of SASRec's sampled softmax per prediction (RecTools' way: K
negatives gathered for every position) against one set of K shared by the step's predictions
(``model.loss_negatives_scope=batch``: one ``(N, d) @ (d, K)`` matmul), on the same batches of the
same data, in one run; full-softmax CE beside them as the reference.

    python experiments/benchmarks/bench_sampled_softmax.py --data runs/data/Beauty [--batches 20]

Prints seconds per training step (forward + backward + Adam) for each, and the ratio to the
per-prediction scope. Accuracy is not measured here: the valid curves of whole runs are in
experiments/sequential_amazon2014/README.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def steps_per_second(data: str, loss: str, scope: str, negatives: int, batches: int, threads: int) -> float:
    from mrs.train.config import load_train_config
    from mrs.train.trainer import Trainer, configure_process, seed_everything

    sets = [f"data.dir={data}", "model.encoder=mf", "model.user_encoder=sasrec", "model.modes=false",
            "model.seq_blocks=1", "model.seq_heads=1", "model.seq_dropout=0.2", "model.dim=64", "model.reg=0",
            f"model.loss={loss}", "train.batch_size=256", f"train.num_threads={threads}", "train.device=cpu"]
    if loss == "sampled_softmax":
        sets += [f"model.loss_negatives={negatives}", f"model.loss_negatives_scope={scope}"]
    cfg = load_train_config(None, sets)
    configure_process(threads)
    tr = Trainer.build(cfg, seed_everything(0))
    tr.model.train()
    tr.model.on_epoch_start(0, tr.generator)
    n = len(tr.seq.train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    bs = cfg.train.batch_size
    tr.train_step(order[:bs])  # warm-up (allocations, first-call dispatch)
    t0 = time.perf_counter()
    for b in range(1, batches + 1):
        tr.train_step(order[b * bs:(b + 1) * bs])
    return (time.perf_counter() - t0) / batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared leave-last-out dataset (mrs prepare amazon2014)")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--negatives", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    rows = [("sampled_softmax, K per prediction", "sampled_softmax", "prediction"),
            ("sampled_softmax, K shared by the step", "sampled_softmax", "batch"),
            ("ce (full softmax)", "ce", "prediction")]
    res = {name: steps_per_second(a.data, loss, scope, a.negatives, a.batches, a.threads) for name, loss, scope in rows}
    ref = res[rows[0][0]]
    print(f"SASRec step (batch 256, d=64, 1 block, K={a.negatives}, {a.threads} thread(s), {a.batches} steps each)")
    for name, s in res.items():
        print(f"  {name:40s} {s * 1000:8.1f} ms/step   x{s / ref:.3f} of per-prediction")


if __name__ == "__main__":
    main()

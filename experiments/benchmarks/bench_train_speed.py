"""Issue 4, point 4: training and evaluation speed on Amazon 2014 Sports.

LightGCN, 64-d, 2 layers, batch 2048 (``configs/experiments/sports_lightgcn.yaml`` with those
settings forced). Prints, each measured in this run:
  * seconds per training epoch with uniform negatives (target <= 10 s on 2 CPU cores;
    MMRec's own LightGCN takes about 20 s there),
  * the same with dynamic hard negatives (M = 16) and its ratio to uniform (target <= 1.5x),
  * one full-ranking evaluation of every Sports user on valid (target <= 5 s),
  * the baseline: one epoch of MMRec's negative sampler (a Python loop over the batch's users,
    redrawing until the item is not one of the user's) against ours (vectorised, exact),
  * with ``--run DIR`` (the point-1 LightGCN run): total training wall time until its history
    first reaches its final best validation Recall@20.

    taskset -c 0,1 python experiments/benchmarks/bench_train_speed.py --data /work/prepared/sports --threads 2
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, configure_process

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "sports_lightgcn.yaml"


def epoch_seconds(tr: Trainer, epoch: int) -> float:
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tr.train_epoch(epoch)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def mmrec_style_sampling(users: np.ndarray, items: np.ndarray, n_items: int, batch: int) -> float:
    """MMRec's sampler (``TrainDataLoader._sample_neg_ids``): per row, redraw until unseen."""
    seen: dict[int, set] = {}
    for u, i in zip(users.tolist(), items.tolist()):
        seen.setdefault(u, set()).add(i)
    t0 = time.perf_counter()
    for start in range(0, len(users), batch):
        negs = []
        for u in users[start:start + batch].tolist():
            j = random.randint(0, n_items - 1)
            while j in seen[u]:
                j = random.randint(0, n_items - 1)
            negs.append(j)
        torch.tensor(negs)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/prepared/sports")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the issue's 2 cores)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per setting (mean reported)")
    ap.add_argument("--run", type=Path, help="point-1 LightGCN run dir (for time-to-best)")
    ap.add_argument("--skip-timing", action="store_true", help="only the --run time-to-best figure")
    a = ap.parse_args(argv)
    if not a.skip_timing:
        timings(a)
    if a.run:
        time_to_best(a.run)
    return 0


def timings(a: argparse.Namespace) -> None:
    configure_process(a.threads)  # threads and glibc allocator thresholds, as `mrs train` sets them
    base = [f"data.dir={a.data}", "model.encoder=lightgcn", "model.dim=64", "model.layers=2",
            "model.modes=false", "train.batch_size=2048", f"train.device={a.device}",
            f"train.num_threads={a.threads}", "eval.bootstrap=0"]
    res = {}
    for neg in ("uniform", "dynamic"):
        cfg = load_train_config(CONFIG, [*base, f"train.negatives={neg}", "train.n_candidates=16"])
        tr = Trainer.build(cfg)
        ts = [epoch_seconds(tr, e) for e in range(a.epochs + 1)][1:]  # first epoch = warm-up
        res[neg] = float(np.mean(ts))
        print(f"LightGCN epoch, {neg:7s} negatives: {res[neg]:.2f} s "
              f"({len(tr.triples)} triples, {a.threads} threads, {tr.device}; epochs {[round(t, 2) for t in ts]})",
              flush=True)
    print(f"dynamic (M=16) / uniform epoch time: {res['dynamic'] / res['uniform']:.2f}x (target <= 1.5x)")
    print(f"uniform epoch vs MMRec's ~20 s: {20.0 / res['uniform']:.1f}x faster (target <= 10 s)")
    tr.evaluate("valid", ci=False)  # builds the query set once (as training does), then time it
    t0 = time.perf_counter()
    r = tr.evaluate("valid", ci=False)
    print(f"full-ranking evaluation of {r.n_queries['all']} valid users x {tr.ds.n_items} items: "
          f"{time.perf_counter() - t0:.2f} s (target <= 5 s)")
    t_ours = time.perf_counter()
    idx = torch.arange(len(tr.triples))
    for s in range(0, len(idx), 2048):
        tr.sampler.uniform(tr.triples.users[idx[s:s + 2048]].cpu())
    t_ours = time.perf_counter() - t_ours
    t_mmrec = mmrec_style_sampling(tr.triples.users.cpu().numpy(), tr.triples.items.cpu().numpy(),
                                   tr.ds.n_items, 2048)
    print(f"negative sampling, one epoch: ours {t_ours:.3f} s, MMRec-style loop {t_mmrec:.3f} s "
          f"({t_mmrec / t_ours:.1f}x)")


def time_to_best(run: Path) -> None:
    """Wall time (training + per-epoch validation, from the run's history) until the run first
    reached the best validation value it ended with."""
    m = json.loads((run / "metrics.json").read_text())
    key = f"valid/{m['select_metric']}"
    elapsed = 0.0
    for h in m["history"]:
        elapsed += h["time_s"]
        if key in h and h[key] >= m["best_valid"]:
            print(f"{run}: reached its final best valid {m['select_metric']} "
                  f"{m['best_valid']:.4f} at epoch {h['epoch']} after {elapsed:.0f} s of training "
                  f"(device {m['device']}; {m['epochs_run']} epochs run in {m['train_time_s']:.0f} s)")
            break


if __name__ == "__main__":
    raise SystemExit(main())

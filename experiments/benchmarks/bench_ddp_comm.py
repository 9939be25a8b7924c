"""Benchmark: gradient communication per step under ``torchrun`` (2 gloo processes on CPU), dense
all-reduce vs row-sparse sync (``train.sparse_grads``), on a generated Sports-sized dataset.

    python experiments/benchmarks/bench_ddp_comm.py [--epochs 1] [--work /tmp/mrs_bench/ddp]

Generates a planted prepared dataset with Amazon Sports' sizes (35,598 users, 18,357 items,
296,337 interactions; ``mrs.synth.make_prepared``), then trains, each for ``--epochs`` with the
same seed and global batch 2048, 64-d: MF dense, MF row-sparse, LightGCN dense (2 ranks), and
MF in one process (the baseline). Prints, from each run's rank-0 log, the gradient bytes per
step, the bytes each rank sent per step (ring all-reduce: 2 (N-1)/N of the tensors; sparse:
(N-1) x the gathered rows), the seconds spent syncing, the epoch time and valid recall@20.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPORTS = dict(n_users=35_598, n_items=18_357, n_interactions=296_337)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/mrs_bench/ddp")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work)
    data = work / "sports_sized"
    if not (data / "dataset.json").is_file():
        from mrs.synth import make_prepared
        make_prepared(data, seed=0, modes=True, **SPORTS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = ["--set", f"data.dir={data}", "--set", "model.dim=64", "--set", f"train.epochs={args.epochs}",
            "--set", "train.batch_size=2048", "--set", "train.device=cpu", "--set", "eval.bootstrap=0",
            "--no-wandb"]
    runs = [("mf, 1 process", 1, ["--set", "model.encoder=mf"]),
            ("mf, dense all-reduce", args.nproc, ["--set", "model.encoder=mf"]),
            ("mf, row-sparse", args.nproc, ["--set", "model.encoder=mf", "--set", "train.sparse_grads=true"]),
            ("lightgcn, dense all-reduce", args.nproc, ["--set", "model.encoder=lightgcn"])]
    print(f"{'run':<28} {'grad MiB/step':>13} {'sent MiB/rank/step':>18} {'sync s':>7} "
          f"{'epoch+eval s':>13} {'valid recall@20':>15}", flush=True)
    for k, (name, nproc, extra) in enumerate(runs):
        out = work / f"run{k}"
        shutil.rmtree(out, ignore_errors=True)
        launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(nproc), "-m", "mrs"] if nproc > 1 else [sys.executable, "-m", "mrs"])
        t0 = time.perf_counter()
        proc = subprocess.run(launch + ["train", *base, *extra, "--out", str(out)], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        log = (proc.stdout + proc.stderr).replace("\r", "\n")
        m = re.findall(r"gradient sync: ([\d.]+) MiB of gradients per step, ([\d.]+) MiB sent per rank "
                       r"per step, \d+ steps, ([\d.]+) s", log)
        metrics = json.loads((out / "metrics.json").read_text())
        epoch_s = metrics["history"][-1]["time_s"]
        recall = metrics["history"][-1].get("valid/recall@20")
        grad, sent, sync = m[-1] if m else ("-", "-", "-")
        print(f"{name:<28} {grad:>13} {sent:>18} {sync:>7} {epoch_s:>13.1f} {recall:>15.4f}"
              f"   (wall {wall:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

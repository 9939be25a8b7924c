"""Closed-form baselines on Amazon 2014 Sports (35,598 users x 18,357 items): fit time, peak RSS and
test evaluation time of pop, ItemKNN, RP3beta and EASE, and EASE's fit against a plain
``numpy.linalg.inv`` transcription (Steck's code: dense float64 Gram matrix, inverse, scale), all
in one run. Each measurement runs in a fresh child process, so its peak RSS is its own.

    mrs prepare amazon2014 --sequences Sports_and_Outdoors.txt --out /tmp/b1/sports
    nice -n 5 python experiments/benchmarks/bench_baselines.py --data /tmp/b1/sports --threads 2

``rss_fit`` is the child's peak RSS (ru_maxrss) minus its RSS after loading the data and building
the trainer, i.e. what the fit itself added at its peak.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's mrs, also in the child processes

MODELS = ("pop", "itemknn", "rp3beta", "ease")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_model(data: str, model: str, threads: int, lam: float) -> dict:
    from mrs.train.closed_form import fit_once
    from mrs.train.config import load_train_config
    from mrs.train.trainer import Trainer, configure_process

    cfg = load_train_config(None, [f"data.dir={data}", f"model.encoder={model}", "train.device=cpu",
                                   f"train.num_threads={threads}", "eval.bootstrap=0",
                                   "eval.mask_valid_at_test=false"]
                            + ([f"model.options.ease.lam={lam}"] if model == "ease" else []))
    configure_process(threads)
    tr = Trainer.build(cfg)
    base = rss_mb()
    t0 = time.perf_counter()
    fit_once(tr)
    fit_s = time.perf_counter() - t0
    peak_fit = peak_mb()
    t0 = time.perf_counter()
    res = tr.evaluate("test", ci=False)
    eval_s = time.perf_counter() - t0
    return {"model": model, "fit_s": fit_s, "eval_s": eval_s, "rss_fit_mb": peak_fit - base,
            "peak_mb": peak_mb(), "recall@20": res.metrics["all"]["recall@20"]}


def child_numpy_inv(data: str, threads: int, lam: float) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from mrs.data.prepared import load_prepared
    from mrs.models.closed.base import Interactions

    x = Interactions.from_dataset(load_prepared(data)).matrix().astype(np.float64)
    base = rss_mb()
    with threadpool_limits(threads):
        t0 = time.perf_counter()
        g = (x.T @ x).toarray()                         # Steck's EASE, as published
        g[np.diag_indices(g.shape[0])] += lam
        p = np.linalg.inv(g)
        b = p / (-np.diag(p))
        b[np.diag_indices(g.shape[0])] = 0.0
        fit_s = time.perf_counter() - t0
    return {"model": "numpy.linalg.inv (float64)", "fit_s": fit_s, "eval_s": float("nan"),
            "rss_fit_mb": peak_mb() - base, "peak_mb": peak_mb(), "recall@20": float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared Amazon 2014 Sports directory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lam", type=float, default=300.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        out = (child_numpy_inv(args.data, args.threads, args.lam) if args.child == "numpy_inv"
               else child_model(args.data, args.child, args.threads, args.lam))
        print("RESULT " + json.dumps(out))
        return
    print(f"data {args.data}, threads {args.threads}, λ={args.lam:g}, cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = {}
    for what in (*MODELS, "numpy_inv"):
        r = subprocess.run([sys.executable, __file__, "--data", args.data, "--threads", str(args.threads),
                            "--lam", str(args.lam), "--child", what], capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{what}: failed\n{r.stderr[-2000:]}")
            continue
        rows[what] = d = json.loads(line[7:])
        print(f"{d['model']:28s} fit {d['fit_s']:8.1f} s  +{d['rss_fit_mb']:7.0f} MB at the fit's peak  "
              f"(peak RSS {d['peak_mb']:6.0f} MB)  test eval {d['eval_s']:6.1f} s  "
              f"test recall@20 {d['recall@20']:.4f}", flush=True)
    if "ease" in rows and "numpy_inv" in rows:
        e, n = rows["ease"], rows["numpy_inv"]
        print(f"EASE fit / numpy.linalg.inv: time {e['fit_s'] / n['fit_s']:.2f}x, "
              f"memory added {e['rss_fit_mb'] / n['rss_fit_mb']:.2f}x "
              f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

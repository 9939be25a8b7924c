"""Issue 4, point 1: reproduce MMRec's Sports numbers (MF-BPR R@20 0.0653, LightGCN 0.0864).

A small validation grid per model (lr, reg; layers for LightGCN), each point one ``run_train``
into ``OUT/<model>/<point>/`` with the test split left unread. The best point per model is picked
on validation Recall@20 and only that run's ``best.pt`` is evaluated on test (once). Resumable:
finished points are skipped, interrupted ones continue from ``last.pt``. ``--jobs N`` trains N
points at once (one process each: useful on a GPU machine, where one run leaves it mostly idle).

    python experiments/sports_reproduction/grid.py --data /work/prepared/sports --out runs/sports_grid
    python experiments/sports_reproduction/grid.py ... --report   # table from what exists so far
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import multiprocessing as mp
import sys
from pathlib import Path

import torch

from mrs.config import save_config
from mrs.train.checkpoint import LAST
from mrs.train.config import load_train_config
from mrs.train.trainer import evaluate_checkpoint, run_train

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "experiments"
GRID = {  # model -> (base config, {key: values})
    "mf": ("sports_mf.yaml", {"train.lr": [1e-3, 5e-3], "model.reg": [1e-4, 1e-3, 1e-2]}),
    "lightgcn": ("sports_lightgcn.yaml", {"train.lr": [1e-3, 5e-3], "model.reg": [1e-4, 1e-3],
                                          "model.layers": [2, 3]}),
}


def points(model: str) -> list[dict]:
    keys, values = zip(*GRID[model][1].items())
    return [dict(zip(keys, v)) for v in itertools.product(*values)]


def point_name(p: dict) -> str:
    return "_".join(f"{k.split('.')[-1]}{v:g}" for k, v in p.items())


def train_point(model: str, p: dict, data: str, out: str, extra: list[str]) -> str:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    over = [f"data.dir={data}", *[f"{k}={v}" for k, v in p.items()], *extra]
    cfg = load_train_config(CONFIGS / GRID[model][0], over)
    run_dir = Path(out) / model / point_name(p)
    if (run_dir / "metrics.json").is_file():
        return f"{model}/{point_name(p)}: done"
    m = run_train(cfg, run_dir, resume=True, evaluate_test=False)  # test stays unread
    return f"{model}/{point_name(p)}: best epoch {m['best_epoch']} valid R@20 {m['valid']['all']['recall@20']:.4f}"


def row(model: str, p: dict, out: Path) -> dict:
    run = out / model / point_name(p)
    r = {"model": model, **{k.split(".")[-1]: v for k, v in p.items()}, "run": str(run)}
    if (run / "metrics.json").is_file():
        m = json.loads((run / "metrics.json").read_text())
        r.update(status="done", best_epoch=m["best_epoch"], epochs=m["epochs_run"],
                 valid_r20=m["valid"]["all"]["recall@20"], valid_n20=m["valid"]["all"]["ndcg@20"],
                 train_s=m["train_time_s"], test=m.get("test"))
    elif (run / LAST).is_file():  # unfinished: report its best validation so far
        st = torch.load(run / LAST, map_location="cpu", weights_only=False)["state"]
        r.update(status=f"unfinished@{st['epoch']}", best_epoch=st["best_epoch"], epochs=st["epoch"],
                 valid_r20=st["best_value"], valid_n20=float("nan"),
                 train_s=sum(h["time_s"] for h in st["history"]))
    else:
        r.update(status="missing")
    return r


def report(models: list[str], out: Path, test: bool) -> None:
    print(f"{'model':9s} {'point':22s} {'status':15s} {'best_ep':>7s} {'valid R@20':>10s} "
          f"{'valid N@20':>10s} {'train s':>8s}")
    for model in models:
        rows = [row(model, p, out) for p in points(model)]
        for r, p in zip(rows, points(model)):
            if r["status"] == "missing":
                print(f"{model:9s} {point_name(p):22s} missing")
                continue
            print(f"{model:9s} {point_name(p):22s} {r['status']:15s} {r['best_epoch']:7d} "
                  f"{r['valid_r20']:10.4f} {r['valid_n20']:10.4f} {r['train_s']:8.0f}")
        done = [r for r in rows if r["status"] == "done"]
        if not done:
            continue
        best = max(done, key=lambda r: r["valid_r20"])  # selection on validation only
        print(f"-> {model}: chosen on valid: {Path(best['run']).name} "
              f"(valid R@20 {best['valid_r20']:.4f}, best epoch {best['best_epoch']})")
        if test:
            m = best["test"] and {"test": best["test"]} or evaluate_checkpoint(best["run"], "test")
            t = m["test"]["all"]
            print(f"   {model} TEST (read once): recall@20 {t['recall@20']:.4f} ndcg@20 {t['ndcg@20']:.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared Sports dir (mrs prepare amazon2014 --split mmrec)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", nargs="+", default=list(GRID), choices=list(GRID))
    ap.add_argument("--jobs", type=int, default=1, help="grid points trained at once")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra override for every point, e.g. train.epochs=50")
    ap.add_argument("--report", action="store_true", help="only print the table (and test of the chosen)")
    ap.add_argument("--no-test", action="store_true", help="do not evaluate the chosen runs on test")
    a = ap.parse_args(argv)
    if not a.report:
        todo = [(m, p) for m in a.models for p in points(m)]
        if a.jobs <= 1:
            for m, p in todo:
                print(train_point(m, p, a.data, str(a.out), a.extra), flush=True)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(a.jobs, mp_context=ctx) as ex:
                futs = [ex.submit(train_point, m, p, a.data, str(a.out), a.extra) for m, p in todo]
                for f in cf.as_completed(futs):
                    print(f.result(), flush=True)
    report(a.models, a.out, test=not a.no_test)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 9, point 4.2: planted sequential structure. Hybrid (SASRec state in the CP query) vs
CP without sequence (MF + CP modes) vs SASRec without modes, on `mrs synth` data whose next pick
follows a known cluster transition (model.seq_strength) on top of the CP context/time structure.

    mrs synth --format hm --out runs/seqplant/raw --users 1500 --items 1000 --interactions 40000 \
        --seed 0 --no-images --set model.seq_strength=0.5
    mrs prepare hm --raw runs/seqplant/raw --out runs/seqplant/prepared --set valid_days=28 --set test_days=28
    python experiments/sequential_planted/run.py --data runs/seqplant/prepared --out runs/seqplant/runs

Each variant is one `mrs train` run (best epoch on valid Recall@20); the test split is read once
per variant, and the paired bootstrap interval of each difference is over the same test queries.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrs.eval import paired_diff_ci
from mrs.train.checkpoint import BEST, load_weights
from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, run_train, seed_everything

BASE = ["model.dim=64", "model.fusion=none", "train.lr=0.003", "train.patience=4", "train.eval_every=2",
        "train.seed=2024", "eval.ks=[10,20]", "eval.metrics=[recall,ndcg,hit]", "wandb.enabled=false",
        "eval.slices=[all,tail,head,cold,tail_pop,tail_user]", "train.num_threads=1"]
VARIANTS = {
    "cp": ["model.encoder=mf", "model.user_encoder=id", "model.modes=true", "train.epochs=80", "train.patience=10",
           "train.batch_size=2048"],
    "sasrec": ["model.encoder=mf", "model.user_encoder=sasrec", "model.modes=false", "train.epochs=60",
               "train.batch_size=128", "model.seq_len=20", "model.loss=ce", "model.reg=0"],
    "hybrid": ["model.encoder=mf", "model.user_encoder=sasrec", "model.modes=true", "train.epochs=60",
               "train.batch_size=128", "model.seq_len=20", "model.loss=ce", "model.reg=0"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = {}
    for name, sets in VARIANTS.items():
        cfg = load_train_config(None, [f"data.dir={args.data}", *BASE, *sets])
        run = Path(args.out) / name
        if not (run / "metrics.json").is_file():
            run_train(cfg, run, resume=True)
        tr = Trainer.build(cfg, seed_everything(cfg.train.seed))
        load_weights(run / BEST, tr.model)
        results[name] = tr.evaluate("test")
        m = json.loads((run / "metrics.json").read_text())
        results[name].best_epoch = m["best_epoch"]
    keys = ["recall@20", "ndcg@10", "hit@10"]
    print("| variant | best epoch | " + " | ".join(f"{s} {k}" for s in ("all", "tail", "tail_pop", "tail_user")
                                                   for k in ("recall@20",)) + " | all ndcg@10 | all hit@10 |")
    print("|---" * 8 + "|")
    for name, r in results.items():
        cells = []
        for s in ("all", "tail", "tail_pop", "tail_user"):
            v, (lo, hi) = r.metrics[s]["recall@20"], r.ci[s]["recall@20"]
            cells.append(f"{v:.4f} [{lo:.4f}, {hi:.4f}]")
        print(f"| {name} | {r.best_epoch} | " + " | ".join(cells)
              + f" | {r.metrics['all']['ndcg@10']:.4f} | {r.metrics['all']['hit@10']:.4f} |")
    print(f"\nqueries: {results['hybrid'].n_queries}")
    print("\npaired differences (test recall@20, 95% paired bootstrap over the same queries):")
    for other in ("cp", "sasrec"):
        for s in ("all", "tail", "tail_pop", "tail_user"):
            d = paired_diff_ci(results["hybrid"], results[other], "recall@20", s)
            print(f"hybrid - {other:6s} [{s:9s}] {d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] n={d['n']}")


if __name__ == "__main__":
    main()

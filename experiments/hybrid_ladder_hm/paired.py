"""Paired bootstrap intervals of each ladder variant against MF on the same test queries
(test Recall@20, slices all / tail / tail_pop / tail_user), from the finished runs of
`mrs compare --config configs/experiments/hybrid_ladder.yaml ... --out RUNS`.

    python experiments/hybrid_ladder_hm/paired.py runs/hm_ladder
"""
import sys
from pathlib import Path

from mrs.eval import paired_diff_ci
from mrs.train.checkpoint import BEST, load_weights
from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, seed_everything

root = Path(sys.argv[1]) / "runs"
res = {}
for run in sorted(p for p in root.iterdir() if (p / "metrics.json").is_file()):
    cfg = load_train_config(run / "config.yaml")
    tr = Trainer.build(cfg, seed_everything(cfg.train.seed))
    load_weights(run / BEST, tr.model)
    res[run.name] = tr.evaluate("test")
for name, r in res.items():
    if name == "mf":
        continue
    cells = []
    for s in ("all", "tail", "tail_pop", "tail_user"):
        d = paired_diff_ci(r, res["mf"], "recall@20", s)
        cells.append(f"{s} {d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]")
    print(f"{name} - mf: " + "; ".join(cells))

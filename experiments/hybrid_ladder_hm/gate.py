"""The gated fusion's mean gate (the ID side's share, 1 = IDs only) split by popularity (tail =
outside the top 20% by train count) and by whether the item has any content vector, from
finished runs of the ladder's gated variant:

    python experiments/hybrid_ladder_hm/gate.py RUNS/runs/hybrid+gated+align/seed*

On H&M most articles have no text or image; a gate that sits at the ID side for them says
nothing about whether items *with* content lean on it, so the two are printed apart.
"""
import sys
from pathlib import Path

import torch

from mrs.models.gated import GatedFusion
from mrs.train.checkpoint import BEST, load_weights
from mrs.train.config import load_train_config
from mrs.train.data import load_feature_stores_with_present
from mrs.train.trainer import Trainer, seed_everything

for run in map(Path, sys.argv[1:]):
    cfg = load_train_config(run / "config.yaml")
    tr = Trainer.build(cfg, seed_everything(cfg.train.seed))
    load_weights(run / BEST, tr.model)
    tr.evaluate("valid", ci=False)  # one forward over all items sets the gate
    gate = next(m for m in tr.model.modules() if isinstance(m, GatedFusion))
    g = gate._gate_mean.cpu()
    _, present = load_feature_stores_with_present(tr.ds, cfg.data.features, cfg.data.fill)
    has = torch.stack(list(present.values())).any(0)
    cells = []
    for pop, pm in (("tail", gate.tail.cpu()), ("head", gate.head.cpu())):
        for kind, km in (("content", has), ("no content", ~has)):
            m = pm & km
            cells.append(f"{pop}/{kind} {g[m].mean():.4f} (n={int(m.sum())})")
    print(f"{run.parent.name}/{run.name}: " + "; ".join(cells))

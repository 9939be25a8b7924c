"""Tiny prepared datasets built by hand, so every expected value can be worked out on paper."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrs.data import load_prepared, write_prepared


def write(tmp_path, rows, n_users, n_items, modes=True, name="tiny"):
    cols = ["user", "item", "ts", "context", "split"] if modes else ["user", "item", "ts", "split"]
    inter = pd.DataFrame(rows, columns=cols)
    items = pd.DataFrame({"item": np.arange(n_items), "item_id": [f"i{i}" for i in range(n_items)]})
    users = pd.DataFrame({"user": np.arange(n_users), "user_id": [f"u{u}" for u in range(n_users)]})
    spec = {"context": {"cardinality": 2, "labels": ["store", "online"]}} if modes else {}
    write_prepared(tmp_path / name, inter, items, users, name=name, source="test", modes=spec,
                   params={}, input_checksum="0")
    return load_prepared(tmp_path / name)


# 3 users, 6 items, one mode. (user, item, ts, context, split)
TINY = [
    (0, 0, 1, 0, 0), (0, 1, 2, 0, 0), (1, 0, 1, 0, 0), (1, 2, 2, 1, 0), (2, 0, 1, 1, 0),  # train
    (0, 2, 5, 0, 1), (1, 3, 5, 0, 1),                                                      # valid
    (0, 3, 10, 0, 2), (0, 4, 11, 1, 2), (1, 1, 10, 0, 2), (2, 0, 10, 1, 2),               # test
]
# train counts: item0 3, item1 1, item2 1, items 3-5 0.  u2's test item 0 is a repurchase.


def tiny(tmp_path, modes=True):
    rows = TINY if modes else [(u, i, t, s) for u, i, t, _, s in TINY]
    return write(tmp_path, rows, 3, 6, modes=modes)


def random_dataset(tmp_path, n_users=40, n_items=60, per_user=10, seed=0, modes=True):
    """Each user: per_user distinct items, 6 train, 2 valid, 2 test; contexts at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for j, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            split = 0 if j < per_user - 4 else (1 if j < per_user - 2 else 2)
            rows.append((u, int(i), j, int(rng.integers(2)), split))
    if not modes:
        rows = [(u, i, t, s) for u, i, t, _, s in rows]
    return write(tmp_path, rows, n_users, n_items, modes=modes, name=f"rand{seed}")


def truth_matrix(ds, split="test"):
    """Dense (U, I) 0/1 matrix of held-out pairs: a 'perfect' scorer's scores."""
    t = ds.split(split)
    m = np.zeros((ds.n_users, ds.n_items), dtype=np.float32)
    m[t["user"].to_numpy(), t["item"].to_numpy()] = 1.0
    return m

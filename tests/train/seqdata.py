"""A planted *sequential* dataset for the sequential-encoder tests: each user walks a fixed
item-to-item transition (``next = succ[cur]`` with probability ``p``, else a uniform item), so
the next item is predictable from the previous one and not from the user's identity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mrs.data.prepared import write_prepared


def make_sequential(out: Path, n_users: int = 300, n_items: int = 60, length: tuple[int, int] = (6, 12),
                    p: float = 0.9, seed: int = 0, with_ts: bool = True, one_item_users: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    succ = rng.permutation(n_items)
    rows = []
    for u in range(n_users):
        n = 1 if u < one_item_users else int(rng.integers(*length))
        cur = int(rng.integers(n_items))
        for t in range(n):
            rows.append((u, cur, 1000 * u + t))
            cur = int(succ[cur]) if rng.random() < p else int(rng.integers(n_items))
    df = pd.DataFrame(rows, columns=["user", "item", "ts"])
    pos = df.groupby("user").cumcount().to_numpy()
    size = df.groupby("user")["item"].transform("size").to_numpy()
    df["split"] = np.where(pos == size - 1, 2, np.where(pos == size - 2, 1, 0))
    df.loc[size == 1, "split"] = 2
    if not with_ts:
        df = df.drop(columns="ts")
    items = pd.DataFrame({"item": np.arange(n_items), "item_id": [f"i{i}" for i in range(n_items)],
                          "text": "", "image": pd.Series([None] * n_items, dtype=object)})
    users = pd.DataFrame({"user": np.arange(n_users), "user_id": [f"u{i}" for i in range(n_users)]})
    return write_prepared(out, df, items, users, name="seqplant", source="test", modes={},
                          params={"p": p}, input_checksum="x")

"""``make_scale_dataset``: a large 5-core-like prepared dataset written in chunks, for memory and
speed benchmarks at a real catalogue's size (Amazon Clothing 5-core: 2.5M users, 715K items,
23M interactions; ``experiments/benchmarks/bench_scale_step.py``).

No planted structure (the small planted generator, :mod:`mrs.synth.prepared`, holds everything
in memory): only the shapes that set memory and time, drawn chunk by chunk of users.

- User activity: ``n_u = 5 + e_u`` (every user has at least 5 interactions, as after a 5-core),
  with the extras ``e`` multinomial over Pareto(``user_alpha``) weights, so ``Σ n_u = N`` exactly,
  capped at ``min(max_per_user, I / 2)`` so repeated items can be redrawn.
- Item popularity: Zipf, ``p_i ∝ (i + 1)^{-item_alpha}`` (item 0 most popular), drawn by inverse
  CDF; a user's repeated item is redrawn uniformly, so (user, item) pairs are unique.
- Time: uniform unix seconds in ``[t0, t1)``, sorted within each user; leave-last-out split (per
  user the last interaction is test, the one before valid, the rest train) and two tensor modes
  from the timestamp, as ``mrs prepare amazon2023`` derives them: ``context`` = weekday/weekend
  (2), ``time`` = month (12).

Peak memory is a few ``(chunk,)`` arrays plus ``(U,)`` counts and the ``(I,)`` CDF: interactions
are appended to the parquet file one user chunk at a time (``write_prepared_stream``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mrs.data.prepared import SPLITS, write_prepared_stream
from mrs.errors import MrsError
from mrs.prep.common import time_mode

MIN_PER_USER = 5
T0, T1 = 1_388_534_400, 1_538_352_000  # 2014-01-01 .. 2018-10-01 UTC (Amazon 2018's span)


def user_counts(n_users: int, n_interactions: int, alpha: float, rng: np.random.Generator,
                cap: int) -> np.ndarray:
    """Interactions per user ``(U,)`` int64: ``5 + multinomial(N - 5U, Pareto weights)``, at most
    ``cap`` each (what a heavy tail puts above it is spread uniformly over the users below)."""
    extra = n_interactions - MIN_PER_USER * n_users
    if extra < 0:
        raise MrsError(f"make_scale_dataset: {n_interactions} interactions cannot give each of "
                       f"{n_users} users {MIN_PER_USER}")
    if n_interactions > cap * n_users:
        raise MrsError(f"make_scale_dataset: {n_interactions} interactions exceed {n_users} users x {cap}")
    w = rng.pareto(alpha, n_users) + 1.0
    counts = MIN_PER_USER + rng.multinomial(extra, w / w.sum()).astype(np.int64)
    while (over := int(np.maximum(counts - cap, 0).sum())) > 0:
        np.minimum(counts, cap, out=counts)
        room = np.flatnonzero(counts < cap)
        counts[room] += rng.multinomial(over, np.full(len(room), 1.0 / len(room)))
    return counts


def _unique_items(user: np.ndarray, item: np.ndarray, n_items: int, rng: np.random.Generator) -> int:
    """Redraw (uniformly, in place) every repeated item of a user until (user, item) pairs are
    unique; returns how many draws were replaced. ``user`` is sorted."""
    replaced = 0
    for _ in range(50):
        key = user.astype(np.int64) * n_items + item
        order = np.argsort(key, kind="stable")
        dup = order[1:][key[order[1:]] == key[order[:-1]]]
        if not len(dup):
            return replaced
        replaced += len(dup)
        item[dup] = rng.integers(0, n_items, len(dup))
    raise MrsError("make_scale_dataset: could not make (user, item) pairs unique; is n_items < 5?")


def make_scale_dataset(out_dir: str | Path, n_users: int = 2_500_000, n_items: int = 715_000,
                       n_interactions: int = 23_000_000, *, seed: int = 0, user_alpha: float = 1.5,
                       item_alpha: float = 0.8, max_per_user: int = 2_000,
                       chunk_users: int = 250_000) -> Path:
    """Write the dataset (module docstring) to ``out_dir`` atomically; return the path.

    ``dataset.json["params"]`` records every argument, so a cached copy can be checked for reuse.
    """
    if n_items <= MIN_PER_USER:
        raise MrsError(f"make_scale_dataset: need more than {MIN_PER_USER} items, got {n_items}")
    rng = np.random.default_rng(seed)
    counts = user_counts(n_users, n_interactions, user_alpha, rng, min(max_per_user, n_items // 2))  # (U,)
    cdf = np.cumsum(np.arange(1, n_items + 1, dtype=np.float64) ** -item_alpha)      # (I,)
    cdf /= cdf[-1]
    ctx_spec = time_mode(np.array([T0]), "weekday_weekend")[1]
    month_spec = time_mode(np.array([T0]), "month")[1]
    params = dict(n_users=n_users, n_items=n_items, n_interactions=n_interactions, seed=seed,
                  user_alpha=user_alpha, item_alpha=item_alpha, max_per_user=max_per_user, split="leave_last_out")
    stats = {"redrawn_repeats": 0}

    def write_interactions(path: Path) -> tuple[int, np.ndarray]:
        per_split = np.zeros(3, np.int64)
        writer = None
        try:
            for lo in range(0, n_users, chunk_users):
                c = counts[lo:lo + chunk_users]                                       # (Uc,)
                n = int(c.sum())
                user = np.repeat(np.arange(lo, lo + len(c), dtype=np.int32), c)       # (n,) sorted
                item = np.searchsorted(cdf, rng.random(n), side="right").clip(max=n_items - 1)
                stats["redrawn_repeats"] += _unique_items(user, item, n_items, rng)
                ts = rng.integers(T0, T1, n)
                ts = ts[np.lexsort((ts, user))]          # time order within each user
                # position from each user's end: 0 = last (test), 1 = valid, >= 2 = train
                end = np.cumsum(c)
                from_end = np.repeat(end, c) - 1 - np.arange(n)
                split = np.where(from_end == 0, SPLITS["test"],
                                 np.where(from_end == 1, SPLITS["valid"], SPLITS["train"])).astype(np.int8)
                per_split += np.bincount(split, minlength=3)
                table = pa.table({"user": user, "item": item.astype(np.int32), "ts": ts.astype(np.int64),
                                  "context": time_mode(ts, "weekday_weekend")[0],
                                  "time": time_mode(ts, "month")[0], "split": split})
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        return n_interactions, per_split

    items = pd.DataFrame({"item": np.arange(n_items), "item_id": pd.RangeIndex(n_items).map("I{:07d}".format),
                          "text": ""})
    users = pa.table({"user": pa.array(np.arange(n_users, dtype=np.int64)),
                      "user_id": pa.array(np.arange(n_users, dtype=np.int64)).cast(pa.string())})
    return write_prepared_stream(out_dir, write_interactions, items, users, name="scale5core", source="synth-scale",
                                 modes={"context": ctx_spec, "time": month_spec}, params=params,
                                 input_checksum=f"synth-scale-{seed}", extra=stats, carry=[])

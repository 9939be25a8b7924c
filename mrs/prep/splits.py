"""Train/valid/test splits, vectorised (no Python loop over users). Labels: 0 train, 1 valid, 2 test.

``mmrec``: the MMRec toolbox's split (enoche/MMRec, ``preprocessing/1splitting.ipynb``), which its
published Amazon numbers (Baby, Sports, Clothing) use. The notebook

1. shuffles all interactions (``df.sample(frac=1)``, unseeded there; seeded here),
2. groups them by user (``sort_values('userID')``, so within a user the order is random),
3. labels each user's ``n`` interactions in that random order:

   - ``n < 10``: ``n - 2`` train, then 1 valid, then 1 test;
   - ``n >= 10``: ``vt = int(0.2 * n)``; ``n - vt`` train, ``vt // 2`` valid, ``vt - vt // 2`` test.

   (So "8:1:1" with floors, and every user keeps at least one valid and one test item.) MMRec
   never meets ``n < 3`` (5-core data); here such users keep everything in train (counted).

``leave_last_out``: per user in time (or file) order, the last interaction is test, the one before
valid, the rest train (users with fewer than 3 interactions: all train).

``temporal``: global cut by time: the last ``test_days`` are test, the ``valid_days`` before valid.
"""
from __future__ import annotations

import numpy as np


def _rank_within_user(user: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each row within its user by ``key``, that user's row count)."""
    order = np.lexsort((key, user))                     # by user, then key
    counts = np.bincount(user)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - np.repeat(starts, counts)
    return rank, counts[user]


def split_mmrec(user: np.ndarray, seed: int) -> np.ndarray:
    """MMRec's per-user random 8:1:1 split (see module docstring). ``user``: (N,) ints 0..U-1."""
    rng = np.random.default_rng(seed)
    rank, n = _rank_within_user(user, rng.random(len(user)))
    vt = np.where(n < 10, 2, (n * 0.2).astype(np.int64))  # int() truncation as in MMRec
    n_val = np.where(n < 10, 1, vt // 2)
    n_train = n - vt
    label = np.where(rank < n_train, 0, np.where(rank < n_train + n_val, 1, 2)).astype(np.int8)
    label[n < 3] = 0
    return label


def split_leave_last_out(user: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Last row per user (by ``order``: time, or position in the file) test, previous valid.

    Only each user's last two rows matter, so no per-row rank is built: in the (user, order)
    sort a row is its user's last when the next row is another user's, so besides the sort
    order only bool and int8 arrays of N rows are made (no int64 rank or count per row)."""
    srt = np.lexsort((order, user))                     # (N,) by user, then order (stable)
    us = user[srt]
    last = np.ones(len(us), dtype=bool)
    last[:-1] = us[1:] != us[:-1]
    second = np.zeros(len(us), dtype=bool)
    second[:-1] = last[1:] & ~last[:-1]                 # followed by its own user's last row
    del us
    label = np.zeros(len(user), dtype=np.int8)
    label[srt[last]] = 2
    label[srt[second]] = 1
    del srt, last, second
    label[np.bincount(user).astype(np.int32)[user] < 3] = 0
    return label


def split_per_user(kind: str, user: np.ndarray, seed: int, order: np.ndarray | None = None) -> np.ndarray:
    """The per-user split a source asks for by name: ``mmrec`` (seeded 8:1:1) or
    ``leave-last-out`` by ``order`` (timestamps; ``None`` = the rows' file order)."""
    if kind == "mmrec":
        return split_mmrec(user, seed)
    if kind == "leave-last-out":
        return split_leave_last_out(user, np.arange(len(user)) if order is None else order)
    raise ValueError(f"unknown per-user split {kind!r}")


def split_temporal(ts: np.ndarray, test_days: int, valid_days: int) -> np.ndarray:
    """Global time split on unix seconds: (max-test_days, max] test, the valid_days before valid."""
    day = 86400
    end = int(ts.max()) // day * day + day               # end of the last day in the data
    test_start = end - test_days * day
    valid_start = test_start - valid_days * day
    return np.where(ts >= test_start, 2, np.where(ts >= valid_start, 1, 0)).astype(np.int8)

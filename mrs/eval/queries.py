"""Evaluation queries built from a prepared dataset's held-out split, and the items to mask.

A query is

- ``user``: one per user with held-out interactions; relevant = all the user's held-out items.
  The mode values passed to the scorer are those of the user's latest held-out interaction
  (by ``ts``; the last row where there is no time): the context in which the user came back.
- ``user_mode``: one per distinct ``(user, m_1, ..., m_k)`` among held-out interactions;
  relevant = the items held out under exactly that context and time.

Masked ("seen") items of a query are its user's train items, plus valid items when the split is
test (unless ``mask_valid_at_test=False``: MMRec masks train items only). With masking on, a relevant item that is also seen cannot be ranked, so it is dropped from
the ground truth (counted in ``n_dropped_seen``), and a query left with nothing relevant is
dropped (``n_dropped_queries``): the figures then measure finding items the user has not had.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrs.data.prepared import SPLITS, PreparedDataset
from mrs.errors import MrsError
from mrs.eval.ranking import Csr


@dataclass
class Queries:
    users: np.ndarray      # (Q,) int64
    modes: np.ndarray      # (Q, n_modes) int64
    truth: Csr             # Q rows: relevant items, sorted, unique
    seen: Csr              # n_users rows: items to mask (empty rows when masking is off)
    all_seen: Csr | None   # n_users rows: every item of the user in any split (sampled protocol only)
    n_items: int
    kind: str              # "user" | "user_mode"
    n_dropped_seen: int = 0
    n_dropped_queries: int = 0

    def __len__(self) -> int:
        return len(self.users)


def resolve_query_kind(dataset: PreparedDataset, query: str) -> str:
    if query == "auto":
        return "user_mode" if dataset.mode_names else "user"
    if query == "user_mode" and not dataset.mode_names:
        raise MrsError(f"{dataset.root}: eval.query=user_mode but the dataset declares no modes")
    return query


def build_queries(dataset: PreparedDataset, split: str = "valid", query: str = "auto",
                  mask_seen: bool = True, with_all_seen: bool = False,
                  mask_valid_at_test: bool = True) -> Queries:
    """Queries of ``split`` ("valid" or "test"); see the module docstring for the definitions.

    ``with_all_seen`` also indexes every item of every user (what the sampled protocol must
    never draw as a negative).
    """
    if split not in ("valid", "test"):
        raise MrsError(f"evaluation split must be 'valid' or 'test', got {split!r}")
    kind = resolve_query_kind(dataset, query)
    inter = dataset.interactions
    split_col = inter["split"].to_numpy()
    users_all = inter["user"].to_numpy().astype(np.int64)
    items_all = inter["item"].to_numpy().astype(np.int64)
    U, I = dataset.n_users, dataset.n_items
    held = split_col == SPLITS[split]
    if not held.any():
        raise MrsError(f"{dataset.root / 'interactions.parquet'}: no {split!r} interactions to evaluate")
    u, it = users_all[held], items_all[held]
    mode_names = dataset.mode_names
    m = (np.stack([inter[c].to_numpy()[held] for c in mode_names], 1).astype(np.int64)
         if mode_names else np.zeros((len(u), 0), dtype=np.int64))

    last_seen = SPLITS[split] if mask_valid_at_test else SPLITS["valid"]
    seen_mask = (split_col < last_seen) if mask_seen else np.zeros_like(held)
    seen = Csr.from_pairs(users_all[seen_mask], items_all[seen_mask], U)
    all_seen = Csr.from_pairs(users_all, items_all, U) if with_all_seen else None

    if kind == "user":
        q_users, q_of_row = np.unique(u, return_inverse=True)
        # the latest held-out row of each user gives the query's modes: sort by (user, ts), take
        # the last row of each user's run
        ts = inter["ts"].to_numpy()[held] if "ts" in inter else np.arange(len(u))
        order = np.lexsort((ts, u))
        u_sorted = u[order]
        is_last = np.r_[u_sorted[1:] != u_sorted[:-1], True]
        q_modes = m[order[is_last]]                              # aligned with sorted q_users
    else:
        q_users, q_modes, q_of_row = group_tuples(u, m, dataset.mode_cardinalities, U)
    q_of_row = np.asarray(q_of_row).reshape(-1)

    n_dropped_seen = 0
    if mask_seen and seen.indices.size:
        keys = seen.row_ids() * I + seen.indices                  # sorted (rows, then sorted cols)
        probe = q_users[q_of_row] * I + it
        loc = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        is_seen = keys[loc] == probe
        n_dropped_seen = int(is_seen.sum())
        q_of_row, it = q_of_row[~is_seen], it[~is_seen]
    truth = Csr.from_pairs(q_of_row, it, len(q_users))
    keep = truth.lengths() > 0
    n_dropped_queries = int((~keep).sum())
    if not keep.any():  # nothing to rank: an empty (0, k) ranking would crash the evaluation
        raise MrsError(f"{dataset.root / 'interactions.parquet'}: no {split!r} query is left: all "
                       f"{n_dropped_seen} held-out rows are items their users already have in an earlier "
                       f"split (duplicated rows?); re-prepare the dataset, or set eval.mask_repurchase=false")
    if n_dropped_queries:
        q_users, q_modes = q_users[keep], q_modes[keep]
        pos, cols = truth.gather(np.flatnonzero(keep))
        truth = Csr.from_pairs(pos, cols, len(q_users))
    return Queries(users=q_users.astype(np.int64), modes=q_modes.astype(np.int64), truth=truth,
                   seen=seen, all_seen=all_seen, n_items=I, kind=kind,
                   n_dropped_seen=n_dropped_seen, n_dropped_queries=n_dropped_queries)


def group_tuples(u: np.ndarray, m: np.ndarray, cards: list[int],
                 n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``(user, modes...)`` tuples in sorted order: ``(users (Q,), modes (Q, k),
    query of each row (N,))``. The tuple is packed into one int64 (mixed radix) so ``np.unique``
    sorts scalars, not rows; when that could overflow, rows are sorted instead (same result)."""
    if n_users * float(np.prod(cards)) < 2**62:
        key = u.astype(np.int64)
        for j, c in enumerate(cards):
            key = key * c + m[:, j]
        uniq_key, q_of_row = np.unique(key, return_inverse=True)
        first = np.zeros(len(uniq_key), dtype=np.int64)
        first[q_of_row] = np.arange(len(u))               # any row of the query: same tuple
        return u[first], m[first], q_of_row.reshape(-1)
    uniq, q_of_row = np.unique(np.concatenate([u[:, None], m], 1), axis=0, return_inverse=True)
    return uniq[:, 0], uniq[:, 1:], q_of_row.reshape(-1)


def hit_matrix(topk: np.ndarray, truth: Csr, n_items: int) -> np.ndarray:
    """bool ``(Q, K)``: whether ``topk[q, j]`` is one of query ``q``'s relevant items.

    Relevant (query, item) pairs are sorted keys ``q * n_items + item``; each ranked item is
    looked up with one ``searchsorted``: no loop over queries.
    """
    Q, K = topk.shape
    keys = truth.row_ids() * n_items + truth.indices               # (nnz,) sorted
    if keys.size == 0:
        return np.zeros((Q, K), dtype=bool)
    probe = np.arange(Q, dtype=np.int64)[:, None] * n_items + topk  # (Q, K)
    loc = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    return (keys[loc] == probe) & (topk >= 0)

"""Item slices by train popularity, and how a slice metric is computed.

Slices (from each item's train interaction count ``n_i``):

- ``all``: every item;
- ``tail``: ``n_i <= tail_threshold`` (20 by default; cold items are part of the tail);
- ``head``: the ``ceil(head_fraction * n_items)`` most-trained items (top 1%); items tied with
  the last one are included, items with ``n_i = 0`` never are;
- ``cold``: ``n_i = 0``;
- ``tail_pop``: items outside the ``ceil(tail_pop_share * n_items)`` most-trained (top 20% by
  default; ties broken by item index), the FAERec / LLM-ESR definition of the long tail;
- ``tail_user`` (a *query* slice, :func:`user_slices`): the queries of users with at most
  ``tail_user_max`` (5) train interactions; every relevant item of such a query counts.

A slice metric keeps the ranking over **all** items (the model is not told about slices). For
slice S, a query counts when it has at least one relevant item in S, and its relevant set is
restricted to S: a hit is a ranked item that is relevant *and* in S. So tail Recall@20 = (tail
items relevant to q in q's top 20) / (tail items relevant to q), averaged over the queries with
a relevant tail item; ``n_queries[S]`` is how many such queries there are.
"""
from __future__ import annotations

import math

import numpy as np

from mrs.eval.ranking import Csr


def item_slices(train_counts: np.ndarray, names: list[str], tail_threshold: int = 20,
                head_fraction: float = 0.01, tail_pop_share: float = 0.2) -> dict[str, np.ndarray]:
    """bool ``(n_items,)`` membership per item slice name (query slices are skipped)."""
    counts = np.asarray(train_counts)
    n = len(counts)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "all":
            out[name] = np.ones(n, dtype=bool)
        elif name == "tail":
            out[name] = counts <= tail_threshold
        elif name == "cold":
            out[name] = counts == 0
        elif name == "tail_pop":
            n_top = max(1, math.ceil(tail_pop_share * n))
            out[name] = np.ones(n, dtype=bool)
            out[name][np.argsort(-counts, kind="stable")[:n_top]] = False
        elif name == "tail_user":
            continue  # a query slice: user_slices
        elif name == "head":
            n_head = max(1, math.ceil(head_fraction * n))
            cut = np.sort(counts)[::-1][min(n_head, n) - 1]
            out[name] = (counts >= cut) & (counts > 0)
        else:
            raise ValueError(f"unknown slice {name!r}")
    return out


def restrict(hits: np.ndarray, topk: np.ndarray, truth: Csr,
             in_slice: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits and relevant counts restricted to slice S.

    Returns ``(rows (Q_S,), hits_S (Q_S, K), n_rel_S (Q_S,))`` for the queries with a relevant
    item in S.
    """
    rel_in = in_slice[truth.indices]                                   # (nnz,)
    n_rel = np.bincount(truth.row_ids()[rel_in], minlength=truth.n_rows)
    rows = np.flatnonzero(n_rel > 0)
    ranked_in = in_slice[np.maximum(topk[rows], 0)] & (topk[rows] >= 0)  # (Q_S, K)
    return rows, hits[rows] & ranked_in, n_rel[rows]


def user_slices(user_train_counts: np.ndarray, names: list[str], tail_user_max: int = 5) -> dict[str, np.ndarray]:
    """bool ``(n_users,)`` membership per query slice name (``tail_user``)."""
    counts = np.asarray(user_train_counts)
    return {"tail_user": counts <= tail_user_max} if "tail_user" in names else {}

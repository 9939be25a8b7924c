"""Item slices by train popularity, and how a slice metric is computed.

Slices (from each item's train interaction count ``n_i``):

- ``all``: every item;
- ``tail``: ``n_i <= tail_threshold`` (20 by default; cold items are part of the tail);
- ``head``: the ``ceil(head_fraction * n_items)`` most-trained items (top 1%); items tied with
  the last one are included, items with ``n_i = 0`` never are;
- ``cold``: ``n_i = 0``.

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
                head_fraction: float = 0.01) -> dict[str, np.ndarray]:
    """bool ``(n_items,)`` membership per slice name."""
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

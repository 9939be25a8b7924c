r"""Top-K ranking metrics, one value per query, all with one signature.

Every metric takes

- ``hits``: bool ``(Q, K_max)``, ``hits[q, j]`` is true when the item ranked at position ``j``
  (0-based) for query ``q`` is relevant to ``q``;
- ``n_rel``: int ``(Q,)``, the number of relevant items of each query (``>= 1`` for every query
  that is scored; a query with none gets 0 from every metric);
- ``k``: the cut-off, ``k <= K_max``;

and returns float64 ``(Q,)``. The mean over queries is the reported figure. With
:math:`h_j` the hit at rank :math:`j = 1..K` and :math:`n` the relevant count:

.. math::
    \mathrm{Recall@K} = \frac{\sum_{j \le K} h_j}{n}, \qquad
    \mathrm{Precision@K} = \frac{\sum_{j \le K} h_j}{K}, \qquad
    \mathrm{HitRate@K} = \mathbb{1}\Big[\sum_{j \le K} h_j > 0\Big]

.. math::
    \mathrm{NDCG@K} = \frac{\sum_{j \le K} h_j / \log_2(j + 1)}
                           {\sum_{j \le \min(n, K)} 1 / \log_2(j + 1)}

.. math::
    \mathrm{MAP@K} = \frac{1}{\min(n, K)} \sum_{j \le K} h_j \, \mathrm{P@}j

Recall divides by :math:`n` as MMRec and RecBole do (so Recall@K < 1 when n > K); NDCG uses
binary gains and the ideal DCG of min(n, K) hits; MAP@K is Kaggle's definition (H&M MAP@12:
the precision at each hit's rank, summed, divided by min(n, K)).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _check(hits: np.ndarray, n_rel: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if hits.ndim != 2 or hits.shape[0] != n_rel.shape[0]:
        raise ValueError(f"hits {hits.shape} and n_rel {n_rel.shape} disagree")
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"k={k} outside 1..{hits.shape[1]}")
    return hits[:, :k].astype(np.float64), n_rel.astype(np.float64)


def recall(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    h, n = _check(hits, n_rel, k)
    return np.divide(h.sum(1), n, out=np.zeros(len(n)), where=n > 0)


def precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    h, _ = _check(hits, n_rel, k)
    return h.sum(1) / k


def hit(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    h, _ = _check(hits, n_rel, k)
    return (h.sum(1) > 0).astype(np.float64)


def ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    h, n = _check(hits, n_rel, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))                  # (k,) 1/log2(j+1), j = 1..k
    dcg = h @ disc                                              # (Q,)
    idcg_table = np.concatenate([[0.0], np.cumsum(disc)])      # idcg_table[m] = ideal DCG of m hits
    idcg = idcg_table[np.minimum(n, k).astype(np.int64)]
    return np.divide(dcg, idcg, out=np.zeros(len(n)), where=idcg > 0)


def map_(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    h, n = _check(hits, n_rel, k)
    prec_at_j = np.cumsum(h, axis=1) / np.arange(1, k + 1)     # (Q, k) P@j
    denom = np.minimum(n, k)
    return np.divide((prec_at_j * h).sum(1), denom, out=np.zeros(len(n)), where=denom > 0)


METRICS: dict[str, Metric] = {"recall": recall, "ndcg": ndcg, "precision": precision,
                              "hit": hit, "map": map_}


def compute_all(hits: np.ndarray, n_rel: np.ndarray, names: list[str],
                ks: list[int]) -> dict[str, np.ndarray]:
    """``{"recall@20": (Q,), ...}`` for every metric name and cut-off, in that order."""
    return {f"{m}@{k}": METRICS[m](hits, n_rel, k) for m in names for k in ks}

r"""Sparse item-item neighbourhood models: ``itemknn`` and ``rp3beta`` (Dacrema et al., 2019's
formulations). Both score ``ŷ(u, ·) = X[u] W`` (:class:`~mrs.models.closed.base.ItemItemRecommender`).

``itemknn``: shrunk cosine between item columns of the binary train matrix ``X``, each target
item keeping its ``k`` most similar items:

.. math::
    S[i, j] = \frac{x_i \cdot x_j}{\lVert x_i\rVert \lVert x_j\rVert + h + 10^{-6}}, \quad
    S[i, i] = 0, \qquad W[:, j] = \operatorname{top}_k S[j, :]^\top

``rp3beta`` (Paudel et al., 2016; Dacrema et al.'s ``RP3betaRecommender``): the three-step random
walk item → user → item with transition probabilities raised to ``α``, divided by the target's
popularity to the power ``β``, each row keeping its ``k`` largest entries:

.. math::
    W[i, j] = \Big(\sum_u P_{iu}^{\alpha} P_{uj}^{\alpha}\Big)\, d_j^{-\beta}, \quad W[i, i] = 0,
    \quad P_{iu} = \frac{X[u, i]}{d_i}, \; P_{uj} = \frac{X[u, j]}{d_u}

(``d_i``: users of item ``i``, ``d_u``: items of user ``u``). ``W`` is built in blocks of item rows
whose co-occurrence count is bounded (:data:`BLOCK_NNZ`), so no dense ``(I, I)`` exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from mrs.errors import MrsError
from mrs.models.base import CLOSED_FORM
from mrs.models.closed.base import Interactions, ItemItemRecommender, check_nonneg, topk_per_row

BLOCK_NNZ = 20_000_000  # co-occurrences computed per block of item rows (~240 MB of COO triples)


def check_k(name: str, k: int) -> None:
    if k < 1:
        raise MrsError(f"config key 'model.options.{name}.k' must be >= 1, got {k}")


def item_blocks(x: sp.csr_matrix, budget: int | None = None) -> list[slice]:
    """Consecutive item-row ranges whose co-occurrence counts ``Σ_{u ∈ users(i)} d_u`` (an upper
    bound on the non-zeros of row ``i`` of ``XᵀX``) sum to at most ``budget`` (>= one row each).
    ``x``: the binary ``(U, I)`` train matrix; ``budget`` defaults to :data:`BLOCK_NNZ`."""
    budget = budget or BLOCK_NNZ
    est = np.cumsum(x.T @ np.diff(x.indptr).astype(np.float64))   # (I,)
    out, start, n = [], 0, x.shape[1]
    while start < n:
        base = est[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(est, base + budget, side="right")))
        out.append(slice(start, min(stop, n)))
        start = stop
    return out


def blockwise(x: sp.csr_matrix, k: int, block_fn: Callable[[slice], sp.csr_matrix]) -> sp.csr_matrix:
    """``vstack`` of ``topk_per_row(block_fn(rows))`` over bounded item-row blocks of the binary
    train matrix ``x``'s items, diagonal zeroed: the ``(I, I)`` result, sparse."""
    parts = []
    for rows in item_blocks(x):
        s = block_fn(rows).tocoo()
        off = s.row + rows.start != s.col                          # zero diagonal
        s = sp.csr_matrix((s.data[off], (s.row[off], s.col[off])), shape=s.shape)
        parts.append(topk_per_row(s, k))
    n = x.shape[1]
    return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((n, n), dtype=np.float32)


@dataclass
class ItemKNNOptions:
    k: int = 50  # neighbours kept per target item (Dacrema et al.'s default topK)
    shrink: float = 100.0  # h: added to the cosine's denominator; damps rarely co-rated pairs


@CLOSED_FORM.register("itemknn", rank=1)
class ItemKNN(ItemItemRecommender):
    """ItemKNN: item-item shrunk cosine on the train matrix, k neighbours per item."""

    Options = ItemKNNOptions

    def __init__(self, n_users: int, n_items: int, k: int = 50, shrink: float = 100.0):
        super().__init__(n_users, n_items)
        check_k("itemknn", k)
        check_nonneg("itemknn", "shrink", shrink)
        self.k, self.shrink = int(k), float(shrink)

    @classmethod
    def from_config(cls, cfg, ctx) -> "ItemKNN":
        o = cls.options(cfg)
        return cls(ctx.n_users, ctx.n_items, o.k, o.shrink)

    def _fit(self, train: Interactions) -> None:
        x = self.profile                                              # (U, I) binary
        xt = x.T.tocsr()                                              # (I, U)
        norm = np.sqrt(np.asarray(xt.sum(1)).ravel())                 # (I,) ‖x_i‖

        def block(rows: slice) -> sp.csr_matrix:
            s = (xt[rows] @ x).tocoo()                                # (B, I) co-occurrences
            s.data = s.data / (norm[s.row + rows.start] * norm[s.col] + self.shrink + 1e-6)
            return s.tocsr()

        # top-k per row of the symmetric S = top-k neighbours i of each target j; W = its transpose
        self.weights = blockwise(x, self.k, block).T.tocsc().astype(np.float32)


@dataclass
class RP3betaOptions:
    k: int = 100  # entries kept per row of W (Dacrema et al.'s default topK)
    alpha: float = 1.0  # exponent of the transition probabilities
    beta: float = 0.6  # popularity penalty: W[:, j] divided by d_j^beta


@CLOSED_FORM.register("rp3beta", rank=2)
class RP3beta(ItemItemRecommender):
    """RP3beta: item-user-item random walk, transitions^alpha, target popularity^-beta, top k per row."""

    Options = RP3betaOptions

    def __init__(self, n_users: int, n_items: int, k: int = 100, alpha: float = 1.0, beta: float = 0.6):
        super().__init__(n_users, n_items)
        check_k("rp3beta", k)
        check_nonneg("rp3beta", "alpha", alpha)
        check_nonneg("rp3beta", "beta", beta)
        self.k, self.alpha, self.beta = int(k), float(alpha), float(beta)

    @classmethod
    def from_config(cls, cfg, ctx) -> "RP3beta":
        o = cls.options(cfg)
        return cls(ctx.n_users, ctx.n_items, o.k, o.alpha, o.beta)

    def _fit(self, train: Interactions) -> None:
        x = self.profile.astype(np.float64)                           # (U, I) binary
        deg_u, deg_i = np.diff(x.indptr), np.asarray(x.sum(0)).ravel()
        p_ui = sp.diags(1.0 / np.maximum(deg_u, 1)) @ x               # rows sum to 1 (users)
        p_iu = (sp.diags(1.0 / np.maximum(deg_i, 1)) @ x.T).tocsr()   # rows sum to 1 (items)
        p_ui.data **= self.alpha
        p_iu.data **= self.alpha
        pop = np.zeros(self.n_items)
        pop[deg_i > 0] = deg_i[deg_i > 0] ** -self.beta

        def block(rows: slice) -> sp.csr_matrix:
            return (p_iu[rows] @ p_ui) @ sp.diags(pop)                # (B, I)

        self.weights = blockwise(self.profile, self.k, block).tocsc().astype(np.float32)

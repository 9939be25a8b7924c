r"""The closed-form model interface: ``fit(train)`` once, then ``full_sort_predict`` like every model.

A :class:`ClosedFormRecommender` has no parameters and no epochs (``trains_by_gradient =
False``): the trainer fits it once on the train split (or train + valid for the final fit,
``train.final_fit``) and evaluates it with the same code as the gradient models
(:mod:`mrs.train.closed_form`). Nothing of the fit is saved in ``best.pt`` (an EASE matrix is
I² floats); every path that builds a trainer (resume, a sweep's test read, export) fits again.

Item-item models score a user's train profile through an item-item matrix ``W (I, I)``:

.. math::
    \hat{y}(u, j) = \sum_i X[u, i]\, W[i, j]

with ``X (U, I)`` the binary train matrix. Scores are computed for a block of queries and an item
range at a time (``items=slice``), so memory follows the ranking's budget. A user with no train
rows (cold) gets the popularity ranking instead (train counts), the fallback every model in mrs
gives; the evaluator counts those queries in its ``cold_user`` slice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from mrs.errors import MrsError
from mrs.models.base import BuildContext, Plugin, Recommender

if TYPE_CHECKING:
    from mrs.data.prepared import PreparedDataset
    from mrs.models.config import ModelConfig


@dataclass
class Interactions:
    """The rows a closed-form model is fitted on (one per interaction, repeats kept)."""

    n_users: int
    n_items: int
    users: np.ndarray              # (N,) int64
    items: np.ndarray              # (N,) int64
    modes: np.ndarray              # (N, k) int64, the dataset's extra modes
    mode_names: list[str]
    mode_cardinalities: list[int]
    ts: np.ndarray | None = None   # (N,) int64 unix seconds, or None where the data has no time

    @classmethod
    def from_dataset(cls, ds: "PreparedDataset", split: str = "train") -> "Interactions":
        """``split``'s rows of ``ds`` in file order (the train+valid view relabels valid as train)."""
        df = ds.split(split)
        modes = (df[ds.mode_names].to_numpy().astype(np.int64) if ds.mode_names
                 else np.zeros((len(df), 0), dtype=np.int64))
        ts = df["ts"].to_numpy().astype(np.int64) if "ts" in df else None
        return cls(ds.n_users, ds.n_items, df["user"].to_numpy().astype(np.int64),
                   df["item"].to_numpy().astype(np.int64), modes, list(ds.mode_names),
                   list(ds.mode_cardinalities), ts)

    def matrix(self) -> sp.csr_matrix:
        """Binary user-item matrix ``X (U, I)`` float32 (repeats count once)."""
        x = sp.csr_matrix((np.ones(len(self.users), np.float32), (self.users, self.items)),
                          shape=(self.n_users, self.n_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        return x

    def item_counts(self) -> np.ndarray:
        """``(I,)`` train interactions per item (repeats counted), the popularity fallback."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.float64)


def check_nonneg(name: str, key: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise MrsError(f"config key 'model.options.{name}.{key}' must be >= 0, got {value!r}")


def popularity_scores(counts: np.ndarray) -> np.ndarray:
    """Counts -> scores in ``[0, 1)`` with the same order (for tie-breaks and the cold fallback)."""
    return (counts / (counts.max() + 1.0)).astype(np.float32)


class ClosedFormRecommender(Recommender, Plugin):
    """Base of the closed-form models. Subclasses implement :meth:`_fit` and :meth:`_scores`."""

    trains_by_gradient = False
    cold_fallback = True  # users with no train row get the popularity ranking

    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.fitted = False
        self.fit_seconds = 0.0
        self.profile: sp.csr_matrix | None = None   # X (U, I) of the fit
        self.popularity: np.ndarray | None = None   # (I,) in [0, 1)
        self.cold: np.ndarray | None = None         # (U,) bool: no train row

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, cfg: "ModelConfig", ctx: BuildContext) -> "ClosedFormRecommender":
        return cls(ctx.n_users, ctx.n_items)

    @classmethod
    def build_artifacts(cls, cfg: "ModelConfig", ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        return {}

    def check_data(self, train: Interactions) -> None:
        """Refuse options the data cannot serve (pop's ``by`` naming a missing mode), before any
        run directory exists. Default: nothing."""

    # ------------------------------------------------------------------ fitting
    def fit(self, train: Interactions) -> "ClosedFormRecommender":
        """Fit on ``train`` (replacing any earlier fit)."""
        if (train.n_users, train.n_items) != (self.n_users, self.n_items):
            raise MrsError(f"fit data has {train.n_users} users x {train.n_items} items; the model "
                           f"was built for {self.n_users} x {self.n_items}")
        self.check_data(train)
        t0 = time.perf_counter()
        self.profile = train.matrix()
        self.popularity = popularity_scores(train.item_counts())
        self.cold = np.diff(self.profile.indptr) == 0
        self._fit(train)
        self.fit_seconds, self.fitted = time.perf_counter() - t0, True
        return self

    def _fit(self, train: Interactions) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def _scores(self, users: np.ndarray, modes: np.ndarray, items: slice,
                mode_weights: list[Tensor | None] | None) -> np.ndarray:
        """``(B, C)`` float32 scores of ``users (B,)`` for the item range ``items``."""
        raise NotImplementedError

    def encode(self) -> None:
        """Nothing to propagate: the fitted matrices are the model."""
        return None

    @torch.no_grad()
    def full_sort_predict(self, users: Tensor, modes: Tensor, emb: Any = None,
                          mode_weights: list[Tensor | None] | None = None, items: slice | None = None) -> Tensor:
        """``(B, I)`` scores, or ``(B, C)`` for the item range ``items`` (chunked ranking); on the
        device of ``users``. Cold users get the popularity scores."""
        if not self.fitted:
            raise MrsError(f"{self.plugin_name}: full_sort_predict before fit")
        items = items if items is not None else slice(0, self.n_items)
        u = users.cpu().numpy().astype(np.int64)
        out = self._scores(u, modes.cpu().numpy().reshape(len(u), -1), items, mode_weights)
        cold = self.cold[u] if self.cold_fallback else np.zeros(len(u), bool)
        if cold.any():
            out[cold] = self.popularity[items]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(users.device)

    def score(self, users: Tensor, items: Tensor, modes: Tensor, emb: Any = None) -> Tensor:
        """Scores of given items ``(B,)`` or ``(B, M)`` (via the full rows: a baseline, not a
        training path)."""
        full = self.full_sort_predict(users, modes)
        return full.gather(1, items.reshape(len(users), -1).to(full.device)).reshape(items.shape)

    def calculate_loss(self, batch: Any, emb: Any = None):
        raise MrsError(f"model.encoder={self.plugin_name!r} is fitted in closed form; it has no loss")

    @classmethod
    def exportable(cls, cfg: "ModelConfig") -> bool:
        """Whether :meth:`export_factors` exists for this configuration (``mrs export``)."""
        return False

    def export_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user (U, R), item (I, R))`` whose inner products are this model's scores."""
        raise MrsError(f"{self.plugin_name}: no user-item factor form to export")


class ItemItemRecommender(ClosedFormRecommender):
    """``ŷ(u, ·) = X[u] W`` with an item-item ``W`` (:attr:`weights`: scipy CSC sparse, or a dense
    ``(I, I)`` array)."""

    weights: sp.csc_matrix | np.ndarray | None = None

    def _scores(self, users: np.ndarray, modes: np.ndarray, items: slice,
                mode_weights: list[Tensor | None] | None) -> np.ndarray:
        x = self.profile[users]                                     # (B, I) sparse
        w = self.weights[:, items]                                  # (I, C): CSC / dense column slice
        s = x @ w                                                   # (B, C)
        return s.toarray() if sp.issparse(s) else np.asarray(s)


def topk_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of ``m`` (ties: lower column first); vectorised
    with one sort over all non-zeros."""
    m = m.tocsr()
    m.eliminate_zeros()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))               # by row, value desc, column
    start = m.indptr[rows[order]]
    keep = order[(np.arange(len(order)) - start) < k]             # position within its row < k
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)

r"""``pop``: the most popular train items, globally or in the query's context and time.

.. math::
    \hat{y}(u, i, m) = n_{\text{by}}(m, i) + \tfrac{1}{2}\,\frac{n(i)}{\max_j n(j) + 1}

``n(i)``: train interactions of item ``i`` (within the last ``window_days`` before the latest
train row when set: H&M's "last week" baseline); ``n_by(m, i)``: those among rows whose modes
listed in ``by`` equal the query's values ``m`` (e.g. ``by: [context, time]``, the baseline of the
(user, context, time) task). The global term, below one, only breaks ties within a context, so a
context with few rows still ranks every item. A mode of ``by`` whose value the query does not
know (per-user queries: modes outside ``eval.request_modes``, for which the evaluator passes
frequency weights) is summed over. ``repeat: true`` ranks the user's own train items first, most
recent first (by ``ts``, then row order), then the rest by popularity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from torch import Tensor

from mrs.errors import MrsError
from mrs.models.base import CLOSED_FORM
from mrs.models.closed.base import ClosedFormRecommender, Interactions, check_nonneg

DAY = 86400


@dataclass
class PopOptions:
    by: list[str] = field(default_factory=list)  # modes to condition on, e.g. [context, time]; [] = global
    window_days: float = 0.0  # count only train rows of the last N days (needs ts); 0 = all
    repeat: bool = False  # the user's own train items first, most recent first, then popularity


@CLOSED_FORM.register("pop", rank=0)
class Pop(ClosedFormRecommender):
    """Pop: most popular train items (globally, or by: [context, time]; window_days; repeat)."""

    Options = PopOptions
    cold_fallback = False  # a cold user's ranking is this model's own (it has no per-user term)

    def __init__(self, n_users: int, n_items: int, by: list[str] = (), window_days: float = 0.0,
                 repeat: bool = False):
        super().__init__(n_users, n_items)
        check_nonneg("pop", "window_days", window_days)
        if len(set(by)) != len(by):
            raise MrsError(f"config key 'model.options.pop.by': a mode is listed twice in {list(by)}")
        self.by, self.window_days, self.repeat = list(by), float(window_days), bool(repeat)
        self._tables: dict[tuple[int, ...], sp.csr_matrix] = {}

    @classmethod
    def from_config(cls, cfg, ctx) -> "Pop":
        o = cls.options(cfg)
        return cls(ctx.n_users, ctx.n_items, o.by, o.window_days, o.repeat)

    def check_data(self, train: Interactions) -> None:
        missing = [m for m in self.by if m not in train.mode_names]
        if missing:
            raise MrsError(f"config key 'model.options.pop.by': {missing[0]!r} is not a mode of this "
                           f"dataset (modes: {train.mode_names})")
        if self.window_days > 0 and train.ts is None:
            raise MrsError("config key 'model.options.pop.window_days': the dataset has no 'ts' column")

    def _fit(self, train: Interactions) -> None:
        keep = np.ones(len(train.items), bool)
        if self.window_days > 0 and len(train.ts):
            keep = train.ts >= train.ts.max() - self.window_days * DAY
        counts = np.bincount(train.items[keep], minlength=self.n_items).astype(np.float64)
        self.base = (0.5 * counts / (counts.max() + 1.0)).astype(np.float32)  # (I,) in [0, 0.5)
        self._mode_index = {m: k for k, m in enumerate(train.mode_names)}
        cols = [self._mode_index[m] for m in self.by]
        self._modes = train.modes[keep][:, cols]                  # (N', len(by))
        self._items = train.items[keep]
        self._cards = [train.mode_cardinalities[c] for c in cols]
        self._tables = {}
        if self.repeat:  # per (user, item): the position of its latest row in time order
            ts = train.ts if train.ts is not None else np.zeros(len(train.items), np.int64)
            order = np.lexsort((np.arange(len(ts)), ts))
            rank = np.empty(len(ts), np.float64)
            rank[order] = np.arange(len(ts))
            key = train.users * self.n_items + train.items
            uniq, inv = np.unique(key, return_inverse=True)
            latest = np.zeros(len(uniq))
            np.maximum.at(latest, inv, rank + 1)
            recency = 2.0 + latest / (len(ts) + 1.0)               # in [2, 3): above any popularity
            self._recent = sp.csr_matrix((recency.astype(np.float32), (uniq // self.n_items, uniq % self.n_items)),
                                         shape=(self.n_users, self.n_items))

    def table(self, known: tuple[int, ...]) -> sp.csr_matrix:
        """Counts ``(Π cards of the known modes, I)``: rows indexed by the known modes' values in
        mixed radix (built once per set of known modes)."""
        if known not in self._tables:
            key = np.zeros(len(self._items), np.int64)
            size = 1
            for j in known:
                key, size = key * self._cards[j] + self._modes[:, j], size * self._cards[j]
            t = sp.csr_matrix((np.ones(len(key), np.float32), (key, self._items)), shape=(size, self.n_items))
            t.sum_duplicates()
            self._tables[known] = t
        return self._tables[known]

    def _scores(self, users: np.ndarray, modes: np.ndarray, items: slice,
                mode_weights: list[Tensor | None] | None) -> np.ndarray:
        out = np.repeat(self.base[None, items], len(users), 0)      # (B, C)
        if self.by:
            # modes of `by` in the dataset's order; a weighted (unknown) mode is summed over
            cols = [self._mode_index[m] for m in self.by]
            known = tuple(j for j, c in enumerate(cols)
                          if mode_weights is None or mode_weights[c] is None)
            key = np.zeros(len(users), np.int64)
            for j in known:
                key = key * self._cards[j] + modes[:, cols[j]]
            out += self.table(known)[key][:, items].toarray()
        if self.repeat:
            recent = self._recent[users][:, items].toarray()        # (B, C), 0 where never had
            out = np.where(recent > 0, recent, out)
        return out

    @classmethod
    def exportable(cls, cfg) -> bool:
        o = cls.options(cfg)
        return not o.by and not o.repeat

    def export_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Global pop is rank one: user rows of ones, item rows the (windowed) counts' scores."""
        if self.by or self.repeat:
            return super().export_factors()
        return np.ones((self.n_users, 1), np.float32), self.base[:, None].copy()

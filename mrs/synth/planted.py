"""The planted generative model behind ``mrs synth``: a known CP tensor decides what users pick.

There are ``R = n_contexts * n_styles * n_seasons`` CP components, one per (home context
``c``, style ``s``, season ``q``), and one latent item cluster per component. Every item of
cluster ``k`` has the item factor ``I[i] = G[k]`` (the centroid: mostly component ``k``, a
``centroid_mix`` share spread over the others), and user ``u`` picks an item of cluster ``k``
in context ``c`` (sales channel, or weekday/weekend) during month ``t`` with probability

.. math::
    \hat{y}(u, k, c, t) = \sum_{r=1}^{R} U_{u,r} \, G_{k,r} \, C_{c,r} \, T_{t,r},
    \qquad P(i \mid u, c, t) = \frac{\hat{y}(u, k_i, c, t)}{\sum_{k'} \hat{y}(u, k', c, t)}
                                 \cdot \frac{w_i}{\sum_{j \in k_i} w_j},

with ``w`` a Zipf popularity within each cluster (zero for the planted cold items), and

- ``C[c', r] = 1`` when ``c'`` is component ``r``'s home context, else ``context_leak``;
- ``T[t, r] = exp(κ cos(2π (t - φ_q) / 12))``, the seasons' phases ``φ_q`` spread over the year;
- ``U[u, (c, s, q)] = taste_c[u, s]``: one Dirichlet taste over styles per context, shared by
  the seasons, its base measure Zipf-like over styles (some styles are niche).

Why it matters for the long tail: in one (context, month) slice a user's choice concentrates on
one or two small clusters, so a model with context and time modes can rank a cluster's deep
(tail) items into the top 20; a user-item model only sees the mixture over contexts and seasons,
about ``n_contexts * n_seasons`` times as many clusters, and its top 20 holds their heads.

Sampling is vectorised and cheap at any size: the cluster by the ``(B, K)`` CP scores, then the
item by one ``searchsorted`` over a global cumulative popularity table (``O(log n_items)``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Iterator

import numpy as np

from mrs.errors import MrsError


@dataclass
class SynthConfig:
    n_users: int = 1000
    n_items: int = 2000
    n_interactions: int = 20000
    seed: int = 0
    n_styles: int = 8             # styles per context; a user's taste is a Dirichlet over them
    n_seasons: int = 6            # season phases over the year (K = R = n_contexts*n_styles*n_seasons)
    n_contexts: int = 2           # hm: store / online; amazon2023: weekday / weekend
    context_leak: float = 0.05    # C[c,r] for a component outside its home context (1: no context effect)
    season_strength: float = 3.0  # κ of the monthly factor; 0 switches seasonality off
    user_concentration: float = 0.3   # Dirichlet α scale of a user's taste (small: peaked)
    style_skew: float = 1.5       # Zipf exponent of the styles' base popularity (niche styles)
    centroid_mix: float = 0.2     # share of a centroid spread over other components (cluster overlap)
    popularity_exponent: float = 1.1  # Zipf exponent of item popularity inside a cluster
    cold_fraction: float = 0.1    # items that never get an interaction (cold-start slice)
    activity_sigma: float = 1.2   # lognormal σ of user activity (heavy-tailed users)
    start: str = "2018-09-20"     # first day (H&M's range: about two years, months recur)
    end: str = "2020-09-22"       # last day, inclusive
    online_share: float = 0.7     # hm: P(sales_channel_id = 2), independent of the user
    text_noise: float = 0.2       # chance an item word is drawn from the global vocabulary instead

    def validate(self) -> None:
        for f in ("n_users", "n_items", "n_interactions", "n_styles", "n_seasons", "n_contexts"):
            if getattr(self, f) < 1:
                raise MrsError(f"synth: {f} must be >= 1, got {getattr(self, f)}")
        for f in ("context_leak", "cold_fraction", "text_noise", "online_share", "centroid_mix"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise MrsError(f"synth: {f} must be in [0, 1], got {getattr(self, f)}")
        if self.cold_fraction >= 1.0 or self.n_items * (1 - self.cold_fraction) < 1:
            raise MrsError("synth: cold_fraction leaves no item that can be picked")
        if self.day0 > self.day1:
            raise MrsError(f"synth: start {self.start} is after end {self.end}")

    @property
    def n_clusters(self) -> int:
        return self.n_contexts * self.n_styles * self.n_seasons

    @property
    def day0(self) -> int:
        return _epoch_day(self.start)

    @property
    def day1(self) -> int:
        return _epoch_day(self.end)

    def to_dict(self) -> dict:
        return asdict(self)


def _epoch_day(s: str) -> int:
    try:
        return (date.fromisoformat(s) - date(1970, 1, 1)).days
    except ValueError:
        raise MrsError(f"synth: date {s!r} is not YYYY-MM-DD") from None


@dataclass
class Planted:
    """The ground truth. Arrays are indexed by the generator's item/user order (0..n-1)."""

    user_factors: np.ndarray     # (U, R) U
    cluster_factors: np.ndarray  # (K, R) G, the centroids
    context_factors: np.ndarray  # (n_ctx, R) C
    time_factors: np.ndarray     # (12, R) T, month of year 0..11
    item_cluster: np.ndarray     # (I,) k_i
    item_popularity: np.ndarray  # (I,) w_i, normalised to sum 1 within each cluster; 0 = cold
    user_activity: np.ndarray    # (U,) interactions planted per user
    cluster_slice: np.ndarray    # (K, 3) each cluster's (home context, style, season)

    @property
    def item_factors(self) -> np.ndarray:
        """(I, R): ``I[i] = G[k_i]``; what the CP score uses for an item."""
        return self.cluster_factors[self.item_cluster]

    def cluster_probs(self, users: np.ndarray, ctx: np.ndarray, month: np.ndarray,
                      dtype: type = np.float64) -> np.ndarray:
        """P(cluster | u, c, t) for a batch: ``(B,)`` each -> ``(B, K)``."""
        ct = (self.context_factors[:, None, :] * self.time_factors[None]).reshape(-1, self.rank)  # (n_ctx*12, R)
        q = self.user_factors[users].astype(dtype, copy=False) * ct.astype(dtype)[ctx.astype(np.int64) * 12 + month]  # (B, R)
        s = q @ self.cluster_factors.T.astype(dtype)  # (B, K)
        s /= s.sum(1, keepdims=True)
        return s

    @property
    def rank(self) -> int:
        return self.cluster_factors.shape[1]


def plant(cfg: SynthConfig) -> Planted:
    """Draw the factors, item clusters, popularity and user activity for ``cfg`` (deterministic)."""
    cfg.validate()
    rng = np.random.default_rng([cfg.seed, 1])
    n_ctx, S, Q = cfg.n_contexts, cfg.n_styles, cfg.n_seasons
    K = R = n_ctx * S * Q
    comp_ctx, comp_style, comp_season = np.unravel_index(np.arange(R), (n_ctx, S, Q))
    C = np.where(comp_ctx[None, :] == np.arange(n_ctx)[:, None], 1.0, cfg.context_leak)  # (n_ctx, R)
    phase = 12.0 * (comp_season + rng.random()) / Q
    months = np.arange(12)[:, None]
    T = np.exp(cfg.season_strength * np.cos(2 * np.pi * (months - phase[None, :]) / 12))  # (12, R)
    G = (1 - cfg.centroid_mix) * np.eye(R) + cfg.centroid_mix * rng.dirichlet(np.ones(R), size=K)  # (K, R)
    # One taste over styles per context (store and online point to different clusters), shared
    # by the seasons; the base measure makes some styles niche.
    taste = []
    for _ in range(n_ctx):
        base = rng.permutation((np.arange(S) + 1.0) ** -cfg.style_skew)
        taste.append(rng.dirichlet(cfg.user_concentration * S * base / base.sum(), size=cfg.n_users))
    taste = np.maximum(np.stack(taste, 1), 1e-12)  # (U, n_ctx, S); small α can underflow to 0
    U = taste[:, comp_ctx, comp_style]  # (U, R)
    # Items: random clusters (every cluster non-empty when I >= K), Zipf popularity inside each.
    I = cfg.n_items
    cluster = rng.permutation(np.arange(I) % K) if I >= K else rng.integers(0, K, I)
    w = np.zeros(I)
    cold = np.zeros(I, bool)
    n_cold = int(round(cfg.cold_fraction * I))
    if n_cold:
        cold[rng.choice(I, n_cold, replace=False)] = True
    for k in range(K):  # K is small; the per-item work inside is vectorised
        members = np.flatnonzero((cluster == k) & ~cold)
        if len(members) == 0:
            continue
        ranks = rng.permutation(len(members)) + 1
        w[members] = ranks ** -cfg.popularity_exponent
        w[members] /= w[members].sum()
    # A cluster left with no pickable item gets zero centroid weight, so it is never chosen.
    alive = np.bincount(cluster[w > 0], minlength=K) > 0
    G[~alive] = 0.0
    activity = _user_activity(rng, cfg)
    slices = np.stack([comp_ctx, comp_style, comp_season], 1).astype(np.int32)
    return Planted(U, G, C, T, cluster.astype(np.int32), w, activity, slices)


def _user_activity(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Heavy-tailed interactions per user; every user gets one when there are enough to go round."""
    n, U = cfg.n_interactions, cfg.n_users
    weight = rng.lognormal(0.0, cfg.activity_sigma, U)
    base = 1 if n >= U else 0
    return base + rng.multinomial(n - base * U, weight / weight.sum()).astype(np.int64)


@dataclass
class Chunk:
    """A block of sampled interactions, ordered by day then user."""

    user: np.ndarray     # (B,) int32
    item: np.ndarray     # (B,) int32
    day: np.ndarray      # (B,) int32, days since 1970-01-01
    context: np.ndarray  # (B,) int8
    month: np.ndarray    # (B,) int8, 0..11
    cluster: np.ndarray  # (B,) int16


def month_of(day: np.ndarray) -> np.ndarray:
    """Month of year (0..11) of epoch days, vectorised through numpy datetimes."""
    d = day.astype("datetime64[D]")
    return (d.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int8)


def weekend_of(day: np.ndarray) -> np.ndarray:
    """1 on Saturday/Sunday, else 0 (1970-01-01 was a Thursday)."""
    return (((day.astype(np.int64) + 3) % 7) >= 5).astype(np.int8)


def sample(p: Planted, cfg: SynthConfig, context_rule: str = "channel",
           chunk_size: int = 1 << 18) -> Iterator[Chunk]:
    """Yield the planted interactions in day order, ``chunk_size`` at a time.

    ``context_rule``: ``"channel"`` draws the context independently (online with
    ``cfg.online_share``; H&M's sales channel); ``"weekend"`` derives it from the day.
    """
    rng = np.random.default_rng([cfg.seed, 2])
    users = np.repeat(np.arange(cfg.n_users, dtype=np.int32), p.user_activity)
    days = rng.integers(cfg.day0, cfg.day1 + 1, len(users), dtype=np.int32)
    order = np.argsort(days, kind="stable")  # by day; users stay sorted within a day
    users, days = users[order], days[order]
    del order
    # One global cumulative table: cluster k's items occupy [k, k+1), sorted by cluster.
    by_cluster = np.argsort(p.item_cluster, kind="stable")
    w_sorted = p.item_popularity[by_cluster]
    cum = np.cumsum(w_sorted)
    k_sorted = p.item_cluster[by_cluster].astype(np.int64)
    starts = np.searchsorted(k_sorted, np.arange(cfg.n_clusters))
    within = cum - np.concatenate([[0.0], cum])[starts][k_sorted]
    ends = np.searchsorted(k_sorted, np.arange(cfg.n_clusters), side="right") - 1
    total = within[np.maximum(ends, 0)][k_sorted]
    cum = k_sorted + np.divide(within, total, out=np.zeros_like(within), where=total > 0)
    for lo in range(0, len(users), chunk_size):
        crng = np.random.default_rng([cfg.seed, 3, lo // chunk_size])
        u, d = users[lo:lo + chunk_size], days[lo:lo + chunk_size]
        m = month_of(d)
        if context_rule == "weekend":
            c = weekend_of(d)
        elif context_rule == "channel":
            c = (crng.random(len(u)) < cfg.online_share).astype(np.int8)
        else:
            raise MrsError(f"synth: unknown context rule {context_rule!r}")
        # float32 halves the memory traffic; the inverse-CDF draw needs no more precision.
        cdf = p.cluster_probs(u, c, m, np.float32).cumsum(1)  # (B, K)
        k = (cdf < crng.random((len(u), 1), dtype=np.float32)).sum(1)  # inverse-CDF per row
        k = np.minimum(k, cfg.n_clusters - 1)
        pos = np.searchsorted(cum, k + crng.random(len(u)) * (1 - 1e-12), side="right")
        pos = np.minimum(pos, len(cum) - 1)
        yield Chunk(u, by_cluster[pos].astype(np.int32), d, c, m, k.astype(np.int16))


def sample_all(p: Planted, cfg: SynthConfig, context_rule: str = "channel") -> Chunk:
    """All interactions in one ``Chunk`` (small and medium sizes)."""
    parts = list(sample(p, cfg, context_rule))
    if not parts:
        raise MrsError("synth: no interactions to sample (n_interactions = 0?)")
    return Chunk(*(np.concatenate([getattr(c, f) for c in parts]) for f in Chunk.__dataclass_fields__))


def n_days(cfg: SynthConfig) -> int:
    return cfg.day1 - cfg.day0 + 1

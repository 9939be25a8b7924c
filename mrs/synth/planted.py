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
    context_leak: float = 0.05    # C[c,r] for a component outside its home context (1: no context effect)
    season_strength: float = 3.0  # κ of the monthly factor; 0 switches seasonality off
    user_concentration: float = 0.3   # Dirichlet α scale of a user's taste (small: peaked)
    style_skew: float = 1.5       # Zipf exponent of the styles' base popularity (niche styles)
    centroid_mix: float = 0.05    # share of each pick spilled uniformly over all clusters (background)
    popularity_exponent: float = 1.1  # Zipf exponent of item popularity inside a cluster
    cold_fraction: float = 0.1    # items that never get an interaction (cold-start slice)
    activity_sigma: float = 1.2   # lognormal σ of user activity (heavy-tailed users)
    start: str = "2018-09-20"     # first day (H&M's range: about two years, months recur)
    end: str = "2020-09-22"       # last day, inclusive
    online_share: float = 0.7     # hm: P(sales_channel_id = 2), independent of the user
    text_noise: float = 0.2       # chance an item word is drawn from the global vocabulary instead
    seq_strength: float = 0.0     # P(next pick's cluster = succ[cluster of the user's previous pick]); 0 = off

    def validate(self) -> None:
        for f in ("n_users", "n_items", "n_interactions", "n_styles", "n_seasons"):
            if getattr(self, f) < 1:
                raise MrsError(f"{f} must be >= 1, got {getattr(self, f)}")
        for f in ("context_leak", "cold_fraction", "text_noise", "online_share", "centroid_mix",
                  "seq_strength"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise MrsError(f"{f} must be in [0, 1], got {getattr(self, f)}")
        if self.cold_fraction >= 1.0 or self.n_items * (1 - self.cold_fraction) < 1:
            raise MrsError("cold_fraction leaves no item that can be picked")
        if self.day0 > self.day1:
            raise MrsError(f"start {self.start} is after end {self.end}")

    @property
    def n_contexts(self) -> int:
        """Two in both formats: store / online (hm), weekday / weekend (amazon2023)."""
        return 2

    @property
    def n_clusters(self) -> int:
        return self.n_contexts * self.n_styles * self.n_seasons

    @property
    def day0(self) -> int:
        return _epoch_day(self.start, "start")

    @property
    def day1(self) -> int:
        return _epoch_day(self.end, "end")

    def to_dict(self) -> dict:
        return asdict(self)


def _epoch_day(s: str, field: str) -> int:
    try:
        return (date.fromisoformat(s) - date(1970, 1, 1)).days
    except ValueError:
        raise MrsError(f"{field}: date {s!r} is not YYYY-MM-DD") from None


@dataclass
class Planted:
    """The ground truth. Arrays are indexed by the generator's item/user order (0..n-1).

    Components ``r = (c, s, q)`` are laid out as ``np.unravel_index(r, (n_ctx, S, Q))``.
    """

    user_taste: np.ndarray       # (U, n_ctx, S) a Dirichlet over styles per context
    time_factors: np.ndarray     # (12, R) T, month of year 0..11
    context_factors: np.ndarray  # (n_ctx, R) C
    centroid_mix: float          # G = (1 - mix) Id + mix / R: a cluster's spill-over to all others
    item_cluster: np.ndarray     # (I,) k_i
    item_popularity: np.ndarray  # (I,) w_i, normalised to sum 1 within each cluster; 0 = cold
    user_activity: np.ndarray    # (U,) interactions planted per user
    cluster_slice: np.ndarray    # (K, 3) each cluster's (home context, style, season)
    cluster_successor: np.ndarray | None = None  # (K,) succ[k]: the sequential transition (seq_strength > 0)
    seq_strength: float = 0.0    # ρ: P(cluster = succ[previous cluster]) for a user's next pick

    def transition_matrix(self) -> np.ndarray | None:
        """``(K, K)`` the planted part of P(next cluster | previous cluster): ``ρ`` on
        ``succ[k]``; the remaining ``1 − ρ`` follows the CP score of the pick's (u, c, t)."""
        if self.cluster_successor is None:
            return None
        K = self.rank
        m = np.zeros((K, K))
        m[np.arange(K), self.cluster_successor] = self.seq_strength
        return m

    @property
    def rank(self) -> int:
        return self.time_factors.shape[1]

    @property
    def user_factors(self) -> np.ndarray:
        """(U, R): ``U[u, (c, s, q)] = taste[u, c, s]``."""
        return self.user_taste[:, self.cluster_slice[:, 0], self.cluster_slice[:, 1]]

    @property
    def cluster_factors(self) -> np.ndarray:
        """(K, R) the centroids ``G``."""
        R = self.rank
        return (1 - self.centroid_mix) * np.eye(R) + self.centroid_mix / R

    @property
    def item_factors(self) -> np.ndarray:
        """(I, R): ``I[i] = G[k_i]``; what the CP score uses for an item."""
        return self.cluster_factors[self.item_cluster]

    @property
    def alive(self) -> np.ndarray:
        """(K,) clusters with at least one item that can be picked."""
        return np.bincount(self.item_cluster[self.item_popularity > 0], minlength=self.rank) > 0

    def cluster_probs(self, users: np.ndarray, ctx: np.ndarray, month: np.ndarray) -> np.ndarray:
        """Exact P(cluster | u, c, t) from the CP score, for a batch: ``(B,)`` each -> ``(B, K)``.
        (Clusters with no pickable item get 0; the rest are renormalised.)"""
        q = self.user_factors[users] * self.context_factors[ctx] * self.time_factors[month]  # (B, R)
        s = q @ self.cluster_factors.T * self.alive  # (B, K)
        return s / s.sum(1, keepdims=True)

    def draw_clusters(self, users: np.ndarray, ctx: np.ndarray, month: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        """One cluster per row from ``cluster_probs`` without forming the ``(B, K)`` matrix.

        The CP score factorises: ``P(k) = (1 - mix) P(c_k) P(s_k | c_k, u) P(q_k | t) + mix / K``,
        with ``P(c') ∝ C[c, c']``, ``P(s | c', u) = taste[u, c', s]`` and ``P(q | t) ∝ T[t, q]``.
        So three small categorical draws (2, S and Q-way) replace one K-way draw; picks that land
        on a cluster without items are redrawn (rejection keeps the distribution exact).
        """
        n_ctx, S = self.user_taste.shape[1:]
        K = self.rank
        Q = K // (n_ctx * S)
        c_w = self.context_factors[:, ::S * Q].astype(np.float32)  # (n_ctx, n_ctx) C[c, home c']
        t_w = self.time_factors[:, :Q].astype(np.float32)          # (12, Q) season weights by month
        alive = self.alive
        out = np.empty(len(users), np.int64)
        todo = np.arange(len(users))
        for _ in range(1000):
            u, c, m = users[todo], ctx[todo], month[todo]
            home = _categorical(c_w[c], rng)                                        # (B,)
            style = _categorical(self.user_taste[u, home].astype(np.float32), rng)  # (B,)
            season = _categorical(t_w[m], rng)                                      # (B,)
            k = (home * S + style) * Q + season
            spill = rng.random(len(todo)) < self.centroid_mix
            k[spill] = rng.integers(0, K, int(spill.sum()))
            out[todo] = k
            todo = todo[~alive[k]]
            if len(todo) == 0:
                return out
        raise MrsError("could not draw clusters with items; too few items for n_clusters?")


def _categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of nonnegative ``(B, n)`` weights (inverse CDF; n is small)."""
    cdf = weights.cumsum(1)
    u = rng.random((len(weights), 1), dtype=cdf.dtype) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(1), weights.shape[1] - 1)


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
    # One taste over styles per context (store and online point to different clusters), shared
    # by the seasons; the base measure makes some styles niche.
    taste = []
    for _ in range(n_ctx):
        base = rng.permutation((np.arange(S) + 1.0) ** -cfg.style_skew)
        taste.append(rng.dirichlet(cfg.user_concentration * S * base / base.sum(), size=cfg.n_users))
    taste = np.maximum(np.stack(taste, 1), 1e-12)  # (U, n_ctx, S); small α can underflow to 0
    taste /= taste.sum(2, keepdims=True)
    # Items: clusters dealt round-robin in random order (none empty when I >= K), Zipf inside each.
    I = cfg.n_items
    cluster = rng.permutation(np.arange(I) % K)
    # Cold items: prefer items that are not their cluster's only hope, so clusters stay alive.
    n_cold = int(round(cfg.cold_fraction * I))
    is_first = np.zeros(I, bool)
    is_first[np.unique(cluster, return_index=True)[1]] = True
    order = np.concatenate([rng.permutation(np.flatnonzero(~is_first)), rng.permutation(np.flatnonzero(is_first))])
    cold = np.zeros(I, bool)
    cold[order[:n_cold]] = True
    w = np.zeros(I)
    order = np.argsort(cluster, kind="stable")
    for k, members in enumerate(np.split(order, np.searchsorted(cluster[order], np.arange(1, K)))):
        members = members[~cold[members]]
        if len(members):
            w[members] = (rng.permutation(len(members)) + 1.0) ** -cfg.popularity_exponent
            w[members] /= w[members].sum()
    activity = _user_activity(rng, cfg)
    slices = np.stack([comp_ctx, comp_style, comp_season], 1).astype(np.int32)
    succ = None
    if cfg.seq_strength > 0:  # its own stream: every other draw is unchanged by the option
        alive = np.bincount(cluster[w > 0], minlength=K) > 0
        live = np.flatnonzero(alive)
        succ = np.full(K, -1, np.int64)
        succ[live] = np.random.default_rng([cfg.seed, 5]).permutation(live)
    return Planted(taste, T, C, cfg.centroid_mix, cluster.astype(np.int32), w, activity, slices,
                   succ, cfg.seq_strength)


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
    chunk_size = -(-max(chunk_size, 1) // RNG_BLOCK) * RNG_BLOCK  # whole random blocks per chunk
    last = np.full(cfg.n_users, -1, np.int64)  # each user's previous cluster (sequential transitions)
    for lo in range(0, len(users), chunk_size):
        u, d = users[lo:lo + chunk_size], days[lo:lo + chunk_size]
        m = month_of(d)
        c = weekend_of(d) if context_rule == "weekend" else np.empty(len(u), np.int8)
        k = np.empty(len(u), np.int64)
        x = np.empty(len(u))
        for sl, brng in block_rngs(cfg.seed, 3, lo, lo + len(u)):
            if context_rule == "channel":
                c[sl] = brng.random(sl.stop - sl.start) < cfg.online_share
            elif context_rule != "weekend":
                raise MrsError(f"unknown context rule {context_rule!r}")
            k[sl] = p.draw_clusters(u[sl], c[sl], m[sl], brng)
            x[sl] = brng.random(sl.stop - sl.start)
        if p.cluster_successor is not None:
            switch = np.concatenate([r.random(sl.stop - sl.start) for sl, r in block_rngs(cfg.seed, 4, lo, lo + len(u))])
            k = follow_transitions(u, k, switch < p.seq_strength, p.cluster_successor, last)
        pos = np.searchsorted(cum, k + x * (1 - 1e-12), side="right")
        pos = np.minimum(pos, len(cum) - 1)
        yield Chunk(u, by_cluster[pos].astype(np.int32), d, c, m, k.astype(np.int16))


def follow_transitions(u: np.ndarray, k: np.ndarray, switch: np.ndarray, succ: np.ndarray,
                       last: np.ndarray) -> np.ndarray:
    """Rows in time order: where ``switch`` and the user has a previous pick, the cluster becomes
    ``succ[previous cluster]`` (the previous one *after* its own switch, so chains follow).
    ``last (U,)`` carries each user's latest cluster across chunks (updated in place). One
    vectorised step per occurrence rank of a user within the chunk, not a loop over rows."""
    k = k.copy()
    order = np.argsort(u, kind="stable")
    us = u[order]
    first = np.r_[True, us[1:] != us[:-1]]
    starts = np.flatnonzero(first)
    occ = np.arange(len(us)) - np.repeat(starts, np.diff(np.r_[starts, len(us)]))  # rank within user
    for j in range(int(occ.max()) + 1 if len(occ) else 0):
        rows = order[occ == j]                                    # one row per user, in time order
        prev = last[u[rows]]
        go = switch[rows] & (prev >= 0)
        k[rows[go]] = succ[prev[go]]
        last[u[rows]] = k[rows]
    return k


RNG_BLOCK = 1 << 16  # rows per random stream, so the output bytes do not depend on chunk_size


def block_rngs(seed: int, stream: int, lo: int, hi: int) -> Iterator[tuple[slice, np.random.Generator]]:
    """For rows ``[lo, hi)`` (``lo`` a multiple of ``RNG_BLOCK``): one ``(slice relative to lo,
    Generator)`` per block, each seeded by ``(seed, stream, block index)``."""
    for b in range(lo, hi, RNG_BLOCK):
        yield slice(b - lo, min(b + RNG_BLOCK, hi) - lo), np.random.default_rng([seed, stream, b // RNG_BLOCK])


def sample_all(p: Planted, cfg: SynthConfig, context_rule: str = "channel") -> Chunk:
    """All interactions in one ``Chunk`` (small and medium sizes)."""
    parts = list(sample(p, cfg, context_rule))
    if not parts:
        raise MrsError("no interactions to sample (n_interactions = 0?)")
    return Chunk(*(np.concatenate([getattr(c, f) for c in parts]) for f in Chunk.__dataclass_fields__))

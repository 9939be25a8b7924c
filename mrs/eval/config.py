"""Evaluation options (nanoGPT style: every default commented here, YAML/``--set`` on top).

Used as the ``eval:`` section of the training config, e.g. ``--set eval.ks=[12] eval.metrics=[map]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

METRIC_NAMES = ("recall", "ndcg", "precision", "hit", "map")
SLICE_NAMES = ("all", "tail", "head", "cold", "tail_pop", "tail_user", "cold_user")


@dataclass
class EvalConfig:
    # cut-offs K; every metric is reported at each (H&M's MAP@12: ks=[12])
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    # any of recall, ndcg, precision, hit, map (see mrs.eval.metrics for the formulas)
    metrics: list[str] = field(default_factory=lambda: list(METRIC_NAMES))
    # at most this many queries scored per batch: scores are (batch_size, n_items) floats, never
    # (Q, n_items); fewer when max_memory_mb says so
    batch_size: int = 4096
    # memory budget of one ranking block in MiB: the query batch comes from it, and a catalogue
    # too big for even a few full rows is scored in item chunks (top-k merged); 0 = auto (CPU:
    # RAM/8 capped at 2 GiB; GPU: half the free device memory). See mrs.eval.budget
    max_memory_mb: float = 0
    # which slices to report: item slices all, tail, head, cold, tail_pop (mrs.eval.slices); the
    # query slices tail_user (opt-in: users with <= eval.tail_user_max train rows) and cold_user
    # (users with no train rows, kept out of every item slice)
    slices: list[str] = field(default_factory=lambda: ["all", "tail", "head", "cold", "cold_user"])
    # tail = items with <= this many train interactions (cold items included)
    tail_threshold: int = 20
    # head = the top this fraction of items by train count (at least one item)
    head_fraction: float = 0.01
    # tail_pop = items outside the top this share by train count (FAERec / LLM-ESR's long tail)
    tail_pop_share: float = 0.2
    # tail_user = queries of users with at most this many train interactions
    tail_user_max: int = 5
    # bootstrap replicates over queries for confidence intervals; 0 = no intervals
    bootstrap: int = 1000
    # two-sided level of the percentile bootstrap interval
    ci_level: float = 0.95
    # a query is a user ("user") or a (user, mode values...) tuple ("user_mode"); "auto" picks
    # user_mode when the dataset declares modes, so models with and without CP modes are compared
    # on the very same queries
    query: Literal["auto", "user", "user_mode"] = "auto"
    # at the end of training, with modes present, also report the other query kind (labelled,
    # under "by_query" in metrics.json): per-user queries are the literature's protocol
    both_queries: bool = True
    # per-user queries: modes whose value is known at request time (the held-out interaction's);
    # every other mode (the context) is the train-frequency expectation Σ_c p(c)·C[c]
    request_modes: list[str] = field(default_factory=lambda: ["time"])
    # mask the user's train items (and valid items at test): false keeps repurchases rankable (H&M)
    mask_repurchase: bool = True
    # at test, also mask the user's valid items; false = MMRec's protocol (its published Sports
    # numbers mask train items only), for like-for-like reproduction
    mask_valid_at_test: bool = True
    # "full": rank all items (the default and the only protocol to report); "sampled": rank each
    # query's relevant items among n_sampled random unseen items (the seed paper's protocol)
    protocol: Literal["full", "sampled"] = "full"
    # negatives per query for the sampled protocol
    n_sampled: int = 200
    # also report what the lists expose (beyond accuracy): catalogue coverage@K and the share of
    # tail / cold items in the top K (APLT), under "exposure" in metrics.json
    exposure: bool = True
    # seed of the bootstrap and of the sampled negatives
    seed: int = 0

    def __post_init__(self) -> None:
        from mrs.errors import MrsError
        bad = [m for m in self.metrics if m not in METRIC_NAMES]
        if bad:
            raise MrsError(f"config key 'eval.metrics': {bad[0]!r} is not one of {list(METRIC_NAMES)}")
        bad = [s for s in self.slices if s not in SLICE_NAMES]
        if bad:
            raise MrsError(f"config key 'eval.slices': {bad[0]!r} is not one of {list(SLICE_NAMES)}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise MrsError(f"config key 'eval.ks': need positive cut-offs, got {self.ks}")
        if self.batch_size < 1:
            raise MrsError(f"config key 'eval.batch_size': must be >= 1, got {self.batch_size}")
        if self.max_memory_mb < 0:
            raise MrsError(f"config key 'eval.max_memory_mb': must be >= 0 (0 = auto), got {self.max_memory_mb}")
        if not 0.0 < self.ci_level < 1.0:
            raise MrsError(f"config key 'eval.ci_level': must be in (0, 1), got {self.ci_level}")
        if not 0.0 < self.head_fraction <= 1.0:
            raise MrsError(f"config key 'eval.head_fraction': must be in (0, 1], got {self.head_fraction}")
        if self.bootstrap < 0 or self.n_sampled < 1:
            raise MrsError("config keys 'eval.bootstrap' >= 0 and 'eval.n_sampled' >= 1 required")

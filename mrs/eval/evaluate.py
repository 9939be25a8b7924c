"""The evaluation entry point: ``evaluate(score_fn, dataset, split, cfg, device) -> EvalResult``.

``Evaluator`` does the dataset work once (queries, masks, slices); calling it ranks and scores,
so a trainer evaluating every epoch builds one ``Evaluator`` per split and calls it repeatedly::

    ev = Evaluator(dataset, "valid", cfg.eval)
    emb = model.encode()
    res = ev(lambda u, m: model.full_sort_predict(u, m, emb=emb), device=device, ci=False)
    res.metrics["all"]["recall@20"]

``EvalResult.to_json()`` is one split's part of ``metrics.json``; ``metrics_json`` assembles the
whole file: ``{"valid": {...}, "test": {...}, "ci": {"valid": ..., "test": ...},
"n_queries": {"valid": ..., "test": ...}}``. A slice with no query reports ``null``.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from mrs.data.prepared import SPLITS, PreparedDataset
from mrs.errors import MrsError
from mrs.eval.bootstrap import bootstrap_ci
from mrs.eval.config import EvalConfig
from mrs.eval.metrics import compute_all
from mrs.eval.queries import Queries, build_queries, hit_matrix
from mrs.eval.budget import CELL_BYTES, SAMPLED_ROW_BYTES, Plan, plan_blocks, resolve_budget_mb
from mrs.eval.ranking import ScoreFn, accepts_items, rank_topk, sample_candidates
from mrs.eval.slices import item_slices, restrict, user_slices

log = logging.getLogger(__name__)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


@dataclass
class EvalResult:
    split: str
    metrics: dict[str, dict[str, float | None]]            # slice -> "recall@20" -> mean
    ci: dict[str, dict[str, list[float | None]]]            # slice -> "recall@20" -> [lo, hi]
    n_queries: dict[str, int]                                # slice -> queries counted
    info: dict = field(default_factory=dict)                 # protocol, query kind, drops, seconds
    exposure: dict[str, float] = field(default_factory=dict)  # "coverage@20", "tail_share@20", ...
    per_query: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    query_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # slice -> (Q_S,)

    def to_json(self) -> dict:
        """This split's entry of metrics.json: ``{"all": {"recall@20": x, ...}, "tail": ...}``."""
        return self.metrics

    def flat(self, prefix: str | None = None) -> dict[str, float]:
        """``{"valid/tail/recall@20": x, ...}`` for loggers (W&B); null entries left out."""
        p = f"{prefix or self.split}/"
        return {f"{p}{s}/{k}": v for s, d in self.metrics.items() for k, v in d.items() if v is not None}

    def summary(self, keys: tuple[str, ...] = ("recall@20", "ndcg@20")) -> str:
        parts = []
        for s, d in self.metrics.items():
            vals = " ".join(f"{k}={d[k]:.4f}" for k in keys if d.get(k) is not None)
            parts.append(f"{s}[n={self.n_queries[s]}] {vals}".strip())
        return f"{self.split}: " + " | ".join(parts)


def paired_diff_ci(a: EvalResult, b: EvalResult, key: str = "recall@20", slice_: str = "all",
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the same queries and its paired bootstrap interval.

    Both results must come from the same ``Evaluator`` queries (same dataset, split and config):
    pairing removes the between-query variance that makes two separate intervals overlap even
    when one model wins on nearly every query.
    """
    ra, rb = a.query_rows.get(slice_), b.query_rows.get(slice_)
    same = a.info.get("queries_sha1") == b.info.get("queries_sha1") is not None
    if ra is None or rb is None or not same or not np.array_equal(ra, rb):
        raise MrsError(f"paired comparison needs both results on the same {slice_!r} queries")
    d = a.per_query[slice_][key] - b.per_query[slice_][key]
    (lo, hi), = bootstrap_ci(d, n_boot, level, seed)
    return {"diff": _num(d.mean()) if len(d) else None, "lo": _num(lo), "hi": _num(hi), "n": int(len(d))}


def metrics_json(results: dict[str, EvalResult], **extra) -> dict:
    """Assemble metrics.json from per-split results (``{"valid": r, "test": r}``) plus extras."""
    out: dict = {split: r.to_json() for split, r in results.items()}
    out["ci"] = {split: r.ci for split, r in results.items()}
    out["n_queries"] = {split: r.n_queries for split, r in results.items()}
    out["eval_info"] = {split: r.info for split, r in results.items()}
    if any(r.exposure for r in results.values()):
        out["exposure"] = {split: r.exposure for split, r in results.items()}
    out.update(extra)
    return out


class Evaluator:
    """Queries, masks and slices of one split, built once; ``__call__`` ranks and scores."""

    def __init__(self, dataset: PreparedDataset, split: str = "valid", cfg: EvalConfig | None = None):
        self.cfg = cfg = cfg or EvalConfig()
        self.split = split
        self.n_items = dataset.n_items
        self.queries: Queries = build_queries(dataset, split, cfg.query, mask_seen=cfg.mask_repurchase,
                                             with_all_seen=cfg.protocol == "sampled",
                                             mask_valid_at_test=cfg.mask_valid_at_test)
        self.slices = item_slices(dataset.item_train_counts(), [s for s in cfg.slices if s != "cold_user"],
                                  cfg.tail_threshold, cfg.head_fraction, cfg.tail_pop_share)
        # users with no train rows (temporal splits): their queries are the cold_user slice and
        # stay out of all/tail/head/cold, which then measure users the model has seen
        inter = dataset.interactions
        train_users = inter["user"].to_numpy()[inter["split"].to_numpy() == SPLITS["train"]]
        user_counts = np.bincount(train_users, minlength=dataset.n_users)
        self.cold_user = ~(user_counts > 0)[self.queries.users]  # (Q,)
        self.user_slices = user_slices(user_counts, cfg.slices, cfg.tail_user_max)
        self.k_max = max(cfg.ks)
        q = self.queries
        h = hashlib.sha1(split.encode())
        for arr in (q.users, q.modes, q.truth.indptr, q.truth.indices):
            h.update(np.ascontiguousarray(arr).tobytes())
        self.queries_sha1 = h.hexdigest()   # identifies the query set: paired comparisons check it

    def __len__(self) -> int:
        return len(self.queries)

    def rank(self, score_fn: ScoreFn, device: torch.device | str = "cpu",
             progress: bool | None = None) -> np.ndarray:
        """Top-``K_max`` items ``(Q, K_max)`` of every query under the configured protocol."""
        q, cfg = self.queries, self.cfg
        candidates = None
        if cfg.protocol == "sampled":
            gen = torch.Generator().manual_seed(cfg.seed)
            # draws happen batch by batch in order, so a run is reproducible for a given query
            # batch (eval.batch_size, eval.max_memory_mb)
            def candidates(sl: slice) -> torch.Tensor:
                rows = np.arange(sl.start, sl.stop)
                pos, cols = q.truth.gather(rows)
                return sample_candidates(self.n_items, q.users[sl], pos, cols, q.all_seen,
                                         cfg.n_sampled, gen)
        plan = self.plan(device, chunkable=accepts_items(score_fn))
        return rank_topk(score_fn, q.users, q.modes, self.k_max, seen=q.seen,
                         batch_size=plan.query_batch, device=device, candidates=candidates,
                         progress=progress, n_items=self.n_items, item_chunk=plan.item_chunk)

    def plan(self, device: torch.device | str = "cpu", chunkable: bool = True) -> Plan:
        """Query batch and item chunk within ``eval.max_memory_mb`` (see :mod:`mrs.eval.budget`).
        A score function that cannot score item ranges gets full rows, at least one query."""
        cfg = self.cfg
        row_bytes = SAMPLED_ROW_BYTES if cfg.protocol == "sampled" else 0
        budget = resolve_budget_mb(cfg.max_memory_mb, device)
        plan = plan_blocks(len(self.queries), self.n_items, self.k_max, budget, cfg.batch_size, row_bytes)
        if plan.item_chunk < self.n_items and not chunkable:
            log.warning("score function cannot score item ranges: ranking full rows of %d items, "
                        "which may exceed eval.max_memory_mb=%.0f", self.n_items, budget)
            b = max(1, int(budget * 2**20 // (self.n_items * (CELL_BYTES + row_bytes))))
            plan = Plan(min(b, plan.query_batch), self.n_items, budget)
        return plan

    def score(self, topk: np.ndarray, ci: bool = True) -> EvalResult:
        """Metrics per slice (and bootstrap intervals) from ranked lists ``(Q, K_max)``."""
        q, cfg = self.queries, self.cfg
        if topk.shape != (len(q), self.k_max):
            raise MrsError(f"ranked lists of shape {topk.shape}, expected {(len(q), self.k_max)}")
        hits = hit_matrix(topk, q.truth, self.n_items)                       # (Q, K_max)
        metrics, cis, n_queries, per_query, query_rows = {}, {}, {}, {}, {}
        cols, keys = [], []                           # (Q,) columns, NaN where the query is out
        groups = [(name, restrict(hits, topk, q.truth, in_slice)) for name, in_slice in self.slices.items()]
        for name, member in self.user_slices.items():  # query slices: those users' queries, all their items
            rows = np.flatnonzero(member[q.users])
            groups.append((name, (rows, hits[rows], q.truth.lengths()[rows])))
        if self.cold_user.any():  # reported only where there are such users
            groups = [(name, _keep(g, ~self.cold_user[g[0]])) for name, g in groups]
            rows = np.flatnonzero(self.cold_user)
            if "cold_user" in cfg.slices:
                groups.append(("cold_user", (rows, hits[rows], q.truth.lengths()[rows])))
        for name, (rows, h, n_rel) in groups:
            vals = compute_all(h, n_rel, cfg.metrics, sorted(cfg.ks))        # name -> (Q_S,)
            n_queries[name] = int(len(rows))
            per_query[name], query_rows[name] = vals, rows
            metrics[name] = {k: (_num(v.mean()) if len(v) else None) for k, v in vals.items()}
            for k, v in vals.items():
                col = np.full(len(q), np.nan)
                col[rows] = v
                cols.append(col)
                keys.append((name, k))
        if ci and cfg.bootstrap > 0:
            # one resampling of the queries serves every slice and metric (see mrs.eval.bootstrap)
            bounds = bootstrap_ci(np.stack(cols, 1), cfg.bootstrap, cfg.ci_level, seed=cfg.seed)
            for (name, k), (lo, hi) in zip(keys, bounds):
                cis.setdefault(name, {})[k] = [_num(lo), _num(hi)]
        # exposure of sampled lists says nothing about the catalogue: full protocol only
        exposure = self.exposure(topk) if cfg.exposure and cfg.protocol == "full" else {}
        info = {"protocol": cfg.protocol, "query": q.kind, "n_dropped_seen": q.n_dropped_seen,
                "n_dropped_queries": q.n_dropped_queries, "mask_repurchase": cfg.mask_repurchase,
                "mask_valid_at_test": cfg.mask_valid_at_test,
                "queries_sha1": self.queries_sha1}
        if cfg.protocol == "sampled":
            info["n_sampled"] = cfg.n_sampled
        return EvalResult(self.split, metrics, cis, n_queries, info, exposure, per_query, query_rows)

    def query_counts(self) -> dict[str, int]:
        """Queries per slice, as ``n_queries`` will report them, without ranking (scored on empty
        lists: the counts do not depend on the ranking). A slice with 0 has ``None`` metrics."""
        return self.score(np.full((len(self.queries), self.k_max), -1, np.int64), ci=False).n_queries

    def exposure(self, topk: np.ndarray) -> dict[str, float]:
        """What the lists show, whatever is relevant: for each K, ``coverage@K`` = distinct items
        in any top K / n_items, and ``<slice>_share@K`` = mean fraction of a top K in that slice
        (tail_share is the long-tail literature's APLT)."""
        out: dict[str, float] = {}
        valid = topk >= 0
        for k in sorted(self.cfg.ks):
            top, ok = topk[:, :k], valid[:, :k]
            out[f"coverage@{k}"] = float(len(np.unique(top[ok])) / self.n_items)
            for name in ("tail", "cold", "head"):
                if name in self.slices:
                    share = (self.slices[name][np.maximum(top, 0)] & ok).sum(1) / k
                    out[f"{name}_share@{k}"] = float(share.mean()) if len(share) else 0.0
        return out

    def __call__(self, score_fn: ScoreFn, device: torch.device | str = "cpu", ci: bool = True,
                 progress: bool | None = None) -> EvalResult:
        t0 = time.perf_counter()
        topk = self.rank(score_fn, device, progress)
        t1 = time.perf_counter()
        res = self.score(topk, ci=ci)
        res.info.update(rank_seconds=round(t1 - t0, 3), score_seconds=round(time.perf_counter() - t1, 3))
        log.debug("%s", res.summary())
        return res


def _keep(group: tuple[np.ndarray, np.ndarray, np.ndarray], keep: np.ndarray):
    rows, h, n_rel = group
    return rows[keep], h[keep], n_rel[keep]


def evaluate(score_fn: ScoreFn, dataset: PreparedDataset, split: str = "valid",
             cfg: EvalConfig | None = None, device: torch.device | str = "cpu",
             ci: bool = True, progress: bool | None = None) -> EvalResult:
    """Rank every query of ``split`` with ``score_fn`` and report metrics per slice.

    ``score_fn(users LongTensor (B,), modes LongTensor (B, n_modes)) -> (B, n_items)`` runs on
    ``device``; see ``Evaluator`` to reuse the query set across epochs.
    """
    return Evaluator(dataset, split, cfg)(score_fn, device=device, ci=ci, progress=progress)

"""Evaluation: full ranking, Recall/NDCG/Precision/HitRate/MAP@K, popularity slices, bootstrap CIs.

The protocol, in one place (details in each module):

- **Ranking** (``ranking``): every query is ranked against all items, ``batch_size`` queries at
  a time (``scores (B, n_items)``, never ``(Q, n_items)``), on the device of the scores.
- **Memory** (``budget``): the query batch comes from ``max_memory_mb``; a catalogue too big
  for a few full rows is scored in item chunks whose top-k are merged (exact).
- **Queries** (``queries``): a user, or a ``(user, mode values)`` tuple; ``query: auto`` uses
  tuples whenever the dataset declares modes, so models with and without CP modes are scored
  on identical queries. Relevant = the query's held-out items.
- **Masking**: the user's train items (plus valid items at test) are unrankable; relevant items
  that are also seen are dropped and counted. ``mask_repurchase: false`` keeps them (H&M).
- **Metrics** (``metrics``): per-query values, mean over queries; formulas in the docstrings.
- **Slices** (``slices``): all / tail (<= 20 train interactions) / head (top 1%) / cold (0); the
  ranking stays over all items, a query counts for slice S when it has a relevant item in S,
  and its relevant set is restricted to S. ``n_queries`` per slice is reported.
- **Intervals** (``bootstrap``): 95% percentile bootstrap over queries, one resampling shared by
  all slices and metrics; ``paired_diff_ci`` compares two models on the same queries.
- **Sampled protocol**: ``protocol: sampled`` ranks relevant items among ``n_sampled`` unseen
  random items (the seed paper's protocol), for comparison only.

Entry points: ``evaluate(score_fn, dataset, split, cfg, device)`` and ``Evaluator`` (built once,
called every epoch); ``metrics_json`` assembles ``metrics.json``.
"""
from mrs.eval.config import EvalConfig
from mrs.eval.evaluate import EvalResult, Evaluator, evaluate, metrics_json, paired_diff_ci
from mrs.eval.metrics import METRICS, compute_all
from mrs.eval.queries import Queries, build_queries, hit_matrix
from mrs.eval.ranking import Csr, ScoreFn, rank_topk
from mrs.eval.slices import item_slices, restrict

__all__ = ["EvalConfig", "EvalResult", "Evaluator", "evaluate", "metrics_json", "paired_diff_ci", "METRICS",
           "compute_all", "Queries", "build_queries", "hit_matrix", "Csr", "ScoreFn", "rank_topk",
           "item_slices", "restrict"]

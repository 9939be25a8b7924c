"""Evaluation: full ranking with masking, Recall/NDCG/Precision/HitRate/MAP@K, popularity slices
(all, tail, head, cold), bootstrap confidence intervals, and an optional sampled protocol."""
from mrs.eval.config import EvalConfig
from mrs.eval.evaluate import EvalResult, Evaluator, evaluate, metrics_json, paired_diff_ci
from mrs.eval.metrics import METRICS, compute_all
from mrs.eval.queries import Queries, build_queries, hit_matrix
from mrs.eval.ranking import Csr, ScoreFn, rank_topk
from mrs.eval.slices import item_slices, restrict

__all__ = ["EvalConfig", "EvalResult", "Evaluator", "evaluate", "metrics_json", "paired_diff_ci", "METRICS",
           "compute_all", "Queries", "build_queries", "hit_matrix", "Csr", "ScoreFn", "rank_topk",
           "item_slices", "restrict"]

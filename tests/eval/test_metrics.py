"""Metrics on hand-built hit matrices with hand-computed values, plus a loop reference."""
import math

import numpy as np
import pytest

from mrs.eval.metrics import METRICS, compute_all, hit, map_, ndcg, precision, recall

L3 = 1 / math.log2(3)
L5 = 1 / math.log2(5)
HITS = np.array([[1, 0, 1, 0],     # q0: 2 relevant, hits at ranks 1 and 3
                 [0, 0, 0, 1],     # q1: 5 relevant, one hit at rank 4
                 [0, 0, 0, 0]],    # q2: 1 relevant, no hit
                dtype=bool)
NREL = np.array([2, 5, 1])


@pytest.mark.parametrize("fn,k,expected", [
    (recall, 2, [1 / 2, 0, 0]),
    (recall, 4, [1.0, 1 / 5, 0]),
    (precision, 2, [1 / 2, 0, 0]),
    (precision, 4, [2 / 4, 1 / 4, 0]),
    (hit, 2, [1, 0, 0]),
    (hit, 4, [1, 1, 0]),
    (ndcg, 2, [1 / (1 + L3), 0, 0]),
    (ndcg, 4, [(1 + 0.5) / (1 + L3), L5 / (1 + L3 + 0.5 + L5), 0]),
    (map_, 2, [1 / 2, 0, 0]),                      # P@1 / min(2, 2)
    (map_, 4, [(1 + 2 / 3) / 2, (1 / 4) / 4, 0]),  # (P@1 + P@3) / 2 ; P@4 / min(5, 4)
])
def test_hand_computed(fn, k, expected):
    np.testing.assert_allclose(fn(HITS, NREL, k), expected, rtol=1e-12)


def test_perfect_ranking_scores_one():
    hits = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    n_rel = np.array([3, 6, 1])
    for name in ("recall", "ndcg", "map", "hit"):
        vals = METRICS[name](hits, n_rel, 4)
        if name == "recall":  # recall@4 of a 6-item query is capped at 4/6 by definition
            np.testing.assert_allclose(vals, [1, 4 / 6, 1])
        else:
            np.testing.assert_allclose(vals, 1.0)
    np.testing.assert_allclose(precision(hits, n_rel, 4), [3 / 4, 1, 1 / 4])
    np.testing.assert_allclose(precision(hits[1:2], n_rel[1:2], 4), [1.0])


def test_no_hit_ranking_scores_zero():
    hits = np.zeros((5, 10), dtype=bool)
    n_rel = np.arange(1, 6)
    for name, fn in METRICS.items():
        np.testing.assert_array_equal(fn(hits, n_rel, 10), 0.0, err_msg=name)


def _reference(h, n, k, name):
    h = list(h[:k])
    n_hit = sum(h)
    if name == "recall":
        return n_hit / n
    if name == "precision":
        return n_hit / k
    if name == "hit":
        return float(n_hit > 0)
    if name == "ndcg":
        dcg = sum(1 / math.log2(j + 2) for j, x in enumerate(h) if x)
        return dcg / sum(1 / math.log2(j + 2) for j in range(min(n, k)))
    if name == "map":  # Kaggle's apk
        score, found = 0.0, 0
        for j, x in enumerate(h):
            if x:
                found += 1
                score += found / (j + 1)
        return score / min(n, k)


def test_matches_loop_reference_on_random_lists():
    rng = np.random.default_rng(1)
    hits = rng.random((200, 12)) < 0.2
    n_rel = hits.sum(1) + rng.integers(1, 6, size=200)   # always >= the hits seen
    out = compute_all(hits, n_rel, list(METRICS), [1, 5, 12])
    assert list(out)[:3] == ["recall@1", "recall@5", "recall@12"]
    for key, vals in out.items():
        name, k = key.split("@")
        ref = [_reference(hits[q], n_rel[q], int(k), name) for q in range(200)]
        np.testing.assert_allclose(vals, ref, rtol=1e-12, err_msg=key)


def test_bad_cutoff_raises():
    with pytest.raises(ValueError):
        recall(HITS, NREL, 5)

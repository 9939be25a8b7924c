"""Popularity slices on a hand-built count vector, slice restriction, bootstrap intervals."""
import numpy as np
import pytest

from mrs.eval.bootstrap import bootstrap_ci
from mrs.eval.metrics import recall
from mrs.eval.queries import hit_matrix
from mrs.eval.ranking import Csr
from mrs.eval.slices import item_slices, restrict

COUNTS = np.array([0, 0, 1, 5, 20, 21, 50, 100, 100, 3])
NAMES = ["all", "tail", "head", "cold"]


def test_item_slices_on_hand_built_counts():
    s = item_slices(COUNTS, NAMES, tail_threshold=20, head_fraction=0.1)
    assert s["all"].all()
    assert np.flatnonzero(s["tail"]).tolist() == [0, 1, 2, 3, 4, 9]
    assert np.flatnonzero(s["cold"]).tolist() == [0, 1]
    assert np.flatnonzero(s["head"]).tolist() == [7, 8]          # top 1 item, its tie included
    s = item_slices(COUNTS, ["head", "tail"], tail_threshold=0, head_fraction=0.3)
    assert np.flatnonzero(s["head"]).tolist() == [6, 7, 8]
    assert np.flatnonzero(s["tail"]).tolist() == [0, 1]
    assert not item_slices(np.zeros(5), ["head"])["head"].any()  # untrained items are never head


def test_restrict_to_slice():
    s = item_slices(COUNTS, NAMES, tail_threshold=20, head_fraction=0.1)
    # q0 relevant {2 tail, 7 head}; q1 {6 mid}; q2 {0 cold}
    truth = Csr.from_pairs(np.array([0, 0, 1, 2]), np.array([2, 7, 6, 0]), 3)
    topk = np.array([[7, 5, 2], [1, 3, 4], [0, 9, 8]])
    hits = hit_matrix(topk, truth, len(COUNTS))
    rows, h, n = restrict(hits, topk, truth, s["all"])
    assert rows.tolist() == [0, 1, 2] and recall(h, n, 3).tolist() == [1.0, 0.0, 1.0]
    rows, h, n = restrict(hits, topk, truth, s["tail"])
    assert rows.tolist() == [0, 2] and n.tolist() == [1, 1]
    assert recall(h, n, 1).tolist() == [0.0, 1.0] and recall(h, n, 3).tolist() == [1.0, 1.0]
    rows, h, n = restrict(hits, topk, truth, s["head"])
    assert rows.tolist() == [0] and h.tolist() == [[True, False, False]]
    rows, h, n = restrict(hits, topk, truth, s["cold"])
    assert rows.tolist() == [2] and recall(h, n, 1).tolist() == [1.0]


def test_bootstrap_equals_naive_resampling():
    rng = np.random.default_rng(3)
    vals = rng.random((50, 4))
    vals[rng.random(50) < 0.5, 1] = np.nan          # column 1: a slice holding about half the queries
    vals[:, 3] = np.nan                              # column 3: an empty slice
    fast = bootstrap_ci(vals, 200, 0.9, seed=7, block_elems=10**9)   # one block: same draws
    draws = np.random.default_rng(7).integers(0, 50, size=(200, 50))
    means = np.nanmean(vals[draws][:, :, :3], axis=1)                  # (200, 3): mean of drawn members
    np.testing.assert_allclose(fast[:3], np.quantile(means, [0.05, 0.95], axis=0).T)
    assert np.isnan(fast[3]).all()
    # blocked draws reproduce for a seed
    np.testing.assert_array_equal(bootstrap_ci(vals, 200, seed=1, block_elems=500),
                                  bootstrap_ci(vals, 200, seed=1, block_elems=500))


def test_bootstrap_contains_mean_and_shrinks_with_queries():
    rng = np.random.default_rng(0)
    widths = []
    for q in (100, 10_000):
        v = (rng.random(q) < 0.3).astype(float)
        (lo, hi), = bootstrap_ci(v, 1000, 0.95, seed=0)
        assert lo <= v.mean() <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 5      # ~1/sqrt(100) = 1/10 of the width
    (lo, hi), = bootstrap_ci(np.full(20, 0.4), 100)
    assert lo == pytest.approx(0.4) and hi == pytest.approx(0.4)
    assert np.isnan(bootstrap_ci(np.zeros((0, 2)), 100)).all()


def test_bootstrap_level_sets_the_percentiles():
    """``level`` picks the percentiles ``(1 ± level) / 2`` of the replicate means: checked at 0.5
    and 0.99 against the same draws resampled by hand, and the intervals nest around 0.95's."""
    rng = np.random.default_rng(5)
    vals = rng.random((40, 2))
    vals[rng.random(40) < 0.4, 1] = np.nan  # a slice column
    draws = np.random.default_rng(11).integers(0, 40, size=(300, 40))  # one block: the same draws
    means = np.nanmean(vals[draws], axis=1)  # (300, 2)
    got = {}
    for level in (0.5, 0.95, 0.99):
        got[level] = bootstrap_ci(vals, 300, level, seed=11, block_elems=10**9)
        a = (1 - level) / 2
        want = np.quantile(means, [a, 1 - a], axis=0).T
        np.testing.assert_allclose(got[level], want, rtol=1e-6)  # float32 sums: ~1e-7 relative
    assert (got[0.99][:, 0] < got[0.95][:, 0]).all() and (got[0.95][:, 0] < got[0.5][:, 0]).all()
    assert (got[0.5][:, 1] < got[0.95][:, 1]).all() and (got[0.95][:, 1] < got[0.99][:, 1]).all()

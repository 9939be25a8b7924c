"""CSR masks, batched top-K, query building and the sampled-candidate draw."""
import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.eval.queries import build_queries, group_tuples, hit_matrix
from mrs.eval.ranking import Csr, rank_topk, sample_candidates
from .helpers import random_dataset, tiny


def test_csr_from_pairs_dedupes_sorts_and_gathers():
    rows = np.array([2, 0, 2, 2, 0, 3])
    cols = np.array([5, 1, 3, 5, 0, 7])
    c = Csr.from_pairs(rows, cols, n_rows=5)
    assert c.indptr.tolist() == [0, 2, 2, 4, 5, 5]
    assert c.indices.tolist() == [0, 1, 3, 5, 7]
    pos, got = c.gather(np.array([3, 0, 1, 2]))
    assert pos.tolist() == [0, 1, 1, 3, 3] and got.tolist() == [7, 0, 1, 3, 5]
    assert c.row_ids().tolist() == [0, 0, 2, 2, 3]


def test_topk_is_batch_size_invariant_and_masks():
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.standard_normal((37, 50)).astype(np.float32))
    users = np.arange(37)
    seen = Csr.from_pairs(rng.integers(0, 37, 300), rng.integers(0, 50, 300), 37)
    fn = lambda u, m: S[u]  # noqa: E731
    a = rank_topk(fn, users, np.zeros((37, 0)), 10, seen=seen, batch_size=4)
    b = rank_topk(fn, users, np.zeros((37, 0)), 10, seen=seen, batch_size=1000)
    np.testing.assert_array_equal(a, b)
    ref = S.clone()
    ref[torch.from_numpy(seen.row_ids()), torch.from_numpy(seen.indices)] = -float("inf")
    np.testing.assert_array_equal(a, ref.topk(10, dim=1).indices.numpy())
    for u in range(37):  # no seen item in any top-10
        assert not set(a[u]) & set(seen.indices[seen.indptr[u]:seen.indptr[u + 1]])


def test_k_larger_than_items_is_padded():
    fn = lambda u, m: torch.arange(3, dtype=torch.float32).repeat(len(u), 1)  # noqa: E731
    out = rank_topk(fn, np.array([0, 1]), np.zeros((2, 0)), 5)
    assert out.tolist() == [[2, 1, 0, -1, -1]] * 2


def test_user_mode_queries_and_masking(tmp_path):
    ds = tiny(tmp_path)
    q = build_queries(ds, "test", "user_mode", mask_seen=True)
    # (u0, c0) -> {3}, (u0, c1) -> {4}, (u1, c0) -> {1}; (u2, c1) -> {0} is a repurchase: dropped
    assert q.users.tolist() == [0, 0, 1] and q.modes[:, 0].tolist() == [0, 1, 0]
    assert [q.truth.indices[q.truth.indptr[r]:q.truth.indptr[r + 1]].tolist() for r in range(3)] == [[3], [4], [1]]
    assert (q.n_dropped_seen, q.n_dropped_queries) == (1, 1)
    # at test, train and valid items are masked: u0 -> {0, 1, 2}, u1 -> {0, 2, 3}
    assert q.seen.gather(np.array([0]))[1].tolist() == [0, 1, 2]
    assert q.seen.gather(np.array([1]))[1].tolist() == [0, 2, 3]
    # MMRec's protocol: at test only train items are masked
    qm = build_queries(ds, "test", "user_mode", mask_valid_at_test=False)
    assert qm.seen.gather(np.array([1]))[1].tolist() == [0, 2]
    # at valid, only train items are masked
    qv = build_queries(ds, "valid", "user_mode")
    assert qv.seen.gather(np.array([0]))[1].tolist() == [0, 1]


def test_user_queries_take_latest_modes_and_keep_repurchases(tmp_path):
    ds = tiny(tmp_path)
    q = build_queries(ds, "test", "user", mask_seen=False)
    assert q.users.tolist() == [0, 1, 2]
    assert q.modes[:, 0].tolist() == [1, 0, 1]   # u0's latest test row (ts 11) is online
    assert q.truth.indices.tolist() == [3, 4, 1, 0]
    assert q.seen.indices.size == 0 and q.kind == "user"
    assert build_queries(ds, "test", "auto").kind == "user_mode"
    assert build_queries(tiny(tmp_path / "nomodes", modes=False), "test", "auto").kind == "user"


def test_bad_query_requests_raise(tmp_path):
    ds_plain = tiny(tmp_path, modes=False)
    with pytest.raises(MrsError, match="no modes"):
        build_queries(ds_plain, "test", "user_mode")
    with pytest.raises(MrsError, match="'valid' or 'test'"):
        build_queries(ds_plain, "train")


def test_hit_matrix_lookup():
    truth = Csr.from_pairs(np.array([0, 0, 1]), np.array([4, 2, 0]), 2)
    topk = np.array([[2, 3, 4], [1, 0, -1]])
    assert hit_matrix(topk, truth, 5).tolist() == [[True, False, True], [False, True, False]]


def test_sampled_candidates_exclude_seen_and_reproduce(tmp_path):
    ds = random_dataset(tmp_path)
    q = build_queries(ds, "test", "user", with_all_seen=True)
    rows = np.arange(len(q))
    pos, cols = q.truth.gather(rows)
    draw = lambda s: sample_candidates(ds.n_items, q.users, pos, cols, q.all_seen, 7,  # noqa: E731
                                       torch.Generator().manual_seed(s))
    cand = draw(0)
    assert torch.equal(cand, draw(0)) and not torch.equal(cand, draw(1))
    for r, u in enumerate(q.users):
        rel = set(cols[pos == r].tolist())
        user_items = set(q.all_seen.gather(np.array([u]))[1].tolist())
        chosen = set(torch.nonzero(cand[r]).flatten().tolist())
        assert rel <= chosen and len(chosen) == len(rel) + 7
        assert not (chosen - rel) & user_items          # negatives are items the user never had
    # fewer unseen items than asked: all of them are taken, none seen
    few = sample_candidates(ds.n_items, q.users[:1], pos[pos == 0], cols[pos == 0], q.all_seen,
                            10_000, torch.Generator().manual_seed(0))
    assert int(few.sum()) == ds.n_items - len(q.all_seen.gather(q.users[:1])[1]) + int((pos == 0).sum())


def test_group_tuples_packed_equals_row_sort():
    rng = np.random.default_rng(0)
    u, m = rng.integers(0, 30, 500), rng.integers(0, [2, 12], size=(500, 2))
    packed = group_tuples(u, m, [2, 12], 30)
    rows = group_tuples(u, m, [2, 12], 2**62)          # too big to pack: sorts rows instead
    for a, b in zip(packed, rows):
        np.testing.assert_array_equal(a, b)
    users, modes, q = packed
    np.testing.assert_array_equal(users[q], u)
    np.testing.assert_array_equal(modes[q], m)
    assert len(users) == len({(a, b, c) for a, (b, c) in zip(u, m)})


def test_nan_scores_raise_naming_the_user():
    S = torch.zeros(6, 8)
    S[4, 3] = float("nan")
    with pytest.raises(MrsError, match="NaN scores .*user 4"):
        rank_topk(lambda u, m: S[u], np.arange(6), np.zeros((6, 0)), 3, batch_size=4)


def test_masking_never_writes_into_the_callers_tensor():
    S = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    before = S.clone()
    seen = Csr.from_pairs(np.array([0, 1, 2, 3]), np.array([5, 5, 5, 5]), 4)
    out = rank_topk(lambda u, m: S[int(u[0]):int(u[-1]) + 1], np.arange(4), np.zeros((4, 0)), 2,
                    seen=seen, batch_size=2)          # contiguous slices are views of S
    assert out.tolist() == [[4, 3]] * 4 and torch.equal(S, before)

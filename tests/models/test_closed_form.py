"""Closed-form baselines against hand counts and direct dense transcriptions of their formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.models.closed.base import Interactions, topk_per_row
from mrs.models.closed.ease import EASE
from mrs.models.closed.neighbours import RP3beta, ItemKNN
from mrs.models.closed.pop import Pop


def interactions(users, items, n_users, n_items, modes=None, names=(), cards=(), ts=None) -> Interactions:
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    modes = np.zeros((len(users), 0), np.int64) if modes is None else np.asarray(modes, np.int64)
    return Interactions(n_users, n_items, users, items, modes, list(names), list(cards),
                        None if ts is None else np.asarray(ts, np.int64))


def random_data(seed=0, n_users=40, n_items=25, density=0.25) -> tuple[Interactions, np.ndarray]:
    x = (np.random.default_rng(seed).random((n_users, n_items)) < density).astype(np.float64)
    x[0] = 0.0  # a cold user (others may be cold by chance)
    u, i = np.nonzero(x)
    return interactions(u, i, n_users, n_items), x


def warm_rows(x: np.ndarray) -> np.ndarray:
    """Users with train rows (cold ones get the popularity fallback, tested apart)."""
    return x.sum(1) > 0


def predict(model, n_users, modes=None, items=None, mode_weights=None) -> np.ndarray:
    users = torch.arange(n_users)
    modes = torch.zeros(n_users, 0, dtype=torch.long) if modes is None else torch.as_tensor(modes)
    return model.full_sort_predict(users, modes, mode_weights=mode_weights, items=items).numpy()


def dense_topk_rows(w: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(w)
    for r in range(len(w)):
        keep = np.argsort(-w[r], kind="stable")[:k]
        out[r, keep] = w[r, keep]
    return out


def test_ease_matches_a_numpy_inverse_transcription():
    data, x = random_data()
    warm = warm_rows(x)
    lam = 3.0
    g = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]  # B = I - P diag(1/diag P)
    np.fill_diagonal(b, 0.0)
    want = x @ b
    for dtype, tol in (("float64", 1e-5), ("float32", 1e-4)):
        got = predict(EASE(40, 25, lam=lam, dtype=dtype).fit(data), 40)
        np.testing.assert_allclose(got[warm], want[warm], atol=tol)
        pop = np.bincount(data.items, minlength=25)
        assert (np.argsort(-got[~warm], 1, kind="stable") == np.argsort(-pop, kind="stable")).all()
    model = EASE(40, 25, lam=lam, dtype="float64").fit(data)
    np.testing.assert_allclose(np.diag(model.weights), 0.0)


def test_item_chunks_equal_the_full_rows():
    data, _ = random_data(1)
    for model in (EASE(40, 25, lam=1.0), ItemKNN(40, 25, k=5, shrink=1.0), RP3beta(40, 25, k=5),
                  Pop(40, 25)):
        model.fit(data)
        full = predict(model, 40)
        parts = np.concatenate([predict(model, 40, items=slice(c, min(c + 7, 25))) for c in range(0, 25, 7)], 1)
        np.testing.assert_allclose(parts, full, rtol=1e-6)


def test_small_blocks_give_the_same_models(monkeypatch):
    """The item-row blocks (bounded co-occurrences) only split the work: many tiny blocks give
    the same matrices as one."""
    from mrs.models.closed import neighbours

    data, _ = random_data(4)
    whole = [m.fit(data) for m in (ItemKNN(40, 25, k=5), RP3beta(40, 25, k=5), EASE(40, 25, lam=1.0))]
    monkeypatch.setattr(neighbours, "BLOCK_NNZ", 30)
    assert len(neighbours.item_blocks(data.matrix())) > 5
    parts = [m.fit(data) for m in (ItemKNN(40, 25, k=5), RP3beta(40, 25, k=5), EASE(40, 25, lam=1.0))]
    for a, b in zip(whole, parts):
        wa, wb = (w.toarray() if hasattr(w, "toarray") else w for w in (a.weights, b.weights))
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_itemknn_matches_explicit_cosines():
    data, x = random_data(2)
    warm = warm_rows(x)
    shrink, k = 2.0, 4
    norms = np.linalg.norm(x, axis=0)
    s = (x.T @ x) / (norms[:, None] * norms[None, :] + shrink + 1e-6)
    np.fill_diagonal(s, 0.0)
    w = dense_topk_rows(s, k).T  # each target column j keeps its k most similar items
    got = predict(ItemKNN(40, 25, k=k, shrink=shrink).fit(data), 40)
    np.testing.assert_allclose(got[warm], (x @ w)[warm], rtol=1e-5, atol=1e-6)


def test_itemknn_hand_computed_cosine():
    """Items 0 and 1 share both their users (cosine 1), item 2 shares one of two (cos 1/2); the
    repeated row (user 0, item 0) counts once in X and twice in popularity."""
    data = interactions([0, 0, 0, 1, 1, 1, 2], [0, 0, 1, 0, 1, 2, 2], 4, 3)
    m = ItemKNN(4, 3, k=2, shrink=0.0).fit(data)
    w = m.weights.toarray()
    np.testing.assert_allclose(w, [[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]], atol=1e-5)
    # user 2 has item 2 only: items 0 and 1 score 1/2 each; user 3 is cold: popularity order
    s = predict(m, 4)
    np.testing.assert_allclose(s[2], [0.5, 0.5, 0.0], atol=1e-5)
    assert np.argsort(-s[3], kind="stable").tolist() == [0, 1, 2] and s[3][0] > s[3][1]


def test_rp3beta_matches_a_dense_transcription():
    data, x = random_data(3)
    warm = warm_rows(x)
    alpha, beta, k = 0.7, 0.4, 6
    deg_u, deg_i = x.sum(1), x.sum(0)
    p_ui = (x / np.maximum(deg_u, 1)[:, None]) ** alpha
    p_iu = (x.T / np.maximum(deg_i, 1)[:, None]) ** alpha
    w = (p_iu @ p_ui) * np.where(deg_i > 0, np.maximum(deg_i, 1) ** -beta, 0.0)[None, :]
    np.fill_diagonal(w, 0.0)
    w = dense_topk_rows(w, k)
    got = predict(RP3beta(40, 25, k=k, alpha=alpha, beta=beta).fit(data), 40)
    np.testing.assert_allclose(got[warm], (x @ w)[warm], rtol=1e-5, atol=1e-7)


def test_topk_per_row_keeps_the_largest():
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[3.0, 1.0, 2.0, 0.0], [0.0, 0.0, 5.0, 4.0], [1.0, 0, 0, 0]]))
    np.testing.assert_array_equal(topk_per_row(m, 2).toarray(),
                                  [[3, 0, 2, 0], [0, 0, 5, 4], [1, 0, 0, 0]])


def test_perfect_case_two_disjoint_groups():
    """Users buy within one of two item groups: every item-item model ranks the user's group
    above the other, for every user."""
    rng = np.random.default_rng(0)
    u, i = [], []
    for user in range(30):
        group = user % 2
        for item in rng.choice(5, 3, replace=False):
            u.append(user)
            i.append(group * 5 + item)
    data = interactions(u, i, 30, 10)
    for model in (EASE(30, 10, lam=1.0), ItemKNN(30, 10, k=9, shrink=0.0), RP3beta(30, 10, k=9)):
        s = predict(model.fit(data), 30)
        for user in range(30):
            own = np.arange(5) + 5 * (user % 2)
            other = np.arange(5) + 5 * (1 - user % 2)
            assert s[user, own].min() > s[user, other].max(), (type(model).__name__, user)


def test_pop_by_context_and_time_is_the_counts():
    # item counts per (context, time): (0, 0): item 1 x2, item 2 x1; (1, 0): item 0 x3; globally 0 > 1 > 2
    modes = [[0, 0], [0, 0], [0, 0], [1, 0], [1, 0], [1, 0], [1, 1]]
    data = interactions([0, 1, 2, 0, 1, 2, 3], [1, 1, 2, 0, 0, 0, 2], 5, 4, modes,
                        ["context", "time"], [2, 2])
    pop = Pop(5, 4, by=["context", "time"]).fit(data)
    q = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0, 0]])
    s = predict(pop, 5, q)
    counts = np.array([[0, 2, 1, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 2, 1, 0]])
    np.testing.assert_array_equal(np.floor(s), counts)       # the global term is below one
    glob = np.bincount(data.items, minlength=4)
    assert np.argsort(-s[2], kind="stable").tolist() == np.argsort(-glob, kind="stable").tolist()
    # context unknown (per-user queries weight it): summed over contexts at the query's time
    s = predict(pop, 5, q, mode_weights=[torch.tensor([0.5, 0.5]), None])
    np.testing.assert_array_equal(np.floor(s[0]), [3, 2, 1, 0])
    np.testing.assert_array_equal(np.floor(s[3]), [0, 0, 1, 0])
    # the user is no part of the score: the cold user 4 ranks as user 0
    np.testing.assert_array_equal(predict(pop, 5, q)[4], predict(pop, 5, q)[0])


def test_pop_window_and_repeat():
    day = 86400
    # item 0 bought often long ago, item 1 twice in the last week; user 0 had items 2 then 3
    data = interactions([1, 2, 3, 1, 2, 0, 0], [0, 0, 0, 1, 1, 2, 3], 4, 5,
                        ts=[0, 0, 0, 30 * day, 31 * day, 10 * day, 20 * day])
    assert np.argmax(predict(Pop(4, 5).fit(data), 4)[1]) == 0
    assert np.argmax(predict(Pop(4, 5, window_days=7).fit(data), 4)[1]) == 1
    s = predict(Pop(4, 5, repeat=True).fit(data), 4)
    assert np.argsort(-s[0], kind="stable")[:4].tolist() == [3, 2, 0, 1]  # own items, most recent first
    assert np.argsort(-s[3], kind="stable")[:2].tolist() == [0, 1]        # cold user: popularity


@pytest.mark.parametrize("make,key", [
    (lambda: ItemKNN(3, 3, k=0), "model.options.itemknn.k"),
    (lambda: ItemKNN(3, 3, shrink=-1), "model.options.itemknn.shrink"),
    (lambda: RP3beta(3, 3, k=0), "model.options.rp3beta.k"),
    (lambda: RP3beta(3, 3, alpha=-0.5), "model.options.rp3beta.alpha"),
    (lambda: RP3beta(3, 3, beta=-0.1), "model.options.rp3beta.beta"),
    (lambda: EASE(3, 3, lam=-1), "model.options.ease.lam"),
    (lambda: Pop(3, 3, window_days=-1), "model.options.pop.window_days"),
])
def test_bad_options_name_their_key(make, key):
    with pytest.raises(MrsError, match=key.replace(".", r"\.")):
        make()


def test_ease_over_its_budget_names_the_key_and_the_size():
    with pytest.raises(MrsError, match=r"'model\.options\.ease\.max_memory_mb': EASE's dense 20000 x "
                                       r"20000 float32 matrix needs 1526 MiB, above the budget of 100 MiB"):
        EASE(10, 20000, max_memory_mb=100)


def test_pop_by_a_missing_mode_names_the_key():
    data = interactions([0], [0], 1, 1, [[0]], ["context"], [1])
    with pytest.raises(MrsError, match=r"'model\.options\.pop\.by': 'time' is not a mode of this dataset"):
        Pop(1, 1, by=["time"]).fit(data)

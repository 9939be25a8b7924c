import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.models import ModelConfig, build_model
from mrs.sampling import NegativeSampler

from .reference import is_train
from .planted import fit, planted


def _dense_owned(users, items, n_users, n_items):
    owned = np.zeros((n_users, n_items), bool)
    owned[users, items] = True
    return owned


def test_uniform_never_returns_a_train_item_even_for_users_owning_most_items():
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 40
    users, items = [], []
    for u in range(n_users):  # users own between 0 and n_items - 1 items
        own = rng.choice(n_items, rng.integers(0, n_items), replace=False)
        users += [u] * len(own)
        items += list(own)
    users += [3, 3]  # duplicates are fine
    items += [items[0], items[0]]
    users, items = np.array(users), np.array(items)
    s = NegativeSampler(users, items, n_items, seed=1)
    owned = _dense_owned(users, items, n_users, n_items)
    q = torch.arange(n_users).repeat(200)
    neg = s.uniform(q)
    assert neg.shape == q.shape and neg.min() >= 0 and neg.max() < n_items
    assert not owned[q.numpy(), neg.numpy()].any()
    assert not is_train(s, q, neg).any()
    many = s.uniform(q, m=5)
    assert many.shape == (len(q), 5) and not owned[q.numpy()[:, None], many.numpy()].any()
    # is_train agrees with the dense truth
    assert np.array_equal(is_train(s, q[:400], torch.as_tensor(np.tile(np.arange(n_items), 10)[:400])).numpy(),
                          owned[q[:400].numpy(), np.tile(np.arange(n_items), 10)[:400]])


def test_uniform_is_uniform_over_the_complement():
    # user 0 owns items {1, 3, 4}; negatives must be uniform over {0, 2, 5, 6}
    s = NegativeSampler(np.array([0, 0, 0, 1]), np.array([1, 3, 4, 0]), 7, seed=0)
    neg = s.uniform(torch.zeros(40000, dtype=torch.long))
    counts = torch.bincount(neg, minlength=7).float() / 40000
    assert counts[[1, 3, 4]].sum() == 0
    assert torch.allclose(counts[[0, 2, 5, 6]], torch.full((4,), 0.25), atol=0.015)


def test_user_owning_every_item_is_an_error():
    with pytest.raises(MrsError, match="user 1 .* every item"):
        NegativeSampler(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 2]), 3)


def test_seeded_and_resumable():
    users, items = np.array([0, 1, 2]), np.array([0, 1, 2])
    a, b = NegativeSampler(users, items, 50, seed=7), NegativeSampler(users, items, 50, seed=7)
    q = torch.tensor([0, 1, 2] * 10)
    assert torch.equal(a.uniform(q), b.uniform(q))
    state = a.state_dict()
    x = a.uniform(q)
    a.load_state_dict(state)
    assert torch.equal(a.uniform(q), x)


@pytest.fixture(scope="module")
def trained_mf():
    d = planted()
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="mf", dim=8), n_users=d.n_users, n_items=d.n_items,
                        mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items)
    return d, fit(model, d, epochs=8)


@pytest.mark.parametrize("pick", ["hardest", "softmax"])
def test_dynamic_negatives_are_harder_than_uniform(pick, trained_mf):
    d, model = trained_mf
    s = NegativeSampler(d.train_users, d.train_items, d.n_items, seed=0, strategy="dynamic", candidates=16,
                        pick=pick, temperature=0.1)
    users = torch.as_tensor(d.train_users)
    modes = torch.zeros(len(users), 0, dtype=torch.long)
    with torch.no_grad():
        emb = model.encode()
        hard = s.sample(users, modes, model, emb)
        easy = s.uniform(users)
        assert not is_train(s, users, hard).any()
        hard_s = model.score(users, hard, modes, emb).mean()
        easy_s = model.score(users, easy, modes, emb).mean()
    assert hard_s > easy_s + 0.5 * model.score(users, easy, modes, emb).std()


def test_dynamic_scores_candidates_under_the_positives_context():
    """Context 1 reverses every preference, so the hardest of the same candidates under context 1
    is the easiest under context 0."""
    d = planted(n_users=30, n_items=40, per_user=5, held_out=1)
    torch.manual_seed(0)
    m = build_model(ModelConfig(encoder="mf", dim=8), n_users=d.n_users, n_items=d.n_items,
                    mode_cardinalities=[2], train_users=d.train_users, train_items=d.train_items).eval()
    with torch.no_grad():
        m.scorer.factors[0][1].fill_(-1.0)
    users = torch.arange(30)
    args = (d.train_users, d.train_items, d.n_items)
    cand = NegativeSampler(*args, seed=3).uniform(users, 16)  # the candidates a seed-3 sampler draws
    ctx0, ctx1 = torch.zeros(30, 1, dtype=torch.long), torch.ones(30, 1, dtype=torch.long)
    s0 = m.score(users, cand, ctx0)  # (B, M)
    neg0 = NegativeSampler(*args, seed=3, strategy="dynamic").sample(users, ctx0, m)
    neg1 = NegativeSampler(*args, seed=3, strategy="dynamic").sample(users, ctx1, m)
    assert torch.equal(neg0, cand.gather(1, s0.argmax(1, keepdim=True)).squeeze(1))
    assert torch.equal(neg1, cand.gather(1, s0.argmin(1, keepdim=True)).squeeze(1))

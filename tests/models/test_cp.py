import numpy as np
import pytest
import torch

from mrs.models import ENCODERS, Batch, ModelConfig, build_model
from mrs.models.cp import CPScorer

from .planted import planted


def _pair(encoder, cards, **kw):
    d = planted()
    common = dict(n_users=d.n_users, n_items=d.n_items, train_users=d.train_users, train_items=d.train_items,
                  features=d.features)
    torch.manual_seed(0)
    with_modes = build_model(ModelConfig(encoder=encoder, dim=8, modes=True, **kw), mode_cardinalities=cards, **common)
    torch.manual_seed(0)
    plain = build_model(ModelConfig(encoder=encoder, dim=8, modes=False, **kw), mode_cardinalities=cards, **common)
    return d, with_modes.eval(), plain.eval()


@pytest.mark.parametrize("encoder", ENCODERS.names())
@pytest.mark.parametrize("cards", [[], [3], [2, 12], [2, 3, 4]])
def test_untrained_cp_equals_plain_model(encoder, cards):
    d, cp, plain = _pair(encoder, cards)
    assert cp.scorer.n_modes == len(cards) and plain.scorer.n_modes == 0
    users = torch.arange(10)
    modes = torch.stack([torch.randint(0, n, (10,)) for n in cards], 1) if cards else torch.zeros(10, 0, dtype=torch.long)
    a = cp.full_sort_predict(users, modes)
    b = plain.full_sort_predict(users, torch.zeros(10, 0, dtype=torch.long))
    assert torch.allclose(a, b, atol=1e-6)
    # ... and the plain model is the dot product of the encoder's outputs (MF for mf).
    ue, ie = plain.encode()
    assert torch.allclose(b, ue[users] @ ie.T, atol=1e-6)
    if encoder == "mf":
        assert torch.allclose(b, plain.user_encoder.emb.weight[users] @ plain.item_emb.weight.T)


def test_modes_off_ignores_mode_columns():
    d, _, plain = _pair("lightgcn", [2, 12])
    users = torch.arange(5)
    m1 = torch.tensor([[0, 1]] * 5)
    m2 = torch.tensor([[1, 7]] * 5)
    assert torch.equal(plain.full_sort_predict(users, m1), plain.full_sort_predict(users, m2))


def test_cp_hand_computed_and_full_ranking_matches_pointwise():
    s = CPScorer([2, 3], dim=2)
    with torch.no_grad():
        s.factors[0].copy_(torch.tensor([[1.0, 2.0], [0.5, 0.0]]))
        s.factors[1].copy_(torch.tensor([[1.0, 1.0], [3.0, -1.0], [0.0, 1.0]]))
    u = torch.tensor([[1.0, 1.0]])
    items = torch.tensor([[2.0, 1.0], [1.0, -1.0]])
    modes = torch.tensor([[0, 1]])
    q = s.query(u, modes)  # U·C[0]·T[1] = [1*1*3, 1*2*(-1)] = [3, -2]
    assert torch.allclose(q, torch.tensor([[3.0, -2.0]]))
    full = s.rank_all(q, items)  # [3*2 - 2*1, 3*1 + 2] = [4, 5]
    assert torch.allclose(full, torch.tensor([[4.0, 5.0]]))
    assert torch.allclose(s.score(q, items.unsqueeze(0)), full)


def test_trained_modes_change_scores_by_context():
    d, cp, _ = _pair("mf", [2])
    with torch.no_grad():
        cp.scorer.factors[0][1].mul_(-1.0)  # context 1 reverses every preference
    users = torch.arange(4)
    s0 = cp.full_sort_predict(users, torch.zeros(4, 1, dtype=torch.long))
    s1 = cp.full_sort_predict(users, torch.ones(4, 1, dtype=torch.long))
    assert torch.allclose(s0, -s1)
    # score() agrees with full ranking for the same (user, item, context)
    items = torch.tensor([[3, 7], [0, 1], [5, 5], [2, 9]])
    pt = cp.score(users, items, torch.ones(4, 1, dtype=torch.long))
    assert torch.allclose(pt, s1.gather(1, items), atol=1e-6)


def test_loss_regularises_only_touched_rows():
    d, cp, _ = _pair("mf", [2], reg=1.0)
    cp.train()
    batch = Batch(torch.tensor([0, 1]), torch.tensor([3, 4]), torch.tensor([5, 6]), torch.tensor([[0], [0]]))
    loss, parts = cp.calculate_loss(batch)
    loss.backward()
    g = cp.user_encoder.emb.weight.grad
    touched = g.abs().sum(1) > 0
    assert touched[:2].all() and not touched[2:].any()
    gi = cp.item_emb.weight.grad.abs().sum(1) > 0
    assert set(torch.nonzero(gi).flatten().tolist()) == {3, 4, 5, 6}
    want_l2 = (cp.user_encoder.emb.weight[:2].pow(2).sum() + cp.item_emb.weight[3:7].pow(2).sum()) / 2
    assert np.isclose(parts["l2"], want_l2.item(), rtol=1e-5)  # mode rows start at one: no penalty


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_model_deepcopies_and_reloads_from_state_dict(encoder):
    import copy

    d, cp, _ = _pair(encoder, [2])
    cp.train()
    cp.on_epoch_start(0)
    twin = copy.deepcopy(cp)  # graphs are dense-buffer CSR modules, so this works
    users, modes = torch.arange(6), torch.zeros(6, 1, dtype=torch.long)
    assert torch.equal(twin.full_sort_predict(users, modes), cp.full_sort_predict(users, modes))
    sd = cp.state_dict()
    assert not any(k.endswith(("crow", "col", "val")) for k in sd)  # graphs are rebuilt, not saved
    torch.manual_seed(1)
    other = build_model(ModelConfig(encoder=encoder, dim=8, modes=True), n_users=d.n_users, n_items=d.n_items,
                        mode_cardinalities=[2], train_users=d.train_users, train_items=d.train_items,
                        features=d.features).eval()
    other.load_state_dict(sd)
    cp.eval()
    assert torch.allclose(other.full_sort_predict(users, modes), cp.full_sort_predict(users, modes))


def _mode_tables(model) -> list[torch.Tensor]:
    """The CP mode factor matrices ``(n_j, r)``, one per extra mode (the one place that knows where
    the model keeps them)."""
    return list(model.scorer.factors)


def test_l2_pulls_trained_mode_rows_towards_one():
    """The l2 part is ``(Σ‖user rows‖² + Σ‖item rows‖² + Σ‖mode rows − 1‖²) / B`` over the rows the
    batch touched (each as often as used), and the loss adds it times λ (no 1/2). Checked after a
    few optimiser steps, when the mode rows have moved away from their initial ones."""
    reg = 0.5
    d, cp, _ = _pair("mf", [2, 3], reg=reg)
    cp.train()
    gen = torch.Generator().manual_seed(0)

    def batch(b=8):
        def ints(n, *shape):
            return torch.randint(0, n, shape, generator=gen)

        return Batch(ints(d.n_users, b), ints(d.n_items, b), ints(d.n_items, b, 2),
                     torch.stack([ints(2, b), ints(3, b)], 1))  # (B, 2) modes: context, time

    opt = torch.optim.Adam(cp.parameters(), lr=0.1)
    for _ in range(5):
        loss, _ = cp.calculate_loss(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()

    bt = batch()
    with torch.no_grad():
        loss, parts = cp.calculate_loss(bt)
        items = torch.cat([bt.pos, bt.neg.reshape(-1)])
        ids = cp.user_encoder.emb.weight[bt.users].pow(2).sum() + cp.item_emb.weight[items].pow(2).sum()
        mode = sum((t[bt.modes[:, j]] - 1.0).pow(2).sum() for j, t in enumerate(_mode_tables(cp)))
    assert mode > 0.05 * ids  # the mode rows moved (about 10% of the total): far above the tolerance
    want = (ids + mode).item() / len(bt.users)
    assert parts["l2"] == pytest.approx(want, rel=1e-5)
    assert loss.item() == pytest.approx(parts["bpr"] + reg * want, rel=1e-5)

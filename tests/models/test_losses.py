import math

import torch

from mrs.losses import bpr_l2_loss, bpr_loss, coupling_loss, coupling_weights


def _ls(x):  # log σ(x), by hand
    return math.log(1.0 / (1.0 + math.exp(-x)))


def test_bpr_l2_hand_computed():
    pos = torch.tensor([2.0, 0.5])
    neg = torch.tensor([1.0, 1.5])
    u = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # ‖·‖² = 5 + 1
    p = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # 1 + 9
    n = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # 4 + 2
    total, bpr, l2 = bpr_l2_loss(pos, neg, [u, p, n], reg=0.1)
    want_bpr = -(_ls(1.0) + _ls(-1.0)) / 2  # averaged once over the batch
    want_l2 = (6 + 10 + 6) / 2  # Σ‖θ‖² / B
    assert math.isclose(bpr.item(), want_bpr, rel_tol=1e-6)
    assert math.isclose(l2.item(), want_l2, rel_tol=1e-6)
    assert math.isclose(total.item(), want_bpr + 0.1 * want_l2, rel_tol=1e-6)


def test_bpr_several_negatives_is_mean_over_all_pairs():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    want = -(_ls(1.0) + _ls(-1.0) + _ls(-1.0) + _ls(1.0)) / 4
    assert math.isclose(bpr_loss(pos, neg).item(), want, rel_tol=1e-6)


def test_bpr_perfect_and_reversed():
    big = torch.full((4,), 50.0)
    assert bpr_loss(big, -big).item() < 1e-20  # perfect separation: zero loss
    assert math.isclose(bpr_loss(torch.zeros(4), torch.zeros(4)).item(), math.log(2), rel_tol=1e-6)


def test_coupling_weights_and_value():
    mu = coupling_weights(torch.tensor([0, 1, 10]), mu0=2.0)
    assert torch.allclose(mu, torch.tensor([2 / math.log(2), 2 / math.log(3), 2 / math.log(12)]))
    assert mu[0] > mu[1] > mu[2]  # rare items are coupled hardest
    q = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    we = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    val = coupling_loss(q, we, torch.tensor([0.5, 2.0]))
    assert math.isclose(val.item(), 0.5 * 1 + 2.0 * 2, rel_tol=1e-6)

"""Gated fusion (FAERec): the gate formula, PCA initialisation, alignment losses and curriculum."""
from __future__ import annotations

import pytest
import torch

from mrs.errors import MrsError
from mrs.models import ModelConfig, build_model
from mrs.models.gated import GatedFusion, correlation, info_nce, popularity_split

from .planted import planted


def _fusion(**kw) -> GatedFusion:
    tail, head = popularity_split(torch.tensor([5, 0, 1, 9, 2]))
    return GatedFusion({"text": 3, "image": 2}, 4, tail, head, **kw)


def test_gate_mixes_id_and_semantic_per_dimension():
    f = _fusion()
    feats = {"text": torch.randn(5, 3), "image": torch.randn(5, 2)}
    ids = torch.randn(5, 4)
    with torch.no_grad():  # last layer bias +inf-like: g = 1 -> IDs; -inf-like: g = 0 -> semantics
        f.gate[2].weight.zero_()
        f.gate[2].bias.fill_(30.0)
        assert torch.allclose(f(ids, feats), ids, atol=1e-6)
        f.gate[2].bias.fill_(-30.0)
        assert torch.allclose(f(ids, feats), f.semantic(feats), atol=1e-6)
        f.gate[2].bias.fill_(0.0)  # g = 1/2: the mean
        assert torch.allclose(f(ids, feats), 0.5 * (ids + f.semantic(feats)), atol=1e-6)
    assert f.weights() == pytest.approx({"gate_tail": 0.5, "gate_head": 0.5})


def test_popularity_split_top_20_percent_is_head():
    tail, head = popularity_split(torch.tensor([5, 0, 1, 9, 2, 3, 3, 0, 0, 1]))
    assert head.tolist() == [True, False, False, True] + [False] * 6  # ceil(0.2 * 10) = 2 items
    assert (tail == ~head).all()


def test_info_nce_and_feature_alignment_by_hand():
    a = torch.eye(3)
    # perfectly aligned pairs at low temperature: loss -> 0; mismatched pairs: large
    assert info_nce(a, a, 0.01) < 1e-6
    assert info_nce(a, a[[1, 2, 0]], 0.01) > 50
    x = torch.randn(100, 3)
    c = correlation(x)
    assert torch.allclose(torch.diagonal(c), torch.ones(3), atol=1e-4)
    assert torch.allclose(correlation(2 * x + 1), c, atol=1e-4)  # scale/shift invariant


def test_alignment_weights_and_curriculum():
    f = _fusion(align_item=0.5, align_feature=2.0, schedule=4)
    feats = {"text": torch.randn(5, 3), "image": torch.randn(5, 2)}
    ids = torch.randn(5, 4, requires_grad=True)
    f.on_epoch_start(0)
    parts = f.aux_losses(torch.tensor([0, 1, 1, 3, 4]), ids, feats)
    assert set(parts) == {"align_item"}  # feature-level weight 0 at epoch 0
    f.on_epoch_start(2)
    assert f.feature_weight() == pytest.approx(1.0)  # 2.0 · 2/4
    f.on_epoch_start(9)
    assert f.feature_weight() == pytest.approx(2.0)
    parts = f.aux_losses(torch.tensor([0, 1, 3, 4]), ids, feats)
    assert set(parts) == {"align_item", "align_feature"}
    sum(parts.values()).backward()
    assert ids.grad is not None and ids.grad.abs().sum() > 0


def test_pca_initialisation_of_the_id_table():
    d = planted(n_users=20, n_items=30, per_user=4)
    cfg = ModelConfig(encoder="mf", fusion="gated", dim=4)
    m = build_model(cfg, n_users=d.n_users, n_items=d.n_items, mode_cardinalities=[],
                    train_users=d.train_users, train_items=d.train_items, features=d.features)
    x = torch.cat([torch.nn.functional.normalize(v.float(), dim=1) for v in d.features.values()], 1)
    x = x - x.mean(0)
    w = m.item_emb.weight.detach()
    # the ID columns span the top principal subspace: projecting x's top PC onto them keeps it
    top = torch.linalg.svd(x, full_matrices=False).U[:, 0]
    q, _ = torch.linalg.qr(w)
    assert (q.T @ top).norm() > 0.99
    off = build_model(ModelConfig(encoder="mf", fusion="gated", dim=4, gate_pca_init=False),
                      n_users=d.n_users, n_items=d.n_items, mode_cardinalities=[],
                      train_users=d.train_users, train_items=d.train_items, features=d.features)
    q2, _ = torch.linalg.qr(off.item_emb.weight.detach())
    assert (q2.T @ top).norm() < 0.9


@pytest.mark.parametrize("key", ["align_item", "align_feature"])
def test_alignment_without_gated_fusion_is_an_error(key):
    d = planted(n_users=10, n_items=9, per_user=3, held_out=1)
    with pytest.raises(MrsError, match=f"model.{key}"):
        build_model(ModelConfig(fusion="concat", **{key: 0.1}), n_users=10, n_items=9,
                    mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items,
                    features=d.features)
    with pytest.raises(MrsError, match="model.fusion='gated' needs item features"):
        build_model(ModelConfig(fusion="gated"), n_users=10, n_items=9, mode_cardinalities=[],
                    train_users=d.train_users, train_items=d.train_items)


def test_never_bought_items_are_tail_even_when_most_items_are_cold():
    """Issue 19: with > 80% of the catalogue never bought, the top-20% 'head' took cold items."""
    counts = torch.tensor([7, 3] + [0] * 18)  # 2 of 20 items bought; ceil(0.2 * 20) = 4
    tail, head = popularity_split(counts)
    assert head.tolist() == [True, True] + [False] * 18 and (tail == ~head).all()


def test_principal_scores_match_the_exact_svd_with_oversampling():
    """Issue 19: pca_lowrank(q=k) without oversampling got the 4th of 4 components at |cos| 0.59."""
    from mrs.models.gated import principal_scores

    g = torch.Generator().manual_seed(0)
    # a slowly decaying spectrum, where an un-oversampled randomised range finder is poor
    x = torch.randn(400, 60, generator=g) @ torch.diag(torch.linspace(3.0, 1.0, 60))
    exact = principal_scores(x, 4)  # small: the exact SVD
    torch.manual_seed(0)
    approx = principal_scores(x, 4, exact_max_flops=0)  # forced randomised, k + 10 directions
    cos = torch.nn.functional.cosine_similarity(exact, approx, dim=0).abs()
    assert (cos > 0.95).all(), cos  # seen: 0.998 0.998 0.988 0.983
    torch.manual_seed(0)
    u, s, _ = torch.pca_lowrank(x, q=4, center=True, niter=4)  # the old call
    old = torch.nn.functional.cosine_similarity(exact, u * s, dim=0).abs()
    assert old.min() < 0.5, old  # seen: 0.93 0.68 0.04 0.03

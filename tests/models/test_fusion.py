import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.models import ENCODERS, FUSIONS, ModelConfig, build_model
from mrs.models.fusion import EarlyFusion, LateFusion

from .planted import fit, planted


def test_early_fusion_alpha_sums_to_one_and_gradients_flow():
    f = EarlyFusion({"text": 6, "image": 4, "audio": 3}, joint_dim=5, out_dim=8)
    feats = {"text": torch.randn(10, 6), "image": torch.randn(10, 4), "audio": torch.randn(10, 3)}
    out = f.content(feats)
    assert out.shape == (10, 8)
    w = f.weights()
    assert list(w) == ["text", "image", "audio"] and abs(sum(w.values()) - 1) < 1e-6
    (out * torch.randn(10, 8)).sum().backward()
    assert f.logits.grad is not None and f.logits.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in f.proj.parameters())


def test_early_fusion_is_the_alpha_weighted_sum():
    f = EarlyFusion({"a": 2, "b": 2}, joint_dim=2, out_dim=2)
    with torch.no_grad():
        f.logits.copy_(torch.tensor([0.0, 1e4]))  # all weight on "b"
    feats = {"a": torch.randn(3, 2), "b": torch.randn(3, 2)}
    assert torch.allclose(f.content(feats), f.proj["b"](feats["b"]), atol=1e-5)


def test_late_fusion_block_weights():
    f = LateFusion({"text": 4, "image": 3}, out_dim=2)
    assert torch.allclose(f.score_scale(), torch.ones(6))  # uniform α = plain sum of branch scores
    assert set(f.weights()) == {"id", "text", "image"}


@pytest.mark.parametrize("encoder", ENCODERS.names())
@pytest.mark.parametrize("fusion", [f for f in FUSIONS.names()
                                    if FUSIONS.get(f).needs_features and not FUSIONS.get(f).embeds_sequences])
def test_every_model_trains_one_epoch(encoder, fusion, tmp_path):
    """RecBole-style smoke test: each encoder x fusion builds, trains an epoch, ranks, logs α."""
    d = planted(n_users=40, n_items=30, per_user=6)
    cfg = ModelConfig(encoder=encoder, fusion=fusion, dim=4, joint_dim=6, coupling_mu0=0.1,
                      filtration="content" if encoder == "freedom" else "degree", knn_k=3)
    data = dict(n_users=d.n_users, n_items=d.n_items, mode_cardinalities=[2], train_users=d.train_users,
                train_items=d.train_items, features=d.features)
    # VBPR's content block would overwrite a branch; GRCN reads the ego rows' first columns only;
    # MMGCN's ID rows are frozen by default (MMRec), so a fusion would not train
    if encoder in ("vbpr", "grcn") and fusion == "late" or encoder == "mmgcn" and fusion != "none":
        with pytest.raises(MrsError, match="model.fusion"):
            build_model(cfg, **data)
        return
    m = build_model(cfg, **data)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fit(m, d, epochs=1, modes_card=[2])
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
    scores = m.full_sort_predict(torch.arange(5), torch.zeros(5, 1, dtype=torch.long))
    assert scores.shape == (5, d.n_items) and torch.isfinite(scores).all()
    if fusion in ("early", "late"):  # α over branches (gated reports mean gates instead)
        assert abs(sum(m.fusion_weights().values()) - 1) < 1e-6


def test_fusion_without_features_is_an_error():
    d = planted(n_users=10, n_items=9, per_user=3, held_out=1)
    with pytest.raises(MrsError, match="model.fusion='early' needs item features"):
        build_model(ModelConfig(fusion="early"), n_users=10, n_items=9, mode_cardinalities=[],
                    train_users=d.train_users, train_items=d.train_items)
    bad = {"text": torch.randn(8, 3)}
    with pytest.raises(MrsError, match=r"features\['text'\].*n_items=9"):
        build_model(ModelConfig(fusion="early"), n_users=10, n_items=9, mode_cardinalities=[],
                    train_users=d.train_users, train_items=d.train_items, features=bad)


@pytest.mark.parametrize("encoder", [n for n in ENCODERS.names() if ENCODERS.get(n).needs_features])
def test_content_encoder_refuses_a_handed_context_without_features(encoder):
    """The same one-line refusal whether build_model builds the context or is handed one."""
    from mrs.models.config import build_context

    d = planted(n_users=10, n_items=9, per_user=3, held_out=1)
    ctx = build_context(ModelConfig(), n_users=10, n_items=9, mode_cardinalities=[],
                        train_users=d.train_users, train_items=d.train_items)
    with pytest.raises(MrsError, match=rf"model.encoder='{encoder}' needs item features.*data.features"):
        build_model(ModelConfig(encoder=encoder), ctx)


@pytest.mark.parametrize("encoder,fusion", [("mf", "early"), ("lightgcn", "late"), ("freedom", "none")])
def test_content_scores_cold_items_by_their_content(encoder, fusion):
    """Cold items (no interactions) of a user's own cluster outrank other cold items when the
    model reads content: through fused item inputs, or (FREEDOM with IDs only) through the
    content kNN graph that links cold items to warm ones. With IDs only, LightGCN cannot: a
    cold item's score is its random initial embedding."""
    d = planted(n_users=90, n_items=99, per_user=8, held_out=1, cold_items=9, seed=1)
    cold = torch.arange(90, 99)
    own = torch.as_tensor(d.item_cluster)[cold][None, :] == torch.as_tensor(d.user_cluster)[:, None]  # (U, 9)

    def own_cluster_wins(encoder, fusion):
        torch.manual_seed(0)
        m = build_model(ModelConfig(encoder=encoder, fusion=fusion, dim=8), n_users=d.n_users, n_items=d.n_items,
                        mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items,
                        features=d.features)
        fit(m, d, epochs=15)
        with torch.no_grad():
            s = m.full_sort_predict(torch.arange(d.n_users), torch.zeros(d.n_users, 0, dtype=torch.long))[:, cold]
        mine = (s * own).sum(1) / own.sum(1)
        other = (s * ~own).sum(1) / (~own).sum(1)
        return float((mine > other).float().mean())

    assert own_cluster_wins(encoder, fusion) > 0.9


def test_late_fusion_score_is_the_weighted_sum_of_branch_scores():
    d = planted(n_users=20, n_items=15, per_user=4, held_out=1)
    m = build_model(ModelConfig(encoder="mf", fusion="late", dim=4, modes=False), n_users=20, n_items=15,
                    mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items, features=d.features)
    with torch.no_grad():
        m.fusion.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    alpha = torch.softmax(m.fusion.logits, 0)
    f = m.features()
    u = m.user_encoder.emb.weight.view(20, 3, 4)  # (U, blocks, r)
    branches = [m.item_emb.weight, m.fusion.proj["text"](f["text"]), m.fusion.proj["image"](f["image"])]
    want = sum(3 * alpha[b] * u[:, b] @ branches[b].T for b in range(3))
    got = m.full_sort_predict(torch.arange(20), torch.zeros(20, 0, dtype=torch.long))
    assert torch.allclose(got, want, atol=1e-5)
    assert m.fusion_weights() == pytest.approx(dict(zip(["id", "text", "image"], alpha.tolist())))


def test_semantic_coupling_term_in_the_loss():
    from mrs.models import Batch

    d = planted(n_users=20, n_items=15, per_user=4, held_out=1)
    m = build_model(ModelConfig(encoder="mf", dim=4, modes=False, reg=0.0, coupling_mu0=2.0), n_users=20,
                    n_items=15, mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items,
                    features=d.features)
    batch = Batch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 3]), torch.zeros(2, 0, dtype=torch.long))
    loss, parts = m.calculate_loss(batch)
    counts = torch.bincount(torch.as_tensor(d.train_items), minlength=15).float()
    items = torch.tensor([2, 3, 4, 3])
    e = torch.cat([m.features()["text"], m.features()["image"]], 1)[items]
    mu = 2.0 / torch.log(2 + counts[items])
    want = (mu * (m.item_emb.weight[items] - m.coupling(e)).pow(2).sum(1)).sum() / 2
    assert parts["coupling"] == pytest.approx(want.item(), rel=1e-5)
    assert loss.item() == pytest.approx(parts["bpr"] + parts["coupling"], rel=1e-5)
    loss.backward()
    assert m.coupling.weight.grad.abs().sum() > 0


def test_modality_names_with_dots():
    d = planted(n_users=20, n_items=15, per_user=4, held_out=1)
    feats = {"text-bert.v2": d.features["text"], "image.clip": d.features["image"]}
    for fusion in ["early", "late"]:
        m = build_model(ModelConfig(encoder="mf", fusion=fusion, dim=4), n_users=20, n_items=15,
                        mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items, features=feats)
        assert set(m.fusion_weights()) >= {"text-bert.v2", "image.clip"}
        assert m.full_sort_predict(torch.arange(3), torch.zeros(3, 0, dtype=torch.long)).shape == (3, 15)


@pytest.mark.parametrize("encoder", ["mf", "lightgcn"])
@pytest.mark.parametrize("fusion", ["early", "late"])
@pytest.mark.parametrize("signal_first", [True, False])
def test_fusion_weights_move_to_the_informative_modality(encoder, fusion, signal_first):
    """One modality carries the planted item clusters, the other is pure noise: training moves
    early fusion's α (from 1/2 each) and late fusion's branch weights (from 1/3 each) towards the
    informative one, whichever position it has. Seen: early 0.85-0.93 vs 0.07-0.15; late
    0.40-0.53 vs 0.16-0.28."""
    d = planted(n_users=120, n_items=90, per_user=10, held_out=2, seed=0)
    rng = np.random.default_rng(0)
    signal = np.concatenate([np.eye(3)[d.item_cluster], 0.1 * rng.normal(size=(d.n_items, 5))], 1)
    noise = rng.normal(size=(d.n_items, 8))
    feats = {"signal": torch.tensor(signal, dtype=torch.float32), "noise": torch.tensor(noise, dtype=torch.float32)}
    if not signal_first:
        feats = {"noise": feats["noise"], "signal": feats["signal"]}
    torch.manual_seed(0)
    m = build_model(ModelConfig(encoder=encoder, fusion=fusion, dim=8, joint_dim=8, modes=False), n_users=d.n_users,
                    n_items=d.n_items, mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items,
                    features=feats)
    w = m.fusion_weights()
    assert w["signal"] == pytest.approx(w["noise"])  # uniform at initialisation
    fit(m, d, epochs=10, lr=0.05)
    w = m.fusion_weights()
    if fusion == "early":
        assert w["signal"] > 0.75 > 0.25 > w["noise"], w
    else:
        assert w["signal"] > 1 / 3 + 0.05 and w["noise"] < 1 / 3 - 0.03 and w["signal"] > w["noise"] + 0.1, w

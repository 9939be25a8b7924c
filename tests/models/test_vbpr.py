"""VBPR against a direct transcription of MMRec's formulas (enoche/MMRec@e775373
``src/models/vbpr.py``: ``forward`` and ``calculate_loss`` with ``BPRLoss`` and ``EmbLoss``),
its option errors, and one epoch of ``mrs train`` with CP modes."""
from __future__ import annotations

import math

import pytest
import torch

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_model
from tests.train.conftest import cli_train, tiny_data  # noqa: F401 (fixture)

N_USERS, N_ITEMS = 5, 7
USERS, ITEMS = [0, 0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 5, 6]


def _feats(names=("text", "image")) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 5, "image": 3}
    return {m: torch.nn.functional.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, dim=6, **opts):
    cfg = ModelConfig(encoder="vbpr", dim=dim, modes=False, reg=0.0, options={"vbpr": opts} if opts else {})
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                       train_items=ITEMS, features=feats)


def mmrec_vbpr_loss(u_embedding, i_embedding, item_linear, t_feat, v_feat, reg_weight, user, pos, neg):
    """Transcribed from VBPR.forward + calculate_loss (BPRLoss gamma=1e-10, EmbLoss norm=2)."""
    if v_feat is not None and t_feat is not None:
        raw = torch.cat((t_feat, v_feat), -1)
    elif v_feat is not None:
        raw = v_feat
    else:
        raw = t_feat
    item_embeddings = torch.cat((i_embedding, item_linear(raw)), -1)
    user_e, pos_e, neg_e = u_embedding[user, :], item_embeddings[pos, :], item_embeddings[neg, :]
    pos_s, neg_s = torch.mul(user_e, pos_e).sum(dim=1), torch.mul(user_e, neg_e).sum(dim=1)
    mf_loss = -torch.log(1e-10 + torch.sigmoid(pos_s - neg_s)).mean()
    reg_loss = (torch.norm(user_e, p=2) + torch.norm(pos_e, p=2) + torch.norm(neg_e, p=2)) / neg_e.shape[0]
    return mf_loss + reg_weight * reg_loss, u_embedding @ item_embeddings.T


@pytest.mark.parametrize("names", [("text", "image"), ("image",), ("text",)])
def test_loss_and_scores_equal_mmrec_transcription(names):
    feats = _feats(names)
    m = _model(feats, dim=6, reg_weight=0.3)
    c = m.encoder.proj.out_features
    assert c == 3  # half of model.dim: MMRec's embedding_size for each block
    batch = Batch(torch.tensor([0, 2, 4]), torch.tensor([1, 3, 6]), torch.tensor([5, 0, 2]), torch.zeros(3, 0, dtype=torch.long))
    loss, parts = m.calculate_loss(batch)
    u, gamma = m.user_encoder.emb.weight, m.item_emb.weight[:, :6 - c]
    want, scores = mmrec_vbpr_loss(u, gamma, m.encoder.proj, feats.get("text"), feats.get("image"), 0.3,
                                   batch.users, batch.pos, batch.neg)
    assert torch.allclose(loss, want, atol=1e-6) and set(parts) == {"bpr", "l2", "emb_reg"}
    m.eval()
    assert torch.allclose(m.full_sort_predict(torch.arange(N_USERS), torch.zeros(N_USERS, 0, dtype=torch.long)),
                          scores, atol=1e-6)
    loss.backward()  # E learns through the scores and the regulariser; the raw features stay frozen
    assert m.encoder.proj.weight.grad.abs().sum() > 0 and not any(b.requires_grad for b in m.encoder.buffers())


def test_initialisation_is_mmrecs():
    m = _model(_feats(), dim=8)
    assert torch.equal(m.encoder.proj.bias, torch.zeros(4))  # xavier_normal_initialization: bias 0


def test_options_and_missing_content_are_one_line_errors():
    feats = _feats()
    for opts, key in (({"content_dim": -1}, "content_dim"), ({"reg_weight": -0.1}, "reg_weight"),
                      ({"content_dim": 6}, "content_dim")):
        with pytest.raises(MrsError, match=rf"model\.options\.vbpr\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    with pytest.raises(MrsError, match=r"model.encoder='vbpr' needs item features.*data.features"):
        _model({})
    with pytest.raises(MrsError, match="model.fusion"):
        build_model(ModelConfig(encoder="vbpr", dim=4, fusion="late"), n_users=N_USERS, n_items=N_ITEMS,
                    mode_cardinalities=[], train_users=USERS, train_items=ITEMS, features=feats)


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[image-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="vbpr", model__modes=True, data__features=features)
    assert m["best_epoch"] == 1 and math.isfinite(m["history"][0]["loss"]) and "emb_reg" in m["history"][0]

"""BM3 against a direct transcription of MMRec's formulas (enoche/MMRec@e775373
``src/models/bm3.py``: ``forward``, ``calculate_loss``, ``full_sort_predict``), its loss through
the objective (``model.loss=auto`` -> ``none``), the dropout's generator, option errors, and one
epoch of ``mrs train`` with CP modes."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn.functional import cosine_similarity

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_model
from tests.models.reference import mmrec_layer_mean
from tests.train.conftest import cli_train, tiny_data  # noqa: F401 (fixture)

N_USERS, N_ITEMS = 5, 8
USERS, ITEMS = [0, 0, 1, 2, 2, 3, 4, 4], [0, 1, 2, 3, 4, 5, 6, 1]


def mmrec_norm_adj():
    """BM3.get_norm_adj_mat, dense: D^-1/2 A D^-1/2 (1e-7 added to the degrees)."""
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in zip(USERS, ITEMS):
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    d = ((a > 0).sum(1).float() + 1e-7).pow(-0.5)
    return d[:, None] * a * d[None, :]


def mmrec_forward(user_w, item_w, n_layers):
    u_g, i_g = mmrec_layer_mean(mmrec_norm_adj(), user_w, item_w, n_layers)
    return u_g, i_g + item_w


def mmrec_loss(user_w, item_w, predictor, t_feat, v_feat, text_trs, image_trs, users, items,
               n_layers, reg_weight, cl_weight):
    """BM3.calculate_loss with dropout = 0 (the targets are the detached online rows)."""
    u_online_ori, i_online_ori = mmrec_forward(user_w, item_w, n_layers)
    t_feat_online = text_trs(t_feat) if t_feat is not None else None
    v_feat_online = image_trs(v_feat) if v_feat is not None else None
    u_target, i_target = u_online_ori.clone().detach(), i_online_ori.clone().detach()
    u_online, i_online = predictor(u_online_ori), predictor(i_online_ori)
    u_online, i_online = u_online[users, :], i_online[items, :]
    u_target, i_target = u_target[users, :], i_target[items, :]
    loss_t = loss_v = loss_tv = loss_vt = 0.0
    if t_feat is not None:
        t_target = t_feat_online.clone().detach()[items, :]
        t_feat_online = predictor(t_feat_online)[items, :]
        loss_t = 1 - cosine_similarity(t_feat_online, i_target, dim=-1).mean()
        loss_tv = 1 - cosine_similarity(t_feat_online, t_target, dim=-1).mean()
    if v_feat is not None:
        v_target = v_feat_online.clone().detach()[items, :]
        v_feat_online = predictor(v_feat_online)[items, :]
        loss_v = 1 - cosine_similarity(v_feat_online, i_target, dim=-1).mean()
        loss_vt = 1 - cosine_similarity(v_feat_online, v_target, dim=-1).mean()
    loss_ui = 1 - cosine_similarity(u_online, i_target, dim=-1).mean()
    loss_iu = 1 - cosine_similarity(i_online, u_target, dim=-1).mean()
    emb = (torch.norm(u_online_ori, p=2) + torch.norm(i_online_ori, p=2)) / i_online_ori.shape[0]
    return (loss_ui + loss_iu) + reg_weight * emb + cl_weight * (loss_t + loss_v + loss_tv + loss_vt)


def _feats(names=("text", "image")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 4}
    return {m: torch.nn.functional.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, modes=False, **opts):
    cfg = ModelConfig(encoder="bm3", dim=4, layers=2, modes=modes, reg=0.0, options={"bm3": opts} if opts else {})
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[3] if modes else [],
                       train_users=USERS, train_items=ITEMS, features=feats)


def _batch(modes=False):
    m = torch.tensor([[0], [2], [1]]) if modes else torch.zeros(3, 0, dtype=torch.long)
    return Batch(torch.tensor([0, 2, 4]), torch.tensor([1, 3, 6]), None, m)


@pytest.mark.parametrize("names", [("text", "image"), ("image",), ()])
def test_loss_and_scores_equal_mmrec_transcription(names):
    feats = _feats(names)
    m = _model(feats, dropout=0.0, reg_weight=0.1, cl_weight=2.0)
    assert m.loss == "none" and m.n_negatives() == 0  # auto: BM3 replaces the ranking loss, no negatives
    enc = m.encoder
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    batch = _batch()
    loss, parts = m.calculate_loss(batch)
    idx = {n: j for j, n in enumerate(feats)}
    pick = {n: (feats[n], enc.trs[idx[n]]) if n in idx else (None, None) for n in ("text", "image")}
    want = mmrec_loss(m.user_encoder.emb.weight, m.item_emb.weight, enc.predictor, pick["text"][0], pick["image"][0],
                      pick["text"][1], pick["image"][1], batch.users, batch.pos, 2, 0.1, 2.0)
    assert torch.allclose(loss, want, atol=1e-5)
    assert {"none", "bm3_cf", "emb_reg"} <= set(parts) and (("bm3_mm" in parts) == bool(names))
    m.eval()  # full_sort_predict: predictor(u) · predictor(i)
    u_g, i_g = mmrec_forward(m.user_encoder.emb.weight, m.item_emb.weight, 2)
    scores = enc.predictor(u_g) @ enc.predictor(i_g).T
    got = m.full_sort_predict(torch.arange(N_USERS), torch.zeros(N_USERS, 0, dtype=torch.long))
    assert torch.allclose(got, scores, atol=1e-5)


def test_modes_enter_the_user_term_and_learn():
    """With CP modes the first term's online user row is the query p(u^o) ⊙ M[m]."""
    m = _model(_feats(), modes=True, dropout=0.0)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.scorer.factors[0].copy_(torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) + 0.5)
    batch = _batch(modes=True)
    ue, ie = m.encode()
    u_o, i_o, _ = m.encoder._online  # the rows before the predictor (dropout 0: the targets)
    q = ue[batch.users] * m.scorer.factors[0][batch.modes[:, 0]]
    want = (1 - cosine_similarity(q, i_o[batch.pos]).mean()) + (1 - cosine_similarity(ie[batch.pos], u_o[batch.users]).mean())
    loss, parts = m.calculate_loss(batch, (ue, ie))
    assert math.isclose(parts["bm3_cf"], float(want.detach()), rel_tol=1e-5)
    loss.backward()
    assert m.scorer.factors[0].grad.abs().sum() > 0  # the CP mode rows learn through the first term


def test_dropout_draws_from_the_epoch_generator_not_the_global_rng():
    def one_loss(seed):
        torch.manual_seed(0)  # the same initial weights
        m = _model(_feats(), dropout=0.5)
        m.train()
        m.on_epoch_start(0, torch.Generator().manual_seed(seed))
        state = torch.get_rng_state()
        loss, _ = m.calculate_loss(_batch())
        assert torch.equal(state, torch.get_rng_state())  # the global RNG is not drawn from
        return float(loss.detach())

    a, b, c = one_loss(1), one_loss(1), one_loss(2)
    assert a == b and a != c


def test_options_and_loss_none_are_one_line_errors():
    for opts, key in (({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"),
                      ({"reg_weight": -1.0}, "reg_weight"), ({"cl_weight": -1.0}, "cl_weight")):
        with pytest.raises(MrsError, match=rf"model\.options\.bm3\.{key}") as e:
            _model(_feats(), **opts)
        assert "\n" not in str(e.value)
    with pytest.raises(MrsError, match=r"model\.loss.*'none' trains nothing with model.encoder='lightgcn'"):
        ModelConfig(encoder="lightgcn", loss="none")
    m = build_model(ModelConfig(encoder="bm3", dim=4, loss="bpr"), n_users=N_USERS, n_items=N_ITEMS,
                    mode_cardinalities=[], train_users=USERS, train_items=ITEMS)
    assert m.loss == "bpr" and m.n_negatives() == 1  # a ranking loss on top, when asked for


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[text-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="bm3", model__modes=True, data__features=features)
    h = m["history"][0]
    assert m["best_epoch"] == 1 and math.isfinite(h["loss"]) and {"bm3_cf", "bm3_mm", "emb_reg"} <= set(h)

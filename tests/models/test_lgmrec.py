"""LGMRec against a direct, dense transcription of MMRec's formulas (enoche/MMRec@e775373
``src/models/lgmrec.py``: ``get_norm_adj_mat``, ``cge``, ``mge``, ``forward``, ``HGNNLayer``,
``ssl_triple_loss``, ``reg_loss``, ``calculate_loss``), its Gumbel noise and dropout from the
epoch's generator (the global RNG untouched), evaluation noise, one modality, bad input, and one
epoch of ``mrs train`` with CP modes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_model
from mrs.models.encoders.lgmrec import EVAL_SEED
from tests.models.reference import mmrec_layer_mean
from tests.train.conftest import cli_train, fake_torchrun, tiny_data, train_refused  # noqa: F401 (fixture)

N_USERS, N_ITEMS = 6, 12
USERS = [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 5]
ITEMS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1]
TAU, KEEP, ALPHA, N_UI, N_MM, N_HYPER = 0.2, 0.5, 0.3, 2, 2, 2


def mmrec_graphs():
    """LGMRec's ``adj`` (R), ``num_inters`` and ``norm_adj`` (D^-1/2 A D^-1/2, 1e-7 in the degrees), dense."""
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n)
    for u, i in zip(USERS, ITEMS):
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    deg = (a > 0).sum(1).float()
    d = (deg + 1e-7).pow(-0.5)
    return a[:N_USERS, N_USERS:], (1.0 / (deg + 1e-7))[:, None], d[:, None] * a * d[None, :]


def hgnn(i_hyper, u_hyper, embeds, h_layer):
    """HGNNLayer.forward."""
    i_ret = embeds
    for _ in range(h_layer):
        lat = torch.mm(i_hyper.T, i_ret)
        i_ret = torch.mm(i_hyper, lat)
        u_ret = torch.mm(u_hyper, lat)
    return u_ret, i_ret


def mge(feat, trs, adj, num_inters, norm_adj):
    item_feats = torch.mm(feat, trs)
    user_feats = torch.mm(adj, item_feats) * num_inters[:N_USERS]
    mge_feats = torch.concat([user_feats, item_feats], dim=0)
    for _ in range(N_MM):
        mge_feats = torch.mm(norm_adj, mge_feats)
    return mge_feats


def mmrec_forward(user_w, item_w, v_feat, t_feat, item_image_trs, item_text_trs, v_hyper, t_hyper, training,
                  noise=True):
    """LGMRec.forward on the global RNG (``drop``: nn.Dropout(1 - keep_rate) in training mode);
    ``noise=False``: softmax(logits / tau) in place of the Gumbel-softmax (the eval_noise=false fix)."""
    adj, num_inters, norm_adj = mmrec_graphs()

    def drop(x):
        return F.dropout(x, 1 - KEEP, training)

    def gumbel_softmax(x, tau, dim, hard):
        return F.gumbel_softmax(x, tau, dim=dim, hard=hard) if noise else torch.softmax(x / tau, dim=dim)

    iv_hyper = torch.mm(v_feat, v_hyper)
    uv_hyper = torch.mm(adj, iv_hyper)
    iv_hyper = gumbel_softmax(iv_hyper, TAU, dim=1, hard=False)
    uv_hyper = gumbel_softmax(uv_hyper, TAU, dim=1, hard=False)
    it_hyper = torch.mm(t_feat, t_hyper)
    ut_hyper = torch.mm(adj, it_hyper)
    it_hyper = gumbel_softmax(it_hyper, TAU, dim=1, hard=False)
    ut_hyper = gumbel_softmax(ut_hyper, TAU, dim=1, hard=False)
    cge_embs = torch.cat(mmrec_layer_mean(norm_adj, user_w, item_w, N_UI))
    v_feats = mge(v_feat, item_image_trs, adj, num_inters, norm_adj)
    t_feats = mge(t_feat, item_text_trs, adj, num_inters, norm_adj)
    lge_embs = cge_embs + F.normalize(v_feats) + F.normalize(t_feats)
    uv_hyper_embs, iv_hyper_embs = hgnn(drop(iv_hyper), drop(uv_hyper), cge_embs[N_USERS:], N_HYPER)
    ut_hyper_embs, it_hyper_embs = hgnn(drop(it_hyper), drop(ut_hyper), cge_embs[N_USERS:], N_HYPER)
    ghe_embs = torch.concat([uv_hyper_embs, iv_hyper_embs], dim=0) + torch.concat([ut_hyper_embs, it_hyper_embs], dim=0)
    all_embs = lge_embs + ALPHA * F.normalize(ghe_embs)
    return all_embs[:N_USERS], all_embs[N_USERS:], [uv_hyper_embs, iv_hyper_embs, ut_hyper_embs, it_hyper_embs]


def ssl_triple_loss(emb1, emb2, all_emb):
    norm_emb1, norm_emb2, norm_all_emb = F.normalize(emb1), F.normalize(emb2), F.normalize(all_emb)
    pos_score = torch.exp(torch.mul(norm_emb1, norm_emb2).sum(dim=1) / TAU)
    ttl_score = torch.exp(torch.matmul(norm_emb1, norm_all_emb.T) / TAU).sum(dim=1)
    return -torch.log(pos_score / ttl_score).sum()


def mmrec_loss(ua, ia, hyper, users, pos, neg, cl_weight, reg_weight):
    """LGMRec.calculate_loss: (bpr, cl_weight · hcl, reg_weight · reg)."""
    u, p, n = ua[users], ia[pos], ia[neg]
    bpr = -torch.mean(F.logsigmoid((u * p).sum(1) - (u * n).sum(1)))
    uv_embs, iv_embs, ut_embs, it_embs = hyper
    hcl = ssl_triple_loss(uv_embs[users], ut_embs[users], ut_embs) + ssl_triple_loss(iv_embs[pos], it_embs[pos], it_embs)
    reg = (torch.norm(u, p=2) + torch.norm(p, p=2) + torch.norm(n, p=2)) / n.shape[0]
    return bpr, cl_weight * hcl, reg_weight * reg


def _feats(names=("text", "image")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 4}
    return {m: F.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, modes=False, **opts):
    opts = {"n_mm_layers": N_MM, "n_hyper_layer": N_HYPER, "hyper_num": 3, **opts}
    cfg = ModelConfig(encoder="lgmrec", dim=5, layers=N_UI, modes=modes, reg=0.0, loss="bpr",
                      options={"lgmrec": opts})
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[3] if modes else [],
                       train_users=USERS, train_items=ITEMS, features=feats)


BATCH = Batch(torch.tensor([0, 1, 3, 5]), torch.tensor([0, 2, 5, 1]), torch.tensor([5, 7, 1, 4]),
              torch.zeros(4, 0, dtype=torch.long))


def _reference(m, feats, seed, training, noise=True):
    enc = m.encoder  # modalities image (v) first, whatever the stores' order
    torch.manual_seed(seed)
    return mmrec_forward(m.user_encoder.emb.weight, m.item_emb.weight, feats["image"], feats["text"],
                         enc.trs[0], enc.trs[1], enc.hyper[0], enc.hyper[1], training, noise)


def test_outputs_and_loss_equal_mmrec_transcription_with_the_same_draws():
    feats = _feats()
    m = _model(feats, cl_weight=0.1, reg_weight=0.01)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(3))
    ua, ia, hyper = _reference(m, feats, m.encoder._seed, True)  # the global RNG seeded as the epoch's generator
    state = torch.get_rng_state()
    ue, ie = m.encode()
    assert torch.equal(state, torch.get_rng_state())  # the forward draws nothing from the global RNG
    assert torch.allclose(ue, ua, atol=1e-5) and torch.allclose(ie, ia, atol=1e-5)
    loss, parts = m.calculate_loss(BATCH, (ue, ie))
    bpr, hcl, reg = mmrec_loss(ua, ia, hyper, BATCH.users, BATCH.pos, BATCH.neg, 0.1, 0.01)
    for name, want in (("bpr", bpr), ("lgmrec_hcl", hcl), ("emb_reg", reg)):
        assert math.isclose(parts[name], float(want.detach()), rel_tol=1e-4), name
    assert torch.allclose(loss, bpr + hcl + reg, atol=1e-5)  # model.reg=0: MMRec's loss exactly
    ue2, _ = m.encode()  # the next batch: a new draw from the same stream
    assert not torch.allclose(ue2, ue)


def test_evaluation_noise_is_a_fixed_draw_or_off():
    feats = _feats()
    m = _model(feats)
    m.eval()
    ua, ia, _ = _reference(m, feats, EVAL_SEED, False)  # MMRec: Gumbel noise at evaluation, no dropout
    state = torch.get_rng_state()
    with torch.no_grad():
        a, b = m.encode(), m.encode()
    assert torch.equal(state, torch.get_rng_state())
    assert torch.allclose(a[1], ia, atol=1e-5) and torch.allclose(a[0], ua, atol=1e-5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # reproducible scores
    quiet = _model(feats, eval_noise=False)
    quiet.load_state_dict(m.state_dict())
    quiet.eval()
    with torch.no_grad():
        q = quiet.encode()
        want = _reference(quiet, feats, EVAL_SEED, False, noise=False)
    assert torch.allclose(q[0], want[0], atol=1e-5) and torch.allclose(q[1], want[1], atol=1e-5)
    assert not torch.allclose(q[1], a[1])


def test_training_draws_come_from_the_epoch_generator():
    feats = _feats()

    def item_rows(seed):
        torch.manual_seed(0)  # the same initial weights
        m = _model(feats)
        m.train()
        m.on_epoch_start(0, torch.Generator().manual_seed(seed))
        return m.encode()[1].detach()

    assert torch.equal(item_rows(1), item_rows(1)) and not torch.allclose(item_rows(1), item_rows(2))
    m = _model(feats)
    m.train()
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        m.encode()


def test_one_modality_has_no_contrastive_term_and_every_parameter_learns():
    """MMRec fails with one modality; here the sums run over it and there is no second view."""
    feats = _feats(("image",))
    m = _model(feats, cl_weight=0.1)
    enc = m.encoder
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    torch.manual_seed(enc._seed)  # the same draws on the global RNG: gumbel H^i, H^u, then dropout
    adj, num_inters, norm_adj = mmrec_graphs()
    logits = feats["image"] @ enc.hyper[0]
    h_i = F.gumbel_softmax(logits, TAU, dim=1)
    h_u = F.gumbel_softmax(adj @ logits, TAU, dim=1)
    u, i = mmrec_layer_mean(norm_adj, m.user_encoder.emb.weight, m.item_emb.weight, N_UI)
    g = mge(feats["image"], enc.trs[0], adj, num_inters, norm_adj)
    eta_u, eta_i = hgnn(F.dropout(h_i, 1 - KEEP), F.dropout(h_u, 1 - KEEP), i, N_HYPER)
    ue, ie = m.encode()
    assert torch.allclose(ie, i + F.normalize(g[N_USERS:]) + ALPHA * F.normalize(eta_i), atol=1e-5)
    assert torch.allclose(ue, u + F.normalize(g[:N_USERS]) + ALPHA * F.normalize(eta_u), atol=1e-5)
    loss, parts = m.calculate_loss(BATCH, (ue, ie))
    assert "lgmrec_hcl" not in parts and "emb_reg" in parts
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters() if p.requires_grad)


def test_bad_input_is_a_one_line_error(tiny_data, tmp_path):  # noqa: F811
    feats = _feats()
    for opts, key in (({"n_mm_layers": -1}, "n_mm_layers"), ({"n_hyper_layer": 0}, "n_hyper_layer"),
                      ({"hyper_num": 0}, "hyper_num"), ({"keep_rate": 0.0}, "keep_rate"),
                      ({"keep_rate": 1.5}, "keep_rate"), ({"alpha": -1.0}, "alpha"),
                      ({"cl_weight": -1.0}, "cl_weight"), ({"reg_weight": -1.0}, "reg_weight"),
                      ({"tau": 0.0}, "tau"), ({"eval_noise": "maybe"}, "eval_noise"), ({"nope": 1}, "nope")):
        with pytest.raises(MrsError, match=rf"model\.options\.lgmrec\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    with pytest.raises(MrsError, match=r"model.encoder='lgmrec' needs item features.*data.features"):
        _model({})
    train_refused(tiny_data, tmp_path / "run", "model.encoder='lgmrec' needs item features", model__encoder="lgmrec",
                  data__features="[]")
    train_refused(tiny_data, tmp_path / "run", "no feature store named 'audio'", model__encoder="lgmrec",
                  data__features="[audio]")


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[text-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="lgmrec", model__modes=True, data__features=features)
    h = m["history"][0]
    assert m["best_epoch"] == 1 and math.isfinite(h["loss"]) and "emb_reg" in h
    assert ("lgmrec_hcl" in h) == ("image" in features)


def test_torchrun_refuses_the_contrastive_term(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    """Its contrastive term is not a mean of per-row terms: a rank's shard would change it."""
    fake_torchrun(monkeypatch)
    train_refused(tiny_data, tmp_path / "run", "model.encoder='lgmrec'", model__encoder="lgmrec",
                  data__features="[text-synth, image-synth]")

"""MGCN against a direct, dense transcription of MMRec's formulas (enoche/MMRec@e775373
``src/models/mgcn.py``: ``get_adj_mat``, ``forward``, ``bpr_loss``, ``InfoNCE``,
``calculate_loss``; ``build_sim``, ``build_knn_normalized_graph`` from ``src/utils/utils.py``),
one modality, the cached graphs, bad input, and one epoch of ``mrs train`` with CP modes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_artifacts, build_context, build_model
from tests.models.reference import build_sim, mmrec_layer_mean
from tests.train.conftest import cli_train, fake_torchrun, tiny_data, train_refused  # noqa: F401 (fixture)

N_USERS, N_ITEMS, K = 6, 12, 3
USERS = [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 5]
ITEMS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1]


def build_knn_normalized_graph(adj, topk):
    """The dense branch (is_sparse=False, norm_type='sym'); the sparse one MMRec runs is the same matrix."""
    knn_val, knn_ind = torch.topk(adj, topk, dim=-1)
    weighted = torch.zeros_like(adj).scatter_(-1, knn_ind, knn_val)
    d_inv_sqrt = torch.pow(torch.sum(weighted, -1), -0.5)
    d_inv_sqrt[torch.isinf(d_inv_sqrt)] = 0.
    return torch.diagflat(d_inv_sqrt) @ weighted @ torch.diagflat(d_inv_sqrt)


def mmrec_norm_adj():
    """MGCN.get_adj_mat, dense: D^-1/2 A D^-1/2 (no self-loops, isinf -> 0)."""
    n = N_USERS + N_ITEMS
    adj = torch.zeros(n, n)
    for u, i in zip(USERS, ITEMS):
        adj[u, N_USERS + i] = adj[N_USERS + i, u] = 1.0
    d = adj.sum(1).pow(-0.5)
    d[torch.isinf(d)] = 0.
    return d[:, None] * adj * d[None, :]


def mmrec_forward(user_w, item_w, v_raw, t_raw, v_feat, t_feat, image_trs, text_trs, gate_v, gate_t,
                  query_common, gate_image_prefer, gate_text_prefer, n_ui_layers, n_layers):
    """MGCN.forward(norm_adj, train=True) for two modalities."""
    norm_adj = mmrec_norm_adj()
    R = norm_adj[:N_USERS, N_USERS:]
    image_original_adj = build_knn_normalized_graph(build_sim(v_raw), K)
    text_original_adj = build_knn_normalized_graph(build_sim(t_raw), K)
    image_feats, text_feats = image_trs(v_feat), text_trs(t_feat)
    image_item_embeds = torch.multiply(item_w, gate_v(image_feats))
    text_item_embeds = torch.multiply(item_w, gate_t(text_feats))
    u, i = mmrec_layer_mean(norm_adj, user_w, item_w, n_ui_layers)
    content_embeds = torch.cat([u, i])
    for _ in range(n_layers):
        image_item_embeds = torch.mm(image_original_adj, image_item_embeds)
    image_embeds = torch.cat([torch.mm(R, image_item_embeds), image_item_embeds], dim=0)
    for _ in range(n_layers):
        text_item_embeds = torch.mm(text_original_adj, text_item_embeds)
    text_embeds = torch.cat([torch.mm(R, text_item_embeds), text_item_embeds], dim=0)
    att_common = torch.cat([query_common(image_embeds), query_common(text_embeds)], dim=-1)
    weight_common = torch.softmax(att_common, dim=-1)
    common_embeds = weight_common[:, 0].unsqueeze(dim=1) * image_embeds + weight_common[:, 1].unsqueeze(
        dim=1) * text_embeds
    sep_image_embeds = torch.multiply(gate_image_prefer(content_embeds), image_embeds - common_embeds)
    sep_text_embeds = torch.multiply(gate_text_prefer(content_embeds), text_embeds - common_embeds)
    side_embeds = (sep_image_embeds + sep_text_embeds + common_embeds) / 3
    all_embeds = content_embeds + side_embeds
    return all_embeds[:N_USERS], all_embeds[N_USERS:], side_embeds, content_embeds


def InfoNCE(view1, view2, temperature):  # noqa: N802 (MMRec's name)
    view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    pos_score = torch.exp((view1 * view2).sum(dim=-1) / temperature)
    ttl_score = torch.exp(torch.matmul(view1, view2.transpose(0, 1)) / temperature).sum(dim=1)
    return torch.mean(-torch.log(pos_score / ttl_score))


def mmrec_loss(ua, ia, side, content, users, pos, neg, reg_weight, cl_loss):
    """MGCN.calculate_loss: (mf_loss, emb_loss, cl term)."""
    u, p, n = ua[users], ia[pos], ia[neg]
    regularizer = (1. / 2 * (u ** 2).sum() + 1. / 2 * (p ** 2).sum() + 1. / 2 * (n ** 2).sum()) / len(users)
    mf_loss = -torch.mean(F.logsigmoid((u * p).sum(1) - (u * n).sum(1)))
    side_u, side_i = side[:N_USERS], side[N_USERS:]
    content_u, content_i = content[:N_USERS], content[N_USERS:]
    cl = InfoNCE(side_i[pos], content_i[pos], 0.2) + InfoNCE(side_u[users], content_u[users], 0.2)
    return mf_loss, reg_weight * regularizer, cl_loss * cl


def _feats(names=("image", "text")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 4}
    return {m: F.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _cfg(**opts):
    return ModelConfig(encoder="mgcn", dim=5, layers=2, item_layers=1, knn_k=K, modes=False, reg=0.0,
                       loss="bpr", options={"mgcn": opts} if opts else {})


def _model(feats, **opts):
    return build_model(_cfg(**opts), n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                       train_items=ITEMS, features=feats)


BATCH = Batch(torch.tensor([0, 1, 3, 5]), torch.tensor([0, 2, 5, 1]), torch.tensor([5, 7, 1, 4]),
              torch.zeros(4, 0, dtype=torch.long))


def test_outputs_and_loss_equal_mmrec_transcription():
    feats = _feats()
    m = _model(feats, cl_loss=0.1, reg_weight=0.01)
    enc = m.encoder
    user_w, item_w = m.user_encoder.emb.weight, m.item_emb.weight
    ua, ia, side, content = mmrec_forward(user_w, item_w, feats["image"], feats["text"], enc.feats[0], enc.feats[1],
                                          enc.trs[0], enc.trs[1], enc.gate[0], enc.gate[1], enc.query_common,
                                          enc.prefer[0], enc.prefer[1], 2, 1)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    ue, ie = m.encode()
    assert torch.allclose(ue, ua, atol=1e-6) and torch.allclose(ie, ia, atol=1e-6)
    loss, parts = m.calculate_loss(BATCH, (ue, ie))
    mf, emb, cl = mmrec_loss(ua, ia, side, content, BATCH.users, BATCH.pos, BATCH.neg, 0.01, 0.1)
    for name, want in (("bpr", mf), ("emb_reg", emb), ("mgcn_cl", cl)):
        assert math.isclose(parts[name], float(want.detach()), rel_tol=1e-5), name
    assert torch.allclose(loss, mf + emb + cl, atol=1e-6)  # model.reg=0: MMRec's loss exactly
    m.eval()  # full_sort_predict: the same forward
    got = m.full_sort_predict(torch.arange(N_USERS), torch.zeros(N_USERS, 0, dtype=torch.long))
    assert torch.allclose(got, ua @ ia.T, atol=1e-5)


def test_one_modality_is_content_plus_half_the_view_and_every_parameter_learns():
    """MMRec needs both modalities; with one, a = 1 and e - ē = 0, so s = e/2 (no dead gates)."""
    feats = _feats(("text",))
    m = _model(feats)
    enc = m.encoder
    assert enc.query_common is None and enc.prefer is None
    user_w, item_w = m.user_encoder.emb.weight, m.item_emb.weight
    norm_adj = mmrec_norm_adj()
    h = build_knn_normalized_graph(build_sim(feats["text"]), K) @ (item_w * enc.gate[0](enc.trs[0](enc.feats[0])))
    u, i = mmrec_layer_mean(norm_adj, user_w, item_w, 2)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    ue, ie = m.encode()
    assert torch.allclose(ie, i + h / 2, atol=1e-6)
    assert torch.allclose(ue, u + norm_adj[:N_USERS, N_USERS:] @ h / 2, atol=1e-6)
    loss, parts = m.calculate_loss(BATCH, (ue, ie))
    loss.backward()
    assert {"bpr", "emb_reg", "mgcn_cl"} <= set(parts)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters() if p.requires_grad)


def test_item_graphs_are_cached(tmp_path):
    feats = _feats()
    cfg = _cfg()

    def ctx():
        return build_context(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                             train_items=ITEMS, features=feats)

    a = build_artifacts(cfg, ctx(), tmp_path)["mgcn_item_graphs"]
    assert len(list(tmp_path.glob("knn-*.npz"))) == 2  # one per modality
    b = build_artifacts(cfg, ctx(), tmp_path)["mgcn_item_graphs"]
    want = build_knn_normalized_graph(build_sim(feats["image"]), K)
    assert torch.allclose(a["image"].to_dense(), want, atol=1e-6)
    assert all(torch.allclose(a[m].to_dense(), b[m].to_dense()) for m in feats)


def test_bad_input_is_a_one_line_error(tiny_data, tmp_path):  # noqa: F811
    feats = _feats()
    for opts, key in (({"cl_loss": -1.0}, "cl_loss"), ({"cl_temp": 0.0}, "cl_temp"),
                      ({"reg_weight": -1.0}, "reg_weight"), ({"knn_nprobe": 0}, "knn_nprobe"),
                      ({"knn_search": "fast"}, "knn_search"), ({"nope": 1}, "nope")):
        with pytest.raises(MrsError, match=rf"model\.options\.mgcn\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    with pytest.raises(MrsError, match=r"model\.knn_k"):
        build_model(ModelConfig(encoder="mgcn", knn_k=0), n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[],
                    train_users=USERS, train_items=ITEMS, features=feats)
    with pytest.raises(MrsError, match=r"model.encoder='mgcn' needs item features.*data.features"):
        _model({})
    train_refused(tiny_data, tmp_path / "run", "no feature store named 'audio'", model__encoder="mgcn",
                  data__features="[audio]")


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[image-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="mgcn", model__modes=True, data__features=features)
    h = m["history"][0]
    assert m["best_epoch"] == 1 and math.isfinite(h["loss"]) and {"bpr", "emb_reg", "mgcn_cl"} <= set(h)


def test_torchrun_refuses_the_contrastive_term(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    """Its contrastive term is not a mean of per-row terms: a rank's shard would change it."""
    fake_torchrun(monkeypatch)
    train_refused(tiny_data, tmp_path / "run", "model.encoder='mgcn'", model__encoder="mgcn",
                  data__features="[text-synth, image-synth]")

"""LATTICE against a direct, dense transcription of MMRec's formulas (enoche/MMRec@e775373
``src/models/lattice.py`` with ``cf_model=lightgcn``; ``build_sim``, ``build_knn_neighbourhood``,
``compute_normalized_laplacian`` from ``src/utils/utils.py``), MMRec's gradient schedule of the
learned graph, the cached frozen graphs, option errors, and one epoch of ``mrs train`` with modes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_artifacts, build_context, build_model
from tests.models.reference import build_sim, mmrec_layer_mean
from tests.train.conftest import cli_train, tiny_data  # noqa: F401 (fixture)

N_USERS, N_ITEMS, K = 6, 12, 3
USERS = [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 5]
ITEMS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1]


def build_knn_neighbourhood(adj, topk):
    knn_val, knn_ind = torch.topk(adj, topk, dim=-1)
    return (torch.zeros_like(adj)).scatter_(-1, knn_ind, knn_val)


def compute_normalized_laplacian(adj):
    rowsum = torch.sum(adj, -1)
    d_inv_sqrt = torch.pow(rowsum, -0.5)
    d_inv_sqrt[torch.isinf(d_inv_sqrt)] = 0.
    d_mat_inv_sqrt = torch.diagflat(d_inv_sqrt)
    return torch.mm(torch.mm(d_mat_inv_sqrt, adj), d_mat_inv_sqrt)


def mmrec_norm_adj():
    """LATTICE.get_adj_mat, dense: D^-1 (A + I)."""
    n = N_USERS + N_ITEMS
    adj = torch.zeros(n, n)
    for u, i in set(zip(USERS, ITEMS)):
        adj[u, N_USERS + i] = adj[N_USERS + i, u] = 1.0
    adj = adj + torch.eye(n)
    return adj / adj.sum(1, keepdim=True)


def mmrec_forward(user_w, item_w, raw, feats, trs, modal_weight, lambda_coeff, n_layers, n_ui_layers):
    """LATTICE.forward(adj, build_item_graph=True), lightgcn branch, for modalities in ``raw``'s order."""
    original = [compute_normalized_laplacian(build_knn_neighbourhood(build_sim(x), K)) for x in raw]
    learned = [build_knn_neighbourhood(build_sim(t(x)), K) for t, x in zip(trs, feats)]
    if len(raw) > 1:
        weight = torch.softmax(modal_weight, dim=0)
        learned_adj = sum(w * a for w, a in zip(weight, learned))
        original_adj = sum(w * a for w, a in zip(weight, original))
    else:
        learned_adj, original_adj = learned[0], original[0]
    learned_adj = compute_normalized_laplacian(learned_adj)
    item_adj = (1 - lambda_coeff) * learned_adj + lambda_coeff * original_adj
    h = item_w
    for _ in range(n_layers):
        h = torch.mm(item_adj, h)
    u_g, i_g = mmrec_layer_mean(mmrec_norm_adj(), user_w, item_w, n_ui_layers)
    return u_g, i_g + F.normalize(h, p=2, dim=1)


def _feats(names=("image", "text")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 4}
    return {m: F.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, **opts):
    cfg = ModelConfig(encoder="lattice", dim=5, layers=2, item_layers=1, knn_k=K, modes=False, reg=0.0,
                      options={"lattice": opts} if opts else {})
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                       train_items=ITEMS, features=feats)


@pytest.mark.parametrize("names", [("image", "text"), ("text",)])
def test_outputs_equal_mmrec_transcription(names):
    feats = _feats(names)
    m = _model(feats, lambda_coeff=0.7)
    enc = m.encoder
    if len(names) > 1:
        with torch.no_grad():
            enc.modal_weight.copy_(torch.tensor([0.2, 0.9]))  # unequal mixing: the weights matter
    else:
        assert enc.modal_weight is None  # one modality: MMRec's modal_weight is unused, so absent here
    user_w, item_w = m.user_encoder.emb.weight, m.item_emb.weight
    want = mmrec_forward(user_w, item_w, [feats[n] for n in names], list(enc.feats), list(enc.trs),
                         enc.modal_weight, 0.7, 1, 2)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    got = enc(user_w, item_w)  # the epoch's first batch (graph with gradients)
    later = enc(user_w, item_w)  # a later batch: the same graph, detached
    m.eval()
    ev = enc(user_w, item_w)  # evaluation: rebuilt from the current weights
    for out in (got, later, ev):
        assert torch.allclose(out[0], want[0], atol=1e-5) and torch.allclose(out[1], want[1], atol=1e-5)


def _graph_grads(m, batches: int) -> list[float]:
    """|grad| of the projections after each of ``batches`` training batches of one epoch."""
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    batch = Batch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([5, 7]), torch.zeros(2, 0, dtype=torch.long))
    out = []
    for _ in range(batches):
        m.zero_grad()
        loss, _ = m.calculate_loss(batch)
        loss.backward()
        g = [p.grad for p in (*m.encoder.trs.parameters(), m.encoder.modal_weight)]
        out.append(sum(float(x.abs().sum()) for x in g if x is not None))
    return out


def test_learned_graph_gradient_schedule():
    """MMRec: the learned graph takes gradients in the epoch's first batch only; the option
    ``graph_grad=every_batch`` gives them in every batch."""
    first, second = _graph_grads(_model(_feats()), 2)
    assert first > 0 and second == 0
    assert all(g > 0 for g in _graph_grads(_model(_feats(), graph_grad="every_batch"), 2))


def test_regulariser_is_mmrecs_half_squared_norms():
    m = _model(_feats(), reg_weight=0.5)
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    batch = Batch(torch.tensor([0, 3]), torch.tensor([1, 5]), torch.tensor([4, 9]), torch.zeros(2, 0, dtype=torch.long))
    ue, ie = m.encode()
    _, parts = m.calculate_loss(batch, (ue, ie))
    want = 0.5 * 0.5 * (ue[[0, 3]].pow(2).sum() + ie[[1, 5]].pow(2).sum() + ie[[4, 9]].pow(2).sum()) / 2
    assert math.isclose(parts["emb_reg"], float(want.detach()), rel_tol=1e-5)


def test_frozen_graphs_are_cached(tmp_path):
    feats = _feats()
    cfg = ModelConfig(encoder="lattice", dim=5, knn_k=K)

    def ctx():
        return build_context(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                             train_items=ITEMS, features=feats)

    a = build_artifacts(cfg, ctx(), tmp_path)["lattice_original"]
    assert len(list(tmp_path.glob("knn-*.npz"))) == 2  # one per modality
    b = build_artifacts(cfg, ctx(), tmp_path)["lattice_original"]
    want = compute_normalized_laplacian(build_knn_neighbourhood(build_sim(feats["text"]), K))
    assert torch.allclose(a["text"].to_dense(), want, atol=1e-6)
    assert all(torch.allclose(a[m].to_dense(), b[m].to_dense()) for m in feats)


def test_options_and_missing_content_are_one_line_errors():
    feats = _feats()
    for opts, key in (({"lambda_coeff": 1.5}, "lambda_coeff"), ({"lambda_coeff": -0.1}, "lambda_coeff"),
                      ({"feat_embed_dim": -1}, "feat_embed_dim"), ({"reg_weight": -1.0}, "reg_weight"),
                      ({"knn_nprobe": 0}, "knn_nprobe"), ({"graph_grad": "sometimes"}, "graph_grad")):
        with pytest.raises(MrsError, match=rf"model\.options\.lattice\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    with pytest.raises(MrsError, match=r"model\.knn_k"):
        build_model(ModelConfig(encoder="lattice", knn_k=0), n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[],
                    train_users=USERS, train_items=ITEMS, features=feats)
    with pytest.raises(MrsError, match=r"model.encoder='lattice' needs item features.*data.features"):
        _model({})


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[text-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="lattice", model__modes=True, data__features=features)
    assert m["best_epoch"] == 1 and math.isfinite(m["history"][0]["loss"]) and "emb_reg" in m["history"][0]

"""GRCN against a transcription of MMRec's forward and loss (enoche/MMRec@e775373
``src/models/grcn.py``: ``CGCN`` with PyG attention message passing, ``EGCN``, ``GRCN.forward``
with ``weight_mode='confid'``, ``calculate_loss``), its no-op routing and the option that routes,
one modality of either kind, option errors, and one epoch of ``mrs train`` with modes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import softmax

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_model
from tests.models.reference import mmrec_pair_bpr
from tests.train.conftest import cli_train, tiny_data  # noqa: F401 (fixture)

N_USERS, N_ITEMS, DIM, C = 5, 7, 9, 3
USERS = [0, 0, 1, 1, 2, 3, 3, 4, 4, 4]
ITEMS = [0, 1, 1, 2, 3, 4, 5, 0, 2, 5]  # item 6 has no interaction (a cold node)


class Attention(MessagePassing):
    """MMRec's ``GATConv`` (no self-loops): x_j weighted by softmax over the target's <x_i, x_j>."""

    def __init__(self):
        super().__init__(aggr="add")

    def forward(self, x, edge_index):
        return self.propagate(edge_index, size=None, x=x)

    def message(self, x_i, x_j, index, size_i):
        self.alpha = softmax(torch.mul(x_i, x_j).sum(dim=-1), index, num_nodes=size_i)
        return x_j * self.alpha.view(-1, 1)


class Weighted(MessagePassing):
    """MMRec's ``SAGEConv`` with ``aggr='add'``: x_j times the edge's weight."""

    def __init__(self):
        super().__init__(aggr="add")

    def forward(self, x, edge_index, weight_vector):
        self.weight_vector = weight_vector
        return self.propagate(edge_index, size=None, x=x)

    def message(self, x_j):
        return x_j * self.weight_vector


def mmrec_edge_index():
    """GRCN.edge_index: one direction, user -> item node."""
    return torch.tensor([USERS, [i + N_USERS for i in ITEMS]])


def mmrec_cgcn(branch, features, edge_index, num_routing, routing_edges):
    """CGCN.forward (has_norm, no activation); ``routing_edges``: MMRec's ``edge_index``."""
    features = F.normalize(F.leaky_relu(branch.mlp(features)))
    preference = F.normalize(branch.preference)
    for _ in range(num_routing):
        x = torch.cat((preference, features), dim=0)
        x_hat_1 = Attention()(x, routing_edges)
        preference = F.normalize(preference + x_hat_1[:N_USERS])
    x = torch.cat((preference, features), dim=0)
    conv = Attention()
    x_hat_1 = conv(x, torch.cat((edge_index, edge_index[[1, 0]]), dim=1))
    return x + x_hat_1, conv.alpha.view(-1, 1)


def mmrec_forward(enc, feats, id_embedding, num_routing=3, route_users=False):
    """GRCN.forward, weight_mode='confid', fusion_mode='concat', for modalities in ``feats``' order."""
    edge_index = mmrec_edge_index()
    routing_edges = edge_index[[1, 0]] if route_users else edge_index
    reps, weights = zip(*(mmrec_cgcn(b, x, edge_index, num_routing, routing_edges)
                          for b, x in zip(enc.branches, feats)))
    conf = enc.confidence
    confidence = torch.cat((conf[edge_index[0]], conf[edge_index[1]]), dim=0)
    weight, _ = torch.max(torch.cat(weights, dim=1) * confidence, dim=1)
    weight = torch.relu(weight.view(-1, 1))
    both = torch.cat((edge_index, edge_index[[1, 0]]), dim=1)
    x = F.normalize(id_embedding)
    x_hat_1 = Weighted()(x, both, weight)
    x_hat_2 = Weighted()(x_hat_1, both, weight)
    return torch.cat((x + x_hat_1 + x_hat_2, *reps), dim=1)


def mmrec_loss(out, id_embedding, enc, image, users, pos, neg, reg_weight):
    """GRCN.calculate_loss (``image``: per branch, whether it is MMRec's v_gcn)."""
    loss, user_tensor, item_tensor = mmrec_pair_bpr(out, users, pos, neg, N_USERS)
    reg_embedding_loss = (id_embedding[user_tensor] ** 2 + id_embedding[item_tensor] ** 2).mean()
    reg_content_loss = torch.zeros(1)
    for b, v in zip(enc.branches, image):
        if v:
            reg_embedding_loss += (b.preference ** 2).mean()
        reg_content_loss = reg_content_loss + (b.preference[user_tensor] ** 2).mean()
    return loss, reg_weight * (reg_embedding_loss + reg_content_loss)


def _feats(names=("image", "text")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 5}
    return {m: F.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, dim=DIM, **opts):
    cfg = ModelConfig(encoder="grcn", dim=dim, modes=False, reg=0.0, options={"grcn": {"latent_dim": C, **opts}})
    torch.manual_seed(0)
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                       train_items=ITEMS, features=feats)


@pytest.mark.parametrize("names,opts", [(("image", "text"), {}), (("text", "image"), {"route_users": True}),
                                        (("text",), {}), (("image",), {"n_routing": 2, "route_users": True})])
def test_outputs_and_loss_equal_mmrec_transcription(names, opts):
    feats = _feats(names)
    m = _model(feats, reg_weight=0.1, **opts)
    enc = m.encoder
    order = sorted(names, key=lambda n: n != "image")  # MMRec: v_gcn before t_gcn
    d = DIM - C * len(names)  # the ID block
    id_embedding = torch.cat((m.user_encoder.emb.weight, m.item_emb.weight))[:, :d]
    want = mmrec_forward(enc, [feats[n] for n in order], id_embedding, opts.get("n_routing", 3),
                         opts.get("route_users", False))
    m.train()
    ue, ie = m.encode()
    assert torch.allclose(ue, want[:N_USERS], atol=1e-5) and torch.allclose(ie, want[N_USERS:], atol=1e-5)
    users, pos, neg = torch.tensor([0, 3, 4]), torch.tensor([1, 4, 5]), torch.tensor([6, 2, 3])
    want_bpr, want_reg = mmrec_loss(want, id_embedding, enc, [n == "image" for n in order], users, pos, neg, 0.1)
    _, parts = m.calculate_loss(Batch(users, pos, neg, torch.zeros(3, 0, dtype=torch.long)), (ue, ie))
    assert math.isclose(parts["bpr"], want_bpr.item(), rel_tol=1e-5)
    assert math.isclose(parts["emb_reg"], want_reg.item(), rel_tol=1e-5)


def test_mmrec_routing_leaves_preferences_alone_and_the_option_routes():
    """MMRec's routing messages go to items: the user rows of the content graphs do not depend on
    n_routing. With route_users they do."""
    feats = _feats()

    def users(**opts):
        return _model(feats, **opts).eval().encode()[0][:, DIM - 2 * C:]

    assert torch.allclose(users(n_routing=0), users(n_routing=3), atol=1e-6)
    assert not torch.allclose(users(n_routing=0, route_users=True), users(n_routing=3, route_users=True), atol=1e-3)


def test_every_parameter_learns():
    m = _model(_feats())
    m.train()
    batch = Batch(torch.tensor([0, 1, 3]), torch.tensor([0, 2, 4]), torch.tensor([5, 6, 1]),
                  torch.zeros(3, 0, dtype=torch.long))
    m.calculate_loss(batch)[0].backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_options_width_fusion_and_missing_content_are_one_line_errors():
    feats = _feats()
    for opts, key in (({"latent_dim": -1}, "latent_dim"), ({"n_routing": -1}, "n_routing"),
                      ({"reg_weight": -1.0}, "reg_weight"), ({"latent_dim": 5}, "latent_dim")):  # 2·5 > 9
        with pytest.raises(MrsError, match=rf"model\.options\.grcn\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    assert _model(feats, dim=12, latent_dim=0).encoder.c == 4  # default c = R / (M + 1)
    data = dict(n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS, train_items=ITEMS)
    with pytest.raises(MrsError, match=r"model\.fusion"):
        build_model(ModelConfig(encoder="grcn", fusion="late", dim=DIM), features=feats, **data)
    with pytest.raises(MrsError, match=r"model.encoder='grcn' needs item features.*data.features"):
        build_model(ModelConfig(encoder="grcn", dim=DIM), features=None, **data)


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[text-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="grcn", model__modes=True, data__features=features)
    assert m["best_epoch"] == 1 and math.isfinite(m["history"][0]["loss"]) and "emb_reg" in m["history"][0]

"""MMGCN against a transcription of MMRec's forward and loss (enoche/MMRec@e775373
``src/models/mmgcn.py``: ``GCN.forward`` with PyG mean message passing, ``calculate_loss``),
MMRec's frozen ID rows and preferences (and the option that trains them), one modality,
option errors, and one epoch of ``mrs train`` with modes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn.conv import MessagePassing

from mrs.errors import MrsError
from mrs.models import Batch, ModelConfig, build_model
from tests.models.reference import mmrec_pair_bpr
from tests.train.conftest import cli_train, tiny_data  # noqa: F401 (fixture)

N_USERS, N_ITEMS, DIM = 5, 7, 4
USERS = [0, 0, 1, 1, 2, 3, 3, 4, 4, 4]
ITEMS = [0, 1, 1, 2, 3, 4, 5, 0, 2, 5]  # item 6 has no interaction (a cold node)


class MeanConv(MessagePassing):
    """MMRec's ``BaseModel`` with ``aggr='mean'``: ``x @ weight``, then the mean of x_j."""

    def __init__(self, weight):
        super().__init__(aggr="mean")
        self.weight = weight

    def forward(self, x, edge_index):
        x = torch.matmul(x, self.weight)
        return self.propagate(edge_index, size=(x.size(0), x.size(0)), x=x)

    def message(self, x_j):
        return x_j


def mmrec_edge_index():
    e = torch.tensor([USERS, [i + N_USERS for i in ITEMS]])
    return torch.cat((e, e[[1, 0]]), dim=1)


def mmrec_gcn(branch, features, id_embedding, concate):
    """MMRec ``GCN.forward`` (has_id=True) for any number of layers, with ``branch``'s weights."""
    temp_features = branch.mlp(features) if branch.mlp is not None else features
    x = F.normalize(torch.cat((branch.preference, temp_features), dim=0))
    for w, lin, g in zip(branch.conv, branch.lin, branch.g):
        h = F.leaky_relu(MeanConv(w)(x, mmrec_edge_index()))
        x_hat = F.leaky_relu(lin(x)) + id_embedding
        x = F.leaky_relu(g(torch.cat((h, x_hat), dim=1))) if concate else F.leaky_relu(g(h) + x_hat)
    return x


def mmrec_forward(enc, feats, id_embedding, concate=True):
    """MMGCN.forward: the modalities' GCN outputs summed and divided by their number."""
    representation = None
    for branch, x in zip(enc.branches, feats):
        out = mmrec_gcn(branch, x, id_embedding, concate)
        representation = out if representation is None else representation + out
    return representation / len(feats)


def mmrec_loss(out, id_embedding, v_preference, users, pos, neg, reg_weight):
    """MMGCN.calculate_loss (v_preference None: no v_feat)."""
    loss, user_tensor, item_tensor = mmrec_pair_bpr(out, users, pos, neg, N_USERS)
    reg = (id_embedding[user_tensor] ** 2 + id_embedding[item_tensor] ** 2).mean()
    if v_preference is not None:
        reg = reg + (v_preference ** 2).mean()
    return loss, reg_weight * reg


def _feats(names=("image", "text")):
    gen = torch.Generator().manual_seed(0)
    dims = {"text": 6, "image": 5}
    return {m: F.normalize(torch.randn(N_ITEMS, dims[m], generator=gen), dim=1) for m in names}


def _model(feats, **opts):
    cfg = ModelConfig(encoder="mmgcn", dim=DIM, modes=False, reg=0.0, options={"mmgcn": {"latent_dim": 3, **opts}})
    torch.manual_seed(0)
    return build_model(cfg, n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS,
                       train_items=ITEMS, features=feats)


@pytest.mark.parametrize("names,opts", [(("image", "text"), {}), (("text", "image"), {"concat": False}),
                                        (("text",), {}), (("image",), {"layers": 2, "train_ids": True})])
def test_outputs_and_loss_equal_mmrec_transcription(names, opts):
    feats = _feats(names)
    m = _model(feats, reg_weight=0.1, **opts)
    enc = m.encoder
    image_first = sorted(names, key=lambda n: n != "image")  # MMRec: v_gcn before t_gcn
    assert [b.mlp is not None for b in enc.branches] == [n == "image" for n in image_first]
    id_embedding = torch.cat((m.user_encoder.emb.weight, m.item_emb.weight))
    want = mmrec_forward(enc, [feats[n] for n in image_first], id_embedding, opts.get("concat", True))
    m.train()
    ue, ie = m.encode()
    assert torch.allclose(ue, want[:N_USERS], atol=1e-5) and torch.allclose(ie, want[N_USERS:], atol=1e-5)
    users, pos, neg = torch.tensor([0, 3, 4]), torch.tensor([1, 4, 5]), torch.tensor([6, 2, 3])
    v_pref = enc.branches[0].preference if "image" in names else None
    want_bpr, want_reg = mmrec_loss(want, id_embedding, v_pref, users, pos, neg, 0.1)
    _, parts = m.calculate_loss(Batch(users, pos, neg, torch.zeros(3, 0, dtype=torch.long)), (ue, ie))
    assert math.isclose(parts["bpr"], want_bpr.item(), rel_tol=1e-5)
    assert math.isclose(parts["emb_reg"], want_reg.item(), rel_tol=1e-5)


def test_id_term_with_several_negatives_counts_one_pair_per_negative():
    """MMRec samples one negative; with K the mean runs over the B·(1+K) (user, item) pairs."""
    m = _model(_feats(), reg_weight=1.0, train_ids=True)
    m.train()
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([[4, 6, 2], [0, 5, 1]])
    ue, ie = m.encode()
    _, parts = m.calculate_loss(Batch(users, pos, neg, torch.zeros(2, 0, dtype=torch.long)), (ue, ie))
    u, i = m.user_encoder.emb.weight, m.item_emb.weight
    pair_u = u[users].repeat_interleave(4, dim=0)
    pair_i = i[torch.cat([pos[:, None], neg], 1).reshape(-1)]
    want = (pair_u ** 2 + pair_i ** 2).mean() + (m.encoder.branches[0].preference ** 2).mean()
    assert math.isclose(parts["emb_reg"], want.item(), rel_tol=1e-5)


def _grads(m):
    m.train()
    m.on_epoch_start(0, torch.Generator().manual_seed(0))
    m.zero_grad()
    batch = Batch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([5, 6]), torch.zeros(2, 0, dtype=torch.long))
    m.calculate_loss(batch)[0].backward()
    return {n: p.grad for n, p in m.named_parameters()}


def test_id_rows_and_preferences_frozen_as_mmrec_unless_train_ids():
    """MMRec's id_embedding and preference are not parameters: nothing moves them (model.reg=0).
    ``train_ids=true`` gives both gradients; the layers learn either way."""
    frozen = _model(_feats())
    g = _grads(frozen)
    assert all(not frozen.get_parameter(n).requires_grad for n in g if n.endswith("preference"))
    for n in ("item_emb.weight", "user_encoder.emb.weight"):  # model.reg=0: no gradient at all
        assert g[n] is None or not g[n].any(), n
    assert g["encoder.branches.0.mlp.weight"].abs().sum() > 0
    trained = _grads(_model(_feats(), train_ids=True))
    for n in ("item_emb.weight", "user_encoder.emb.weight", "encoder.branches.0.preference",
              "encoder.branches.1.preference"):
        assert trained[n].abs().sum() > 0, n


def test_options_fusion_and_missing_content_are_one_line_errors():
    feats = _feats()
    for opts, key in (({"layers": 0}, "layers"), ({"latent_dim": 0}, "latent_dim"),
                      ({"reg_weight": -1.0}, "reg_weight"), ({"concat": "maybe"}, "concat")):
        with pytest.raises(MrsError, match=rf"model\.options\.mmgcn\.{key}") as e:
            _model(feats, **opts)
        assert "\n" not in str(e.value)
    data = dict(n_users=N_USERS, n_items=N_ITEMS, mode_cardinalities=[], train_users=USERS, train_items=ITEMS)
    with pytest.raises(MrsError, match=r"model\.fusion.*train_ids"):  # a fusion would get no gradient
        build_model(ModelConfig(encoder="mmgcn", fusion="early", dim=DIM), features=feats, **data)
    build_model(ModelConfig(encoder="mmgcn", fusion="early", dim=DIM, options={"mmgcn": {"train_ids": True}}),
                features=feats, **data)
    with pytest.raises(MrsError, match=r"model.encoder='mmgcn' needs item features.*data.features"):
        build_model(ModelConfig(encoder="mmgcn", dim=DIM), features=None, **data)


@pytest.mark.parametrize("features", ["[text-synth, image-synth]", "[image-synth]"])
def test_mrs_train_one_epoch_with_modes(tiny_data, tmp_path, features):  # noqa: F811
    m = cli_train(tiny_data, tmp_path / "run", model__encoder="mmgcn", model__modes=True, data__features=features)
    assert m["best_epoch"] == 1 and math.isfinite(m["history"][0]["loss"]) and "emb_reg" in m["history"][0]


def test_a_modality_the_store_lacks_is_a_one_line_error(tiny_data, tmp_path):  # noqa: F811
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train
    from tests.train.conftest import tiny_overrides

    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="mmgcn", data__features="[image-nope]"))
    with pytest.raises(MrsError, match="no feature store named 'image-nope'") as e:
        run_train(cfg, tmp_path / "run")
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()

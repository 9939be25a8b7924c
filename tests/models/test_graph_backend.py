"""``model.graph_backend``: PyG (LGConv on an EdgeIndex, gcn_norm) and our CSR code propagate the
same graphs: equal embeddings and gradients for lightgcn and freedom, in eval mode and in train
mode on the same pruned graph."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mrs import graph
from mrs.errors import MrsError
from mrs.graph_pyg import EdgeGraph
from mrs.models.encoders.freedom import FreedomEncoder
from mrs.models.encoders.lightgcn import LightGCNEncoder

N_USERS, N_ITEMS = 30, 25


def random_graph(seed: int = 0):
    """~120 deduplicated edges; the last three items are cold (no edge), user degrees vary."""
    rng = np.random.default_rng(seed)
    u, i = graph.unique_edges(rng.integers(0, N_USERS, 150), rng.integers(0, N_ITEMS - 3, 150), N_ITEMS)
    return u, i


def ego(seed: int = 1, dim: int = 6):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N_USERS, dim, generator=g, requires_grad=True),
            torch.randn(N_ITEMS, dim, generator=g, requires_grad=True))


def outputs_and_grads(enc, user_ego, item_ego):
    """Embeddings and the gradients of a random linear functional of them w.r.t. both ego inputs."""
    ue, ie = enc(user_ego, item_ego)
    g = torch.Generator().manual_seed(2)
    loss = (ue * torch.randn(ue.shape, generator=g)).sum() + (ie * torch.randn(ie.shape, generator=g)).sum()
    gu, gi = torch.autograd.grad(loss, (user_ego, item_ego))
    return ue.detach(), ie.detach(), gu, gi


def assert_same(a, b):
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert (x - y).abs().max() <= 1e-6


def test_edge_graph_is_a_times_x_for_a_nonsymmetric_matrix():
    """Direction: ``A @ x`` (rows gather their columns), and the backward is ``Aᵀ g`` (the kNN
    graph is not symmetric, so a swapped source/target would show here)."""
    a = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    op = EdgeGraph.from_csr(a.to_sparse_csr())
    x = torch.randn(3, 2, requires_grad=True)
    y = op(x)
    assert y.shape == (3, 2) and torch.allclose(y, a @ x)
    assert torch.equal(y[2], torch.zeros(2))  # an empty row
    gy = torch.randn(3, 2)
    gx, = torch.autograd.grad((y * gy).sum(), x)
    assert torch.allclose(gx, a.T @ gy)
    with pytest.raises(ValueError, match="square"):
        EdgeGraph.from_csr(a[:2].to_sparse_csr())


def test_gcn_norm_graph_equals_our_normalised_blocks():
    """PyG's gcn_norm on the undirected (U+I)-node graph = our ``R̂`` blocks, entry by entry."""
    u, i = random_graph()
    r_ui, r_iu = graph.bipartite_blocks(u, i, N_USERS, N_ITEMS)
    adj = EdgeGraph.bipartite(u, i, N_USERS, N_ITEMS)
    n = N_USERS + N_ITEMS
    dense = adj(torch.eye(n))  # (n, n) = Â
    assert dense.shape == (n, n) and torch.allclose(dense, dense.T)
    assert (dense[:N_USERS, :N_USERS] == 0).all() and (dense[N_USERS:, N_USERS:] == 0).all()
    assert torch.allclose(dense[:N_USERS, N_USERS:], r_ui.to_dense(), atol=1e-7)
    assert torch.allclose(dense[N_USERS:, :N_USERS], r_iu.to_dense(), atol=1e-7)
    # one hand value: 1/sqrt(d_u d_i) for the first edge
    d_u, d_i = int((u == u[0]).sum()), int((i == i[0]).sum())
    assert math.isclose(float(dense[u[0], N_USERS + i[0]]), (d_u * d_i) ** -0.5, rel_tol=1e-6)


def test_lightgcn_backends_agree():
    u, i = random_graph()
    blocks = graph.bipartite_blocks(u, i, N_USERS, N_ITEMS)
    csr, pyg = (LightGCNEncoder(*blocks, layers=3, backend=b) for b in ("csr", "pyg"))
    a, b = outputs_and_grads(csr, *ego()), outputs_and_grads(pyg, *ego())
    assert_same(a, b)
    assert torch.allclose(b[1][-1], ego()[1][-1].detach() / 4)  # a cold item keeps its ego share only
    # no graph in the state dict: a checkpoint of one backend loads into the other
    assert pyg.state_dict().keys() == csr.state_dict().keys()
    # the graph follows deep copies (the trainer's CUDA test deep-copies the model before .to())
    assert_same(a, outputs_and_grads(copy.deepcopy(pyg), *ego()))


def freedom_pair(edge_drop: float = 0.5, with_knn: bool = True):
    u, i = random_graph()
    feats = torch.randn(N_ITEMS, 5, generator=torch.Generator().manual_seed(3))
    feats[-1] = 0  # an item without content: no kNN edges
    s = graph.knn_adj(feats, k=3) if with_knn else None
    blocks = graph.bipartite_blocks(u, i, N_USERS, N_ITEMS)
    w = graph.edge_keep_probs(u, i, N_USERS, N_ITEMS)
    return [FreedomEncoder(*blocks, 2, u, i, w, edge_drop, s, item_layers=2, item_weight=0.7, backend=b)
            for b in ("csr", "pyg")]


@pytest.mark.parametrize("with_knn", [True, False])
def test_freedom_backends_agree_in_eval_mode(with_knn):
    csr, pyg = (e.eval() for e in freedom_pair(with_knn=with_knn))
    assert_same(outputs_and_grads(csr, *ego()), outputs_and_grads(pyg, *ego()))


def test_freedom_backends_agree_in_train_mode_on_the_same_pruned_graph():
    csr, pyg = (e.train() for e in freedom_pair())
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        pyg(*ego())  # a training pass before any pruned graph is drawn
    for epoch in range(2):  # a fresh draw each epoch, the same draw for both backends
        for enc in (csr, pyg):
            enc.on_epoch_start(epoch, torch.Generator().manual_seed(10 + epoch))
        a, b = outputs_and_grads(csr, *ego()), outputs_and_grads(pyg, *ego())
        assert_same(a, b)
        n_kept = round(len(csr.users) * 0.5)
        assert pyg.graph().edge_index.shape[1] == 2 * n_kept  # both directions of the kept edges
    # the pruned graph matters: evaluation on the full graph gives other embeddings
    full = outputs_and_grads(pyg.eval(), *ego())
    assert (full[1] - b[1]).abs().max() > 1e-3


def test_one_epoch_trains_with_the_pyg_backend(tmp_path):
    from mrs.synth import make_prepared
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train
    from tests.train.conftest import tiny_overrides

    data = make_prepared(tmp_path / "ds", n_users=40, n_items=50, n_interactions=800, seed=0, modes=True,
                         features_dim=8)
    for encoder in ("lightgcn", "freedom"):
        cfg = load_train_config(None, tiny_overrides(
            data, model__encoder=encoder, model__graph_backend="pyg", data__features="[text-synth]",
            model__fusion="concat", eval__bootstrap=0))
        assert cfg.model.graph_backend == "pyg"
        m = run_train(cfg, tmp_path / f"run-{encoder}")
        assert m["best_epoch"] == 1 and math.isfinite(m["history"][0]["loss"])
    with pytest.raises(MrsError, match="model.graph_backend"):
        load_train_config(None, tiny_overrides(data, model__graph_backend="dense"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_pyg_backend_on_cuda_matches_cpu():
    """The EdgeIndex and its cached transpose follow the model to the GPU (deep copy, then .to)."""
    csr, pyg = (e.train() for e in freedom_pair())
    gpu = copy.deepcopy(pyg).to("cuda")
    for enc in (pyg, gpu):
        enc.on_epoch_start(0, torch.Generator().manual_seed(10))
    want = outputs_and_grads(pyg, *ego())
    got = outputs_and_grads(gpu, *(x.detach().cuda().requires_grad_() for x in ego()))
    assert got[0].device.type == "cuda"
    for x, y in zip(want, got):
        assert torch.allclose(x, y.cpu(), atol=1e-5)

import numpy as np
import pytest
import torch

from mrs import graph
from mrs.models.encoders.freedom import FreedomEncoder
from mrs.models.encoders.lightgcn import LightGCNEncoder

from .reference import bipartite_adj

# 3 users, 4 items; item 3 is cold. Duplicate (0, 0) must count once.
USERS = torch.tensor([0, 0, 0, 1, 1, 2])
ITEMS = torch.tensor([0, 1, 0, 1, 2, 2])


def dense_norm_adj():
    r = torch.zeros(3, 4)
    r[[0, 0, 1, 1, 2], [0, 1, 1, 2, 2]] = 1.0
    a = torch.zeros(7, 7)
    a[:3, 3:] = r
    a[3:, :3] = r.T
    d = a.sum(1)
    dinv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    return dinv[:, None] * a * dinv[None, :]


def test_normalised_adjacency_matches_dense():
    u, i = graph.unique_edges(USERS, ITEMS, 4)
    assert len(u) == 5
    adj = bipartite_adj(u, i, 3, 4)
    assert adj.layout == torch.sparse_csr
    want = dense_norm_adj()
    assert torch.allclose(adj.to_dense(), want)
    # hand value: user 0 (degree 2) - item 1 (degree 2): 1/sqrt(2*2)
    assert torch.isclose(adj.to_dense()[0, 3 + 1], torch.tensor(0.5))
    r_ui, r_iu = graph.bipartite_blocks(u, i, 3, 4)
    assert torch.allclose(r_ui.to_dense(), want[:3, 3:]) and torch.allclose(r_iu.to_dense(), want[3:, :3])


def test_lightgcn_matches_dense_reference_and_gradients():
    u, i = graph.unique_edges(USERS, ITEMS, 4)
    enc = LightGCNEncoder(*graph.bipartite_blocks(u, i, 3, 4), layers=3)
    torch.manual_seed(0)
    e0 = torch.randn(7, 5, requires_grad=True)
    ue, ie = enc(e0[:3], e0[3:])
    a = dense_norm_adj()
    layers = [e0, a @ e0, a @ a @ e0, a @ a @ a @ e0]
    want = sum(layers) / 4  # α_k = 1/(K+1)
    assert torch.allclose(torch.cat([ue, ie]), want, atol=1e-6)
    assert torch.allclose(ie[3], e0[6] / 4)  # the cold item keeps only its ego share
    w = torch.randn(7, 5)
    g1, = torch.autograd.grad((torch.cat([ue, ie]) * w).sum(), e0)
    g2, = torch.autograd.grad((want * w).sum(), e0)
    assert torch.allclose(g1, g2, atol=1e-6)


def test_spmm_nonsymmetric_gradient():
    a = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    sa = a.to_sparse_csr()
    x = torch.randn(3, 2, requires_grad=True)
    y = graph.spmm(sa, x, graph.transpose(sa))
    assert torch.allclose(y, a @ x)
    g, = torch.autograd.grad(y.pow(2).sum(), x)
    x2 = x.detach().requires_grad_()
    g2, = torch.autograd.grad((a @ x2).pow(2).sum(), x2)
    assert torch.allclose(g, g2)


def test_edge_pruning_fraction_and_degree_preference():
    # user 0 and item 0 are hubs; the edge (1, 1) joins two degree-1 nodes.
    users = torch.tensor([0] * 20 + list(range(2, 22)) + [1])
    items = torch.tensor(list(range(2, 22)) + [0] * 20 + [1])
    w = graph.edge_keep_probs(users, items, 22, 22)
    assert w[-1] == 1.0 and torch.isclose(w[0], torch.tensor(1 / 20 ** 0.5))
    kept_low = 0
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        keep = graph.sample_edges(w, 10, gen)
        assert len(keep) == 10 and len(set(keep.tolist())) == 10  # without replacement
        kept_low += int(40 in keep.tolist())
    # the low-degree edge has 1/(10 + 40/sqrt(20)) ≈ 5x the weight of each hub edge
    assert kept_low / 200 > 0.6  # vs 10/41 ≈ 0.24 for uniform sampling
    r_ui, _ = graph.pruned_blocks(users, items, 22, 22, w, drop=0.75, generator=gen)
    assert r_ui._nnz() == round(41 * 0.25)


def test_freedom_resamples_each_epoch_and_evaluates_on_full_graph():
    rng = np.random.default_rng(0)
    u, i = graph.unique_edges(rng.integers(0, 30, 200), rng.integers(0, 40, 200), 40)
    blocks = graph.bipartite_blocks(u, i, 30, 40)
    enc = FreedomEncoder(*blocks, 2, u, i, graph.edge_keep_probs(u, i, 30, 40), 0.5, None)
    gen = torch.Generator().manual_seed(0)
    enc.train()
    enc.resample(gen)
    g1 = enc.graph()[0].to_dense()
    enc.resample(gen)
    g2 = enc.graph()[0].to_dense()
    assert (g1 > 0).sum() == (g2 > 0).sum() == round(len(u) * 0.5)
    assert not torch.equal(g1 > 0, g2 > 0)
    enc.eval()
    assert torch.equal(enc.graph()[0].to_dense(), blocks[0].to_dense())


def test_knn_graph_neighbours_and_normalisation():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 0.0]])  # item 4: no content
    adj = graph.knn_adj(x, k=1).to_dense()
    nb = (adj > 0).float()
    assert torch.equal(nb[:4].argmax(1), torch.tensor([1, 0, 3, 2]))
    assert nb.sum() == 4 and nb[4].sum() == 0 and nb[:, 4].sum() == 0
    assert torch.allclose(adj[adj > 0], torch.ones(4))  # k = 1: degree 1 on both sides


def test_knn_cache_reused_and_rebuilt(tmp_path, monkeypatch):
    calls = []
    real = graph.knn_adj
    monkeypatch.setattr(graph, "knn_adj", lambda f, k: calls.append(k) or real(f, k))
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    a = graph.load_or_build_knn(x, 3, tmp_path)
    assert calls == [3] and len(list(tmp_path.glob("knn-*-k3.npz"))) == 1
    b = graph.load_or_build_knn(x.clone(), 3, tmp_path)  # same checksum and k: read from disk
    assert calls == [3] and torch.allclose(a.to_dense(), b.to_dense())
    graph.load_or_build_knn(x, 4, tmp_path)  # k changed
    x2 = x.clone()
    x2[0, 0] += 1.0
    graph.load_or_build_knn(x2, 3, tmp_path)  # features changed
    assert calls == [3, 4, 3] and len(list(tmp_path.glob("knn-*.npz"))) == 3
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_freedom_adds_knn_propagated_items_dense_reference():
    u, i = graph.unique_edges(USERS, ITEMS, 4)
    s = torch.tensor([[0.0, 0.5, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    sp = s.to_sparse_csr()
    enc = FreedomEncoder(*graph.bipartite_blocks(u, i, 3, 4), 1, u, i, graph.edge_keep_probs(u, i, 3, 4),
                         0.5, sp, item_layers=2, item_weight=0.5).eval()  # eval: the full graph
    e0 = torch.randn(7, 3, requires_grad=True)
    ue, ie = enc(e0[:3], e0[3:])
    a = dense_norm_adj()
    light = (e0 + a @ e0) / 2
    assert torch.allclose(ue, light[:3], atol=1e-6)
    assert torch.allclose(ie, light[3:] + 0.5 * s @ s @ e0[3:], atol=1e-6)
    assert torch.allclose(ie[3], e0[6] / 2 + 0.5 * e0[6])  # cold item 3: two kNN hops 3 -> 2 -> 3
    g, = torch.autograd.grad(ie.sum(), e0)  # non-symmetric S: backward through the transpose
    want, = torch.autograd.grad((light[3:] + 0.5 * s @ s @ e0[3:]).sum(), e0)
    assert torch.allclose(g, want, atol=1e-6)


def test_content_filtration_prefers_aligned_edges():
    # user 0 bought items 0, 1, 2 (content "a") and item 3 (content "b"): the odd edge is (0, 3)
    users = torch.tensor([0, 0, 0, 0])
    items = torch.tensor([0, 1, 2, 3])
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.9, 0.0], [0.0, 1.0]])
    aff = graph.content_affinity(users, items, 1, x)
    assert aff[:3].min() > 0.9 and aff[3] < 0.5
    w = graph.affinity_keep_weights(aff, temperature=0.1)
    assert torch.isclose(w[0], torch.exp((aff[0] - 1) / 0.1))
    gen = torch.Generator().manual_seed(0)
    dropped_odd = sum(3 not in graph.sample_edges(w, 3, gen).tolist() for _ in range(100))
    assert dropped_odd > 95  # uniform pruning would drop it 25% of the time


def test_pruned_graph_is_renormalised_on_the_kept_edges():
    """After edge dropout the kept edges carry ``1/sqrt(d_u' d_i')`` with the degrees of the
    *pruned* graph (FREEDOM renormalises), not the full graph's weights; ``R̂ᵀ`` is ``R̂``
    transposed. Degrees and weights are recounted here by hand from the kept edge list."""
    # 4 users, 5 items, 12 distinct edges; degrees vary so dropping any edge changes some weight
    users = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    items = torch.tensor([0, 1, 2, 3, 0, 1, 4, 0, 2, 1, 3, 4])
    n_users, n_items = 4, 5
    w = graph.edge_keep_probs(users, items, n_users, n_items)
    r_ui, r_iu = graph.pruned_blocks(users, items, n_users, n_items, w, drop=0.5,
                                     generator=torch.Generator().manual_seed(0))
    dense = r_ui.to_dense()
    assert dense.shape == (n_users, n_items)
    kept = [(int(u), int(i)) for u, i in torch.nonzero(dense)]
    assert len(kept) == 6 and set(kept) <= set(zip(users.tolist(), items.tolist()))

    deg_u = {u: sum(1 for a, _ in kept if a == u) for u, _ in kept}  # degrees in the pruned graph
    deg_i = {i: sum(1 for _, b in kept if b == i) for _, i in kept}
    full_u = {u: int((users == u).sum()) for u, _ in kept}
    full_i = {i: int((items == i).sum()) for _, i in kept}
    want = torch.zeros(n_users, n_items)
    for u, i in kept:
        want[u, i] = 1.0 / (deg_u[u] * deg_i[i]) ** 0.5
    # the draw is informative: some kept edge's weight changes with pruning
    assert any(deg_u[u] * deg_i[i] != full_u[u] * full_i[i] for u, i in kept)
    assert torch.allclose(dense, want, atol=1e-6)
    assert torch.allclose(r_iu.to_dense(), want.T, atol=1e-6)

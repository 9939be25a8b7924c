"""The PyG backend of graph propagation (``model.graph_backend=pyg``): the same graphs as
:mod:`mrs.graph`, built and propagated with torch_geometric instead of our own CSR code.

* the user-item graph is one homogeneous ``(U+I)``-node graph with both edge directions
  (:func:`torch_geometric.utils.to_undirected`), normalised by PyG's
  :func:`~torch_geometric.nn.conv.gcn_norm.gcn_norm` without self-loops:

  .. math::
      \\hat{A}_{ij} = \\frac{1}{\\sqrt{d_i d_j}} \\quad \\text{for } (i, j) \\in E,

  the same :math:`D^{-1/2} A D^{-1/2}` as :func:`mrs.graph.bipartite_blocks`;
* one layer :math:`\\hat{A} x` is :class:`~torch_geometric.nn.conv.LGConv` on a
  :class:`~torch_geometric.EdgeIndex` sorted by target, run as PyG's fused sparse-dense matmul
  (:meth:`EdgeIndex.matmul`, whose backward uses the transposed index PyG caches) rather than a
  gather of ``E x r`` messages and a scatter (LGConv's default on an edge list; the benchmark
  ``experiments/benchmarks/bench_graph_backend.py`` times both).

Not the default: with ``mrs train``'s process settings a Sports LightGCN epoch took longer with
this backend than with our CSR blocks (``experiments/benchmarks/README.md``).

torch_geometric is imported only by this module, and this module only when a model propagates
with PyG, so ``mf`` and ``csr`` runs never pay for importing it. With ``torch-scatter``
installed, PyG's scatter-based paths use it; the fused path does not scatter.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_undirected


class FusedLGConv(LGConv):
    """:class:`LGConv` (``normalize=False``: the weights are precomputed) that propagates an
    :class:`EdgeIndex` sorted by target as one sparse-dense matmul, as PyG's own ``GraphConv``
    does; ``LGConv`` itself would gather and scatter per edge."""

    SUPPORTS_FUSED_EDGE_INDEX = True

    def __init__(self) -> None:
        super().__init__(normalize=False)

    def message_and_aggregate(self, edge_index: EdgeIndex, x: Tensor,  # type: ignore[override]
                              edge_weight: Tensor | None) -> Tensor:
        # out[target] = Σ_source w · x[source]: the transposed (source x target) matrix times x
        return edge_index.matmul(x, input_value=edge_weight, transpose=True)


class EdgeGraph(nn.Module):
    """A fixed weighted graph as a PyG :class:`EdgeIndex` ``(2, E)`` (source, target), sorted by
    target, plus its weights ``(E,)``; ``forward(x)`` is ``A @ x`` with ``A[target, source] = w``.

    Both are non-persistent buffers: they follow ``.to()`` and deep copies (with PyG's cached
    compressed indices) and are rebuilt from data, never checkpointed.
    """

    def __init__(self, edge_index: EdgeIndex, edge_weight: Tensor):
        super().__init__()
        if not edge_index.is_sorted_by_col:
            raise ValueError("EdgeGraph: the EdgeIndex must be sorted by target (sort_by('col'))")
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_weight", edge_weight, persistent=False)
        self.conv = FusedLGConv()

    @classmethod
    def from_edges(cls, source: Tensor, target: Tensor, weight: Tensor, n: int) -> "EdgeGraph":
        """``A[target, source] = weight`` on ``n`` nodes. Square only: PyG 2.8's backward of the
        transposed matmul gives a rectangular matrix the wrong shape (our graphs are square)."""
        ei = EdgeIndex(torch.stack([source, target]).long(), sparse_size=(n, n))
        ei, perm = ei.sort_by("col")
        return cls(ei.fill_cache_(), weight[perm].float())

    @classmethod
    def from_csr(cls, a: Tensor) -> "EdgeGraph":
        """A square CSR matrix ``A (n, n)`` (e.g. the item-item kNN graph, not symmetric): ``A @ x``
        sums the columns' rows into each row, so the columns are the sources."""
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"EdgeGraph.from_csr: a square matrix is needed, got {tuple(a.shape)}")
        crow = a.crow_indices()
        row = torch.repeat_interleave(torch.arange(a.shape[0], device=crow.device), crow.diff())  # (nnz,)
        return cls.from_edges(a.col_indices(), row, a.values(), a.shape[0])

    @classmethod
    def bipartite(cls, users: Tensor, items: Tensor, n_users: int, n_items: int) -> "EdgeGraph":
        """The normalised user-item graph over ``U + I`` nodes (users first) from deduplicated
        ``(user, item)`` edges: both directions, ``gcn_norm`` weights ``1/sqrt(d_u d_i)``.
        Isolated nodes (cold items) have no edges, so they propagate zeros."""
        n = n_users + n_items
        ei = to_undirected(torch.stack([users.long(), items.long() + n_users]), num_nodes=n)  # (2, 2E)
        ei, w = gcn_norm(ei, None, n, add_self_loops=False)
        return cls.from_edges(ei[0], ei[1], w, n)

    @classmethod
    def bipartite_from_block(cls, r_ui: Tensor) -> "EdgeGraph":
        """:meth:`bipartite` on the edges of a user-item CSR block ``R̂ (U, I)`` (its values are
        recomputed by ``gcn_norm`` from the structure: same graph, PyG's normalisation)."""
        crow = r_ui.crow_indices()
        users = torch.repeat_interleave(torch.arange(r_ui.shape[0], device=crow.device), crow.diff())
        return cls.bipartite(users, r_ui.col_indices(), r_ui.shape[0], r_ui.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        """``A @ x``: ``(n, r) -> (n, r)``."""
        with warnings.catch_warnings():  # torch's "sparse support is in beta" / invariant-check notices
            warnings.simplefilter("ignore", UserWarning)
            return self.conv(x, self.edge_index, self.edge_weight)


def lightgcn(adj: EdgeGraph, user_ego: Tensor, item_ego: Tensor, layers: int) -> tuple[Tensor, Tensor]:
    """The mean of ``layers + 1`` LightGCN layers ``E^(k+1) = Â E^(k)`` on the ``(U+I)``-node graph
    ``adj`` from :meth:`EdgeGraph.bipartite`: ``(U, r), (I, r) -> (U, r), (I, r)``."""
    x = torch.cat([user_ego, item_ego])  # (U+I, r)
    s = x
    for _ in range(layers):
        x = adj(x)
        s = s + x
    s = s / (layers + 1)
    return s[:user_ego.shape[0]], s[user_ego.shape[0]:]

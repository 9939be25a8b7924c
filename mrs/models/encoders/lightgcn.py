"""LightGCN (He et al., SIGIR 2020) and the fixed sparse graphs encoders hold."""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from mrs import graph
from mrs.models.base import ENCODERS, BuildContext, Encoder

if TYPE_CHECKING:
    from mrs.graph_pyg import EdgeGraph

GraphBackend = Literal["csr", "pyg"]


def pyg_backend() -> ModuleType:
    """:mod:`mrs.graph_pyg`, imported on first use: runs that never propagate with PyG (mf, csr)
    do not pay for importing it."""
    from mrs import graph_pyg

    return graph_pyg


class CSR(nn.Module):
    """A fixed sparse CSR matrix held as three dense, non-persistent buffers (row pointers,
    columns, values): the module deep-copies, moves between devices and saves like any other
    (sparse CSR buffers do not deep-copy), and is rebuilt from data, not checkpointed.
    ``csr()`` wraps the buffers as a CSR tensor (no copy)."""

    def __init__(self, a: Tensor):
        super().__init__()
        self.shape = tuple(a.shape)
        self.register_buffer("crow", a.crow_indices(), persistent=False)
        self.register_buffer("col", a.col_indices(), persistent=False)
        self.register_buffer("val", a.values(), persistent=False)

    def csr(self) -> Tensor:
        return graph.csr_from_parts(self.crow, self.col, self.val, self.shape)


class SparseMatMul(nn.Module):
    """``A @ x`` for a fixed CSR ``A`` with its transpose precomputed for the backward pass
    (:func:`mrs.graph.spmm`); the csr backend's counterpart of :class:`mrs.graph_pyg.EdgeGraph`."""

    def __init__(self, a: Tensor):
        super().__init__()
        self.a, self.a_t = CSR(a), CSR(graph.transpose(a))

    def forward(self, x: Tensor) -> Tensor:
        return graph.spmm(self.a.csr(), x, self.a_t.csr())


def sparse_matmul(a: Tensor, backend: GraphBackend) -> nn.Module:
    """The module computing ``a @ x`` (``a`` CSR) with the chosen backend."""
    return pyg_backend().EdgeGraph.from_csr(a) if backend == "pyg" else SparseMatMul(a)


@ENCODERS.register("lightgcn", rank=1)
class LightGCNEncoder(Encoder):
    r"""LightGCN: the mean of K parameter-free propagation layers over the normalised graph (He et al., SIGIR 2020).

    .. math::
        \mathbf{E}^{(k+1)} = \hat{A}\, \mathbf{E}^{(k)}, \qquad
        \mathbf{E} = \sum_{k=0}^{K} \alpha_k \mathbf{E}^{(k)}, \quad \alpha_k = \frac{1}{K+1}

    with :math:`\mathbf{E}^{(0)} = [\text{user\_ego}; \text{item\_ego}]` and
    :math:`\hat{A} = D^{-1/2} A D^{-1/2}`. :math:`\hat{A}` is bipartite, so one layer is
    :math:`\mathbf{U}^{(k+1)} = \hat{R} \mathbf{I}^{(k)}`,
    :math:`\mathbf{I}^{(k+1)} = \hat{R}^\top \mathbf{U}^{(k)}`, with the two blocks from
    :func:`mrs.graph.bipartite_blocks` (no ``(U+I, r)`` concatenation per step).

    ``backend="pyg"`` (``model.graph_backend``) propagates the same graph with PyG: one
    ``(U+I)``-node :class:`~torch_geometric.EdgeIndex` normalised by ``gcn_norm``, one ``LGConv``
    per layer (:mod:`mrs.graph_pyg`); same embeddings and gradients
    (``tests/models/test_graph_backend.py``). ``csr`` is the default: faster per Sports epoch
    (``experiments/benchmarks/README.md``).

    Args:
        r_ui: ``R̂ (U, I)`` sparse CSR. r_iu: ``R̂ᵀ (I, U)`` sparse CSR.
        layers: K. backend: ``csr`` (our CSR blocks) or ``pyg`` (the graph taken from ``r_ui``'s edges).
    """

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, backend: GraphBackend = "csr"):
        super().__init__()
        if backend not in ("csr", "pyg"):
            raise ValueError(f"graph backend must be 'csr' or 'pyg', got {backend!r}")
        self.backend = backend
        self.layers = layers
        if backend == "pyg":
            self.adj = pyg_backend().EdgeGraph.bipartite_from_block(r_ui)
        else:
            self.r_ui, self.r_iu = CSR(r_ui), CSR(r_iu)

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "LightGCNEncoder":
        return cls(*graph.bipartite_blocks(ctx.users, ctx.items, ctx.n_users, ctx.n_items), cfg.layers,
                   backend=cfg.graph_backend)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return cfg.layers > 0  # with no layer, item outputs are the item ego rows alone

    def graph(self) -> "tuple[Tensor, Tensor] | EdgeGraph":
        """The graph propagated: ``(R̂, R̂ᵀ)`` as CSR (csr backend), or the ``(U+I)``-node
        :class:`EdgeGraph` (pyg)."""
        return self.adj if self.backend == "pyg" else (self.r_ui.csr(), self.r_iu.csr())

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        if self.backend == "pyg":
            return pyg_backend().lightgcn(self.graph(), user_ego, item_ego, self.layers)
        r_ui, r_iu = self.graph()
        u, i, su, si = user_ego, item_ego, user_ego, item_ego
        for _ in range(self.layers):
            u, i = graph.spmm(r_ui, i, r_iu), graph.spmm(r_iu, u, r_ui)  # (U, r), (I, r)
            su, si = su + u, si + i
        return su / (self.layers + 1), si / (self.layers + 1)

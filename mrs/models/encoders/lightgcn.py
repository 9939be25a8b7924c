"""LightGCN (He et al., SIGIR 2020) and the fixed sparse graphs encoders hold."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mrs import graph
from mrs.models.base import ENCODERS, BuildContext, Encoder


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

    Args:
        r_ui: ``R̂ (U, I)`` sparse CSR. r_iu: ``R̂ᵀ (I, U)`` sparse CSR.
        layers: K.
    """

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int):
        super().__init__()
        self.r_ui, self.r_iu = CSR(r_ui), CSR(r_iu)
        self.layers = layers

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "LightGCNEncoder":
        return cls(*graph.bipartite_blocks(ctx.users, ctx.items, ctx.n_users, ctx.n_items), cfg.layers)

    def graph(self) -> tuple[Tensor, Tensor]:
        return self.r_ui.csr(), self.r_iu.csr()

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        r_ui, r_iu = self.graph()
        u, i, su, si = user_ego, item_ego, user_ego, item_ego
        for _ in range(self.layers):
            u, i = graph.spmm(r_ui, i, r_iu), graph.spmm(r_iu, u, r_ui)  # (U, r), (I, r)
            su, si = su + u, si + i
        return su / (self.layers + 1), si / (self.layers + 1)

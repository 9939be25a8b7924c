"""Phase 3: encoders. Each maps the ego embeddings ``(user_ego (U, r), item_ego (I, r))`` to the final
``(user_emb (U, r), item_emb (I, r))`` that the CP scorer consumes. Graphs come from ``mrs.graph``
and are passed in already built (no I/O, no graph construction beyond cheap resampling here).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mrs import graph


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


class MFEncoder(nn.Module):
    """Matrix factorisation: the ego embeddings are the output."""

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        return user_ego, item_ego


class LightGCNEncoder(nn.Module):
    r"""LightGCN (He et al., SIGIR 2020): parameter-free propagation over the normalised graph,
    then the mean of the layers:

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

    def graph(self) -> tuple[Tensor, Tensor]:
        return self.r_ui.csr(), self.r_iu.csr()

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        r_ui, r_iu = self.graph()
        u, i, su, si = user_ego, item_ego, user_ego, item_ego
        for _ in range(self.layers):
            u, i = graph.spmm(r_ui, i, r_iu), graph.spmm(r_iu, u, r_ui)  # (U, r), (I, r)
            su, si = su + u, si + i
        return su / (self.layers + 1), si / (self.layers + 1)


class FreedomEncoder(LightGCNEncoder):
    r"""FREEDOM (Zhou & Shen, MM 2023): LightGCN over a user-item graph whose edges are pruned
    afresh every epoch, plus the item representations propagated over a frozen item-item kNN
    graph :math:`S` built from content:

    .. math::
        \mathbf{h} = S^{L} \mathbf{E}_I^{(0)}, \qquad
        \mathbf{e}_i = \mathrm{LightGCN}(\tilde{A})_i + w\, \mathbf{h}_i

    :math:`\tilde{A}` keeps ``(1 - edge_drop)`` of the edges, sampled with probability
    ∝ ``edge_weights`` (``1/sqrt(d_u d_i)``, FREEDOM's degree-sensitive pruning, or GRCN-style
    content affinity), renormalised. Evaluation (``model.eval()``) uses the full graph, as FREEDOM does.

    Args:
        r_ui, r_iu: the full normalised graph's blocks. users/items: train edges (deduplicated).
        edge_weights: per-edge sampling weights (E,). edge_drop: fraction dropped per epoch.
        item_adj: ``(I, I)`` kNN graph or ``None`` (no content: pruned LightGCN only).
        item_layers: L. item_weight: w.
    """

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, users: Tensor, items: Tensor,
                 edge_weights: Tensor, edge_drop: float, item_adj: Tensor | None, item_layers: int = 1,
                 item_weight: float = 1.0):
        super().__init__(r_ui, r_iu, layers)
        self.n_users, self.n_items = r_ui.shape
        self.edge_drop = edge_drop
        self.item_layers, self.item_weight = item_layers, item_weight
        self.register_buffer("users", users, persistent=False)
        self.register_buffer("items", items, persistent=False)
        self.register_buffer("edge_weights", edge_weights, persistent=False)
        self.item_adj = None if item_adj is None else CSR(item_adj)
        self.item_adj_t = None if item_adj is None else CSR(graph.transpose(item_adj))
        self.pruned_ui: CSR | None = None  # this epoch's pruned graph (R̂, R̂ᵀ)
        self.pruned_iu: CSR | None = None

    def resample(self, generator: torch.Generator | None = None) -> None:
        """Draw this epoch's pruned graph (called from ``on_epoch_start``)."""
        if self.edge_drop <= 0:
            return
        r_ui, r_iu = graph.pruned_blocks(self.users.cpu(), self.items.cpu(), self.n_users, self.n_items,
                                         self.edge_weights.cpu(), self.edge_drop, generator)
        device = self.users.device
        self.pruned_ui, self.pruned_iu = CSR(r_ui).to(device), CSR(r_iu).to(device)

    def graph(self) -> tuple[Tensor, Tensor]:
        if self.training and self.edge_drop > 0:
            if self.pruned_ui is None:  # no on_epoch_start yet: draw from the global RNG
                self.resample()
            return self.pruned_ui.csr(), self.pruned_iu.csr()  # submodules: they follow .to()
        return self.r_ui.csr(), self.r_iu.csr()

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        user_emb, item_emb = super().forward(user_ego, item_ego)
        if self.item_adj is not None and self.item_weight != 0:
            s, s_t = self.item_adj.csr(), self.item_adj_t.csr()
            h = item_ego
            for _ in range(self.item_layers):
                h = graph.spmm(s, h, s_t)  # (I, r)
            item_emb = item_emb + self.item_weight * h
        return user_emb, item_emb

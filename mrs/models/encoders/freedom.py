"""FREEDOM (Zhou & Shen, MM 2023): LightGCN on a pruned user-item graph plus a frozen item-item kNN graph."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.models.base import ENCODERS, BuildContext
from mrs.models.encoders.lightgcn import CSR, GraphBackend, LightGCNEncoder, pyg_backend, sparse_matmul

log = logging.getLogger(__name__)


@ENCODERS.register("freedom", rank=2)
class FreedomEncoder(LightGCNEncoder):
    r"""FREEDOM: LightGCN on an edge-pruned graph plus a frozen item-item kNN graph from content.

    LightGCN over a user-item graph whose edges are pruned afresh every epoch, plus the item
    representations propagated over a frozen item-item kNN graph :math:`S` built from content:

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
        item_layers: L. item_weight: w. backend: ``csr`` | ``pyg`` for both graphs (``model.graph_backend``).
    """

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, users: Tensor, items: Tensor,
                 edge_weights: Tensor, edge_drop: float, item_adj: Tensor | None, item_layers: int = 1,
                 item_weight: float = 1.0, backend: GraphBackend = "csr"):
        super().__init__(r_ui, r_iu, layers, backend)
        self.n_users, self.n_items = r_ui.shape
        self.edge_drop = edge_drop
        self.item_layers, self.item_weight = item_layers, item_weight
        self.register_buffer("users", users, persistent=False)
        self.register_buffer("items", items, persistent=False)
        self.register_buffer("edge_weights", edge_weights, persistent=False)
        self.item_adj = None if item_adj is None else sparse_matmul(item_adj, backend)  # x -> S x
        self.pruned_ui: CSR | None = None  # this epoch's pruned graph (R̂, R̂ᵀ), csr backend
        self.pruned_iu: CSR | None = None
        self.pruned_adj: nn.Module | None = None  # the same graph as a PyG EdgeGraph, pyg backend

    @classmethod
    def build_artifacts(cls, cfg, ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        """The frozen item-item kNN graph (cached in ``cache_dir`` by the features' checksum and k)."""
        content = _content(ctx)
        if content is None:
            return {}
        # Cosine on the concatenation of unit-normalised modalities = the mean of the
        # per-modality cosines, so the frozen graph reflects every modality equally.
        return {"item_adj": graph.load_or_build_knn(content, cfg.knn_k, cache_dir)}

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "FreedomEncoder":
        users, items, n_users, n_items = ctx.users, ctx.items, ctx.n_users, ctx.n_items
        content = _content(ctx)
        if cfg.filtration == "content":
            if content is None:
                raise MrsError("model.filtration='content' needs item features (none were given)")
            weights = graph.affinity_keep_weights(graph.content_affinity(users, items, n_users, content),
                                                  cfg.filtration_temp)
        else:
            weights = graph.edge_keep_probs(users, items, n_users, n_items)
        if content is None:
            log.warning("freedom without item features: no item-item graph (pruned LightGCN only)")
            item_adj = None
        else:
            item_adj = ctx.artifacts.get("item_adj")
            if item_adj is None:  # not prepared by the caller: build in memory (never cached here)
                item_adj = cls.build_artifacts(cfg, ctx, None)["item_adj"]
        r_ui, r_iu = graph.bipartite_blocks(users, items, n_users, n_items)
        return cls(r_ui, r_iu, cfg.layers, users, items, weights, cfg.edge_drop, item_adj,
                   cfg.item_layers, cfg.item_graph_weight, backend=cfg.graph_backend)

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Draw this epoch's pruned graph: the only place the graph is resampled."""
        self.resample(generator)

    def resample(self, generator: torch.Generator) -> None:
        """Draw a pruned graph from ``generator`` (``on_epoch_start`` calls it each epoch)."""
        if self.edge_drop <= 0:
            return
        r_ui, r_iu = graph.pruned_blocks(self.users.cpu(), self.items.cpu(), self.n_users, self.n_items,
                                         self.edge_weights.cpu(), self.edge_drop, generator)
        device = self.users.device
        if self.backend == "pyg":  # the same draw, so both backends train on the same graphs
            self.pruned_adj = pyg_backend().EdgeGraph.bipartite_from_block(r_ui).to(device)
        else:
            self.pruned_ui, self.pruned_iu = CSR(r_ui).to(device), CSR(r_iu).to(device)

    def graph(self) -> "tuple[Tensor, Tensor] | nn.Module":
        if self.training and self.edge_drop > 0:
            # a training forward pass must not draw from any RNG: on_epoch_start draws the graph
            if self.pruned_ui is None and self.pruned_adj is None:
                raise RuntimeError("FreedomEncoder: call on_epoch_start(epoch, generator) before a "
                                   "training forward pass (it draws the epoch's pruned graph)")
            if self.backend == "pyg":
                return self.pruned_adj
            return self.pruned_ui.csr(), self.pruned_iu.csr()  # submodules: they follow .to()
        return super().graph()

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        user_emb, item_emb = super().forward(user_ego, item_ego)
        if self.item_adj is not None and self.item_weight != 0:
            h = item_ego
            for _ in range(self.item_layers):
                h = self.item_adj(h)  # (I, r)
            item_emb = item_emb + self.item_weight * h
        return user_emb, item_emb


def _content(ctx: BuildContext) -> Tensor | None:
    """The concatenated unit-normalised modalities ``(I, Σd)``, or ``None`` without features."""
    return torch.cat(list(ctx.features.values()), dim=1) if ctx.features else None

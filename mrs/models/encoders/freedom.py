"""FREEDOM (Zhou & Shen, MM 2023): LightGCN on a pruned user-item graph plus a frozen item-item kNN graph."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.knn import KnnOptions
from mrs.losses import bpr_loss
from mrs.models.base import ENCODERS, Batch, BuildContext
from mrs.models.encoders.lightgcn import CSR, GraphBackend, LightGCNEncoder, pyg_backend, sparse_matmul

log = logging.getLogger(__name__)


@dataclass
class FreedomOptions(KnnOptions):
    """``model.options.freedom.*``: how the item kNN graph is searched (:mod:`mrs.knn`)."""

    plugin: ClassVar[str] = "freedom"


@ENCODERS.register("freedom", rank=2)
class FreedomEncoder(LightGCNEncoder):
    r"""FREEDOM: LightGCN on an edge-pruned graph plus a frozen item-item kNN graph from content.

    As published (enoche/FREEDOM ``src/models/freedom.py``): LightGCN over a user-item graph whose
    edges are pruned afresh every epoch, plus the item input propagated over a frozen item-item
    graph :math:`S = \sum_m w_m S_m` (one kNN graph per modality, self included, mixed
    ``0.1·image + 0.9·text``; :func:`mrs.graph.freedom_knn_adj`):

    .. math::
        \mathbf{h} = S^{L} \mathbf{E}_I^{(0)}, \qquad
        \mathbf{e}_i = \mathrm{LightGCN}(\tilde{A})_i + w\, \mathbf{h}_i

    :math:`\mathbf{E}_I^{(0)}` is the encoder's item input: with ``model.fusion=none`` (FREEDOM's
    setting) the ID embeddings, as in the original. Per-modality BPR terms (``aux_losses``):

    .. math::
        \mathcal{L} = \mathrm{BPR}(u, e_i, e_j) + \lambda_m \sum_m \mathrm{BPR}(u, W_m x^m_i, W_m x^m_j)

    with :math:`x^m` the modality's features (trainable copies with ``freedom_tune_features``,
    as the original's ``nn.Embedding.from_pretrained(freeze=False)``) and :math:`u` the
    propagated user row (the CP modes are not folded in: the terms align users with content).

    :math:`\tilde{A}` keeps ``(1 - edge_drop)`` of the edges, sampled with probability
    ∝ ``edge_weights`` (``1/sqrt(d_u d_i)``, FREEDOM's degree-sensitive pruning, or GRCN-style
    content affinity), renormalised. Evaluation (``model.eval()``) uses the full graph, as FREEDOM does.

    Args:
        r_ui, r_iu: the full normalised graph's blocks. users/items: train edges (deduplicated).
        edge_weights: per-edge sampling weights (E,). edge_drop: fraction dropped per epoch.
        item_adj: ``(I, I)`` kNN graph or ``None`` (no content: pruned LightGCN only).
        item_layers: L. item_weight: w. backend: ``csr`` | ``pyg`` for both graphs (``model.graph_backend``).
        modality_features: ``{m: (I, d_m)}`` for the per-modality BPR terms (empty: none).
        modality_bpr_weight: λ_m (the original's ``reg_weight``). dim: r. tune_features: train
        the feature copies.

    Options (``model.options.freedom.*``, :class:`FreedomOptions`): ``knn_search`` = ``auto``
    (default: exact search up to 200,000 present items per modality, faiss IVF above) | ``exact`` |
    ``ivf``; ``knn_nprobe`` (16), ``knn_nlist`` (0 = 4·sqrt(P)). Time, memory and recall of IVF at
    100K and 1M × 384: experiments/benchmarks/README.md ("FREEDOM's item kNN graph").
    """

    Options = FreedomOptions

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, users: Tensor, items: Tensor,
                 edge_weights: Tensor, edge_drop: float, item_adj: Tensor | None, item_layers: int = 1,
                 item_weight: float = 1.0, backend: GraphBackend = "csr", *,
                 modality_features: dict[str, Tensor] | None = None, modality_bpr_weight: float = 0.0,
                 dim: int = 0, tune_features: bool = False):
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
        feats = modality_features if modality_bpr_weight > 0 else None
        self.modality_bpr_weight = modality_bpr_weight
        self.modality_names = list(feats or {})
        # by position: modality names may contain '.'; (I, d_m) each, W_m: d_m -> r
        self.modality_feats = nn.ParameterList(
            [nn.Parameter(x.float().clone(), requires_grad=tune_features) for x in (feats or {}).values()])
        self.modality_proj = nn.ModuleList([nn.Linear(x.shape[1], dim) for x in (feats or {}).values()])
        for proj in self.modality_proj:  # u·b cancels in BPR's pos - neg: a dead parameter in the
            proj.bias.requires_grad_(False)  # original too; frozen (kept for old checkpoints)

    @classmethod
    def build_artifacts(cls, cfg, ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        """The frozen item-item kNN graph (cached in ``cache_dir`` by features, masks, weights, k and
        the search kind and parameters)."""
        if not ctx.features:
            return {}
        search = cls.options(cfg).search()
        present = {m: ctx.present.get(m, torch.ones(ctx.n_items, dtype=torch.bool)) for m in ctx.features}
        if cfg.knn_graph == "concat":
            # the earlier variant: one graph over the concatenated unit-normalised modalities
            # (cosine = mean of the per-modality cosines), self excluded; an item is present
            # when it has any modality (absent modalities of such items are filled rows)
            any_present = torch.stack(list(present.values())).any(0)
            return {"item_adj": graph.load_or_build_knn(_content(ctx), cfg.knn_k, cache_dir, any_present,
                                                             search)}
        weights = modality_weights(list(ctx.features), cfg.mm_image_weight)
        return {"item_adj": graph.load_or_build_freedom_knn(ctx.features, present, cfg.knn_k, weights, cache_dir,
                                                                     search)}

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
                   cfg.item_layers, cfg.item_graph_weight, backend=cfg.graph_backend, modality_features=ctx.features,
                   modality_bpr_weight=cfg.modality_bpr_weight, dim=cfg.dim,
                   tune_features=cfg.freedom_tune_features)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return True  # the modality BPR terms read the user rows even without propagation layers

    @property
    def needs_negatives(self) -> bool:  # the modality BPR terms compare a positive with a negative
        return bool(self.modality_names)

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """FREEDOM's ``reg_weight · Σ_m BPR(u, W_m x^m_pos, W_m x^m_neg)`` (none when the weight is 0)."""
        if not self.modality_names:
            return {}
        # (B, r): the first block (the whole row unless late fusion adds per-modality blocks)
        u = user_emb[batch.users, :self.modality_proj[0].out_features]
        total = u.new_zeros(())
        for x, proj in zip(self.modality_feats, self.modality_proj):
            pos = (u * proj(x[batch.pos])).sum(-1)  # (B,)
            neg = (u.unsqueeze(1) * proj(x[batch.neg.reshape(len(u), -1)])).sum(-1)  # (B, K)
            total = total + bpr_loss(pos, neg.squeeze(1) if batch.neg.dim() == 1 else neg)
        return {"modality_bpr": self.modality_bpr_weight * total}

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


def modality_weights(names: list[str], image_weight: float) -> dict[str, float]:
    """FREEDOM's mixing weights: ``image_weight`` (``mm_image_weight``) over the modalities whose
    store name starts with ``image``, ``1 - image_weight`` over the rest, split equally within
    each group; a group that is absent leaves the whole weight to the other."""
    image = [m for m in names if m.startswith("image")]
    other = [m for m in names if m not in image]
    if not image or not other:
        return {m: 1.0 / len(names) for m in names}
    return {**{m: image_weight / len(image) for m in image}, **{m: (1 - image_weight) / len(other) for m in other}}


def _content(ctx: BuildContext) -> Tensor | None:
    """The concatenated unit-normalised modalities ``(I, Σd)``, or ``None`` without features."""
    return torch.cat(list(ctx.features.values()), dim=1) if ctx.features else None

"""MGCN (Yu et al., MM 2023): LightGCN plus modality item-item views purified by behaviour, fused by attention."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mrs import graph
from mrs.knn import KnnOptions
from mrs.losses import info_nce
from mrs.models.base import ENCODERS, Batch, BuildContext
from mrs.models.encoders.lightgcn import LightGCNEncoder, SparseMatMul


@dataclass
class MGCNOptions(KnnOptions):
    """``model.options.mgcn.*`` (and the kNN search keys of :class:`mrs.knn.KnnOptions`)."""

    plugin: ClassVar[str] = "mgcn"
    cl_loss: float = 1e-3  # MMRec's cl_loss, the InfoNCE weight (MGCN.yaml grid 0.001 | 0.01 | 0.1: the first)
    cl_temp: float = 0.2  # InfoNCE temperature (MMRec hard-codes 0.2)
    reg_weight: float = 1e-4  # MMRec's reg_weight on ½(‖u‖² + ‖i+‖² + ‖i-‖²) / B
    tune_features: bool = True  # train the feature copies (MMRec: from_pretrained(freeze=False))

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("cl_loss", "reg_weight"):
            if getattr(self, key) < 0:
                self.fail(key, ">= 0")
        if self.cl_temp <= 0:
            self.fail("cl_temp", "> 0")


def _gate(dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())


@ENCODERS.register("mgcn", rank=8)
class MGCNEncoder(LightGCNEncoder):
    r"""MGCN: a user-item LightGCN view plus one item-item view per modality, fused by attention.

    As MMRec (enoche/MMRec@e775373 ``src/models/mgcn.py``). Content view: the LightGCN mean
    :math:`(c_u, c_i)` of ``model.layers`` + 1 layers (MMRec's ``n_ui_layers`` = 2) over
    :math:`\hat A = D^{-1/2} A D^{-1/2}`. Behaviour-guided purifier and item-item view of
    modality :math:`m`, with :math:`E_I` the item ego rows (the ID table with ``fusion=none``):

    .. math::
        h_m = S_m^{L}\big(E_I \odot \sigma(W_m^g (T_m x^m + b_m) + b_m^g)\big), \qquad
        e_m = \begin{pmatrix} \hat R\, h_m \\ h_m \end{pmatrix}

    :math:`S_m` the frozen kNN graph of the raw features (each item's ``model.knn_k`` most
    cosine-similar items, self included, cosine-weighted, :math:`D^{-1/2} S D^{-1/2}` by row sums:
    :func:`mrs.graph.weighted_knn_adj`, MMRec's ``build_knn_normalized_graph(norm_type='sym')``),
    :math:`L` = ``model.item_layers`` (MMRec's ``n_layers`` = 1), :math:`\hat R` the user-item
    block of :math:`\hat A`, :math:`x^m` trainable feature copies. Behaviour-aware fuser, per node
    (users and items alike), with :math:`q(e) = w^\top \tanh(W e + b)` (``query_common``):

    .. math::
        a = \mathrm{softmax}_m\, q(e_m), \quad \bar e = \sum_m a_m e_m, \quad
        s = \frac{1}{M+1}\Big(\bar e + \sum_m \sigma(W^p_m c + b^p_m) \odot (e_m - \bar e)\Big),
        \quad \text{output} = c + s

    Loss: ``model.loss`` (BPR) plus ``emb_reg`` = ``reg_weight`` · ½(‖u‖² + ‖i+‖² + ‖i-‖²)/B on
    the output rows (MMRec divides by the configured batch size) and ``mgcn_cl`` =
    ``cl_loss`` · [InfoNCE(s_{i+}, c_{i+}) + InfoNCE(s_u, c_u)] over the batch rows (one
    direction, in-batch negatives, temperature ``cl_temp`` = 0.2). ``model.reg=0`` drops mrs's
    own L2. With CP modes the BPR term scores the query; the other terms read the plain rows.
    InfoNCE's negatives are the batch's other rows, so torchrun refuses ``cl_loss > 0``.

    Deviations: MMRec is written for exactly two modalities (image and text; a missing one
    crashes its ``forward``). Here :math:`M` is any number: with two it is MMRec's formula
    (:math:`1/(M+1) = 1/3`); with one, :math:`a = 1`, :math:`e_m - \bar e = 0`, so
    :math:`s = e_m/2` and the attention and preference gates, which would get no gradient, are
    not built. MMRec's graph is a dense ``I x I`` similarity and cached by ``knn_k`` alone; here
    the search is bounded (:mod:`mrs.knn`, ``knn_search``) and cached in ``build_artifacts``
    by features, mask, ``k`` and search. Items without a modality (``present``) have no edges in
    its graph. The graph is built from the input features (mrs's unit rows; cosine is the same).
    ``model.graph_backend`` is not read (CSR).
    """

    Options = MGCNOptions
    needs_features = True

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, item_layers: int, dim: int,
                 features: dict[str, Tensor], item_graphs: dict[str, Tensor], opts: MGCNOptions):
        super().__init__(r_ui, r_iu, layers)
        self.item_layers = item_layers
        self.cl_loss, self.cl_temp, self.reg_weight = opts.cl_loss, opts.cl_temp, opts.reg_weight
        names = list(features)  # by position: modality names may contain '.'
        self.feats = nn.ParameterList([nn.Parameter(features[m].float().clone(), requires_grad=opts.tune_features)
                                       for m in names])
        self.trs = nn.ModuleList([nn.Linear(features[m].shape[1], dim) for m in names])  # torch init, as MMRec
        self.item_adj = nn.ModuleList([SparseMatMul(item_graphs[m]) for m in names])
        self.gate = nn.ModuleList([_gate(dim) for _ in names])  # MMRec's gate_v, gate_t
        multi = len(names) > 1  # one modality: the attention and preference gates are constant
        self.query_common = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False)) \
            if multi else None
        self.prefer = nn.ModuleList([_gate(dim) for _ in names]) if multi else None  # gate_*_prefer
        self._views: tuple[Tensor, ...] | None = None  # (s_u, s_i, c_u, c_i, output) of the last training forward

    @classmethod
    def build_artifacts(cls, cfg, ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        """The frozen per-modality graphs :math:`S_m` (cached by features, mask, k and search)."""
        search = cls.options(cfg).search()
        return {"mgcn_item_graphs": graph.modality_knn_graphs(ctx.features, ctx.present_of, cfg.knn_k, cache_dir, search)}

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "MGCNEncoder":
        opts = cls.options(cfg)
        return cls(*graph.bipartite_blocks(ctx.users, ctx.items, ctx.n_users, ctx.n_items), cfg.layers,
                   cfg.item_layers, cls.width(cfg, ctx), ctx.features, cls.artifact(cfg, ctx, "mgcn_item_graphs"),
                   opts)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return True  # the regulariser and InfoNCE read the user rows even without propagation layers

    @property
    def needs_negatives(self) -> bool:  # the regulariser reads the negatives' rows
        return self.reg_weight > 0

    @property
    def aux_reads_whole_batch(self) -> bool:  # InfoNCE's negatives are the batch's other rows: torchrun refuses it
        return self.cl_loss > 0

    def _fuse(self, views: list[Tensor], content: Tensor) -> Tensor:
        """The behaviour-aware fuser's side rows ``s`` of one node type."""
        if self.query_common is None:
            return views[0] / 2
        a = torch.softmax(torch.cat([self.query_common(e) for e in views], dim=-1), dim=-1)  # (n, M)
        common = sum(a[:, j:j + 1] * e for j, e in enumerate(views))
        sep = sum(p(content) * (e - common) for p, e in zip(self.prefer, views))
        return (sep + common) / (len(views) + 1)

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        c_u, c_i = super().forward(user_ego, item_ego)
        r_ui, r_iu = self.graph()
        users, items = [], []
        for x, trs, gate, adj in zip(self.feats, self.trs, self.gate, self.item_adj):
            h = item_ego * gate(trs(x))  # behaviour-guided purifier
            for _ in range(self.item_layers):
                h = adj(h)
            users.append(graph.spmm(r_ui, h, r_iu))
            items.append(h)
        s_u, s_i = self._fuse(users, c_u), self._fuse(items, c_i)
        out = c_u + s_u, c_i + s_i
        self._views = (s_u, s_i, c_u, c_i, out[1]) if self.training and torch.is_grad_enabled() else None
        return out

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """MMRec's ``reg_weight`` regulariser and ``cl_loss`` InfoNCE terms for one batch."""
        terms = {}
        if self.reg_weight > 0:
            rows = (user_emb[batch.users], item_emb[batch.pos], item_emb[batch.neg.reshape(-1)])
            terms["emb_reg"] = self.reg_weight * 0.5 * sum(x.pow(2).sum() for x in rows) / len(batch.users)
        if self.cl_loss > 0:
            if self._views is None or self._views[4] is not item_emb:
                raise RuntimeError("MGCNEncoder.aux_losses needs the outputs of this step's training forward")
            s_u, s_i, c_u, c_i, _ = self._views
            self._views = None  # one step's graph: not kept past its loss
            u, i = batch.users, batch.pos
            terms["mgcn_cl"] = self.cl_loss * (info_nce(s_i[i], c_i[i], self.cl_temp)
                                               + info_nce(s_u[u], c_u[u], self.cl_temp))
        return terms

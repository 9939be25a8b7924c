"""LATTICE (Zhang et al., MM 2021): LightGCN plus item propagation over a learned item-item graph."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs import graph
from mrs.knn import KnnOptions
from mrs.models.base import ENCODERS, Batch, BuildContext, Encoder
from mrs.models.encoders.lightgcn import SparseMatMul


@dataclass
class LatticeOptions(KnnOptions):
    """``model.options.lattice.*`` (and the kNN search keys of :class:`mrs.knn.KnnOptions`)."""

    plugin: ClassVar[str] = "lattice"
    lambda_coeff: float = 0.9  # λ: item graph = (1 - λ) learned + λ original (MMRec's lambda_coeff)
    feat_embed_dim: int = 0  # width of the per-modality projections the learned graph is built on; 0 = model.dim
    reg_weight: float = 1e-4  # MMRec's reg_weight on ½(‖u‖² + ‖i+‖² + ‖i-‖²) / B (its grid: 0, 1e-5, 1e-4, 1e-3)
    tune_features: bool = True  # train the feature copies (MMRec: from_pretrained(freeze=False))
    # first_batch (MMRec): the learned graph takes gradients in the first batch of an epoch only
    # and is detached afterwards | every_batch: its edge weights are recomputed, with gradients,
    # in every batch (the neighbour lists stay the epoch's)
    graph_grad: Literal["first_batch", "every_batch"] = "first_batch"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.lambda_coeff <= 1.0:
            self.fail("lambda_coeff", "in [0, 1]")
        for key in ("feat_embed_dim", "reg_weight"):
            if getattr(self, key) < 0:
                self.fail(key, ">= 0")


@ENCODERS.register("lattice", rank=4)
class LatticeEncoder(Encoder):
    r"""LATTICE: a user-item GCN, plus the item ID rows propagated over a learned item-item graph.

    As MMRec (enoche/MMRec@e775373 ``src/models/lattice.py``, ``cf_model=lightgcn``): per modality
    :math:`m`, a frozen graph from the raw features and a graph learned from trainable projections,

    .. math::
        S_m = \mathcal{N}\big(\mathrm{kNN}_k(\cos(x^m))\big), \qquad
        \hat S_m = \mathrm{kNN}_k\big(\cos(W_m x^m + b_m)\big), \qquad
        \mathcal{N}(A) = D^{-1/2} A D^{-1/2},\ D = \mathrm{rowsum}(A)

    (:math:`\mathrm{kNN}_k` keeps each row's ``k`` largest cosines, self included, as weights),
    mixed with :math:`w = \mathrm{softmax}(a)` (``modal_weight``, :math:`a` starts at 0.5 each;
    one modality: :math:`w = 1` and no :math:`a`):

    .. math::
        A = (1 - \lambda)\, \mathcal{N}\big(\textstyle\sum_m w_m \hat S_m\big) + \lambda \sum_m w_m S_m,
        \qquad h = A^{L_i} E_I^{(0)}

    and the output

    .. math::
        (e_u, e_i) = \frac{1}{K+1}\sum_{k=0}^{K} \big(D^{-1}(\mathcal{A} + I)\big)^k
        \begin{pmatrix} E_U^{(0)} \\ E_I^{(0)} \end{pmatrix}, \qquad
        e_i \mathrel{+}= h_i / \|h_i\|

    with :math:`\mathcal{A}` the user-item adjacency **row-normalised with self-loops**
    (:func:`mrs.graph.rw_self_loop_blocks`, not LightGCN's symmetric one), :math:`K` =
    ``model.layers`` (MMRec: ``len(weight_size)`` = 2), :math:`L_i` = ``model.item_layers``
    (MMRec's ``n_layers`` = 1), ``k`` = ``model.knn_k``. :math:`x^m` are trainable copies of the
    features. Loss: ``model.loss`` (BPR) plus MMRec's regulariser
    :math:`\lambda_r \frac{1}{2B}(\|u_B\|^2 + \|i^+_B\|^2 + \|i^-_B\|^2)` on the output rows
    (``emb_reg``; MMRec divides by the configured batch size). ``model.reg=0`` drops mrs's own
    L2 on the ego rows, as MMRec has none. MMRec's ``ngcf`` and ``mf`` CF models are not ported
    (``mf`` is ``model.layers=0``).

    MMRec's schedule, kept: the learned graph's neighbour lists are searched at the start of each
    epoch (``on_epoch_start``: MMRec's ``pre_epoch_processing`` + first batch); the first training
    batch computes its weights **with gradients** (the only batch through which :math:`W_m`,
    :math:`x^m` and :math:`a` learn), and later batches of the epoch use it detached. Option
    ``graph_grad=every_batch`` recomputes the edge weights with gradients in every batch: with
    MMRec's schedule the projections see one batch of gradient per epoch, which we judge an
    accident of caching the graph, not a design. Evaluation rebuilds the graph from the current
    weights, as MMRec's ``full_sort_predict`` (``build_item_graph=True``).

    Memory: MMRec builds dense ``I x I`` similarities (its issue #22); here every kNN search is
    :func:`mrs.graph.search_edges` (bounded blocks, or faiss IVF: ``knn_search``), edge weights
    are computed on the ``I·k`` edges only, and the graphs are edge lists / CSR. Items without a
    modality (``present``) have no edges in that modality's graphs (MMRec has no such items).
    A row whose weights sum to <= 0 (all top-k cosines negative) gives MMRec's NaN/0 as well.
    """

    Options = LatticeOptions
    needs_features = True

    def __init__(self, users: Tensor, items: Tensor, n_users: int, n_items: int, layers: int,
                 features: dict[str, Tensor], present: dict[str, Tensor], original: dict[str, Tensor],
                 knn_k: int, feat_dim: int, item_layers: int, opts: LatticeOptions):
        super().__init__()
        self.n_items, self.layers, self.item_layers, self.knn_k = n_items, layers, item_layers, knn_k
        self.lambda_coeff, self.reg_weight, self.graph_grad = opts.lambda_coeff, opts.reg_weight, opts.graph_grad
        self.search = opts.search()
        p_ui, p_iu, s_u, s_i = graph.rw_self_loop_blocks(users, items, n_users, n_items)
        self.p_ui, self.p_iu = SparseMatMul(p_ui), SparseMatMul(p_iu)
        self.register_buffer("self_u", s_u[:, None], persistent=False)
        self.register_buffer("self_i", s_i[:, None], persistent=False)
        names = list(features)
        # by position: modality names may contain '.'
        self.feats = nn.ParameterList([nn.Parameter(features[m].float().clone(), requires_grad=opts.tune_features)
                                       for m in names])
        self.trs = nn.ModuleList([nn.Linear(features[m].shape[1], feat_dim) for m in names])  # torch init, as MMRec
        self.modal_weight = nn.Parameter(torch.full((len(names),), 0.5)) if len(names) > 1 else None
        for j, m in enumerate(names):
            coo = original[m].to_sparse_coo().coalesce()
            self.register_buffer(f"present_{j}", present[m].bool(), persistent=False)
            self.register_buffer(f"orig_row_{j}", coo.indices()[0], persistent=False)
            self.register_buffer(f"orig_col_{j}", coo.indices()[1], persistent=False)
            self.register_buffer(f"orig_val_{j}", coo.values().float(), persistent=False)
        self.n_modalities = len(names)
        self._edges: list[tuple[Tensor, Tensor]] | None = None  # this epoch's learned neighbour lists
        self._fresh = False  # the next training forward is the epoch's first
        self._fixed: tuple[Tensor, ...] | None = None  # the epoch's detached graph: CSR parts and transpose

    @classmethod
    def build_artifacts(cls, cfg, ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        """The frozen per-modality graphs :math:`S_m` (cached by features, mask, k and search)."""
        search = cls.options(cfg).search()
        return {"lattice_original": graph.modality_knn_graphs(ctx.features, ctx.present_of, cfg.knn_k, cache_dir, search)}

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "LatticeEncoder":
        opts = cls.options(cfg)
        original = cls.artifact(cfg, ctx, "lattice_original")
        present = {m: ctx.present_of(m) for m in ctx.features}
        return cls(ctx.users, ctx.items, ctx.n_users, ctx.n_items, cfg.layers, ctx.features, present, original,
                   cfg.knn_k, opts.feat_embed_dim or cfg.dim, cfg.item_layers, opts)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return cfg.layers > 0

    @property
    def needs_negatives(self) -> bool:  # the regulariser reads the negatives' rows
        return self.reg_weight > 0

    def _projected(self) -> list[Tensor]:
        return [trs(x) for trs, x in zip(self.trs, self.feats)]  # (I, f) per modality

    def _neighbours(self, zs: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Each modality's kNN lists on its projections (bounded search; no gradient)."""
        dev = zs[0].device
        return [tuple(t.to(dev) for t in graph.search_edges(z.detach().cpu(), self.knn_k,
                                                            getattr(self, f"present_{j}").cpu(), True,
                                                            search=self.search))
                for j, z in enumerate(zs)]

    def _item_graph(self, zs: list[Tensor], edges: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
        """``A``'s edge list ``(row, col, val)`` (duplicates to be summed), differentiable in
        the projections, the feature copies and the modality weights."""
        w = F.softmax(self.modal_weight, 0) if self.modal_weight is not None else zs[0].new_ones(1)
        rows = [r for r, _ in edges]
        cols = [c for _, c in edges]
        learned = torch.cat([w[j] * graph.cosine_edge_values(z, r, c) for j, (z, (r, c)) in enumerate(zip(zs, edges))])
        lr, lc = torch.cat(rows), torch.cat(cols)
        learned = graph.laplacian_edge_values(lr, lc, learned, self.n_items)
        orig = [(getattr(self, f"orig_row_{j}"), getattr(self, f"orig_col_{j}"), w[j] * getattr(self, f"orig_val_{j}"))
                for j in range(self.n_modalities)]
        row = torch.cat([lr, *(o[0] for o in orig)])
        col = torch.cat([lc, *(o[1] for o in orig)])
        val = torch.cat([(1 - self.lambda_coeff) * learned, *(self.lambda_coeff * o[2] for o in orig)])
        return row, col, val

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Search this epoch's learned neighbour lists (no randomness: ``generator`` unused)."""
        with torch.no_grad():
            self._edges = self._neighbours(self._projected())
        self._fresh, self._fixed = True, None

    def _item_propagation(self, item_ego: Tensor) -> Tensor:
        """``h = A^{L_i} E_I^{(0)}`` with the graph the mode and MMRec's schedule call for."""
        if not self.training:  # MMRec's full_sort_predict: the graph from the current weights
            zs = self._projected()
            row, col, val = self._item_graph(zs, self._neighbours(zs))
            return self._propagate_edges(row, col, val, item_ego)
        if self._edges is None:
            raise RuntimeError("LatticeEncoder: call on_epoch_start(epoch, generator) before a training "
                               "forward pass (it searches the epoch's learned neighbour lists)")
        if self._fresh or self.graph_grad == "every_batch":
            row, col, val = self._item_graph(self._projected(), self._edges)
            adj = graph.to_csr(row, col, val.detach(), (self.n_items, self.n_items))  # MMRec: item_adj.detach()
            adj_t = graph.transpose(adj)
            self._fixed = (adj.crow_indices(), adj.col_indices(), adj.values(),
                           adj_t.crow_indices(), adj_t.col_indices(), adj_t.values())
            self._fresh = False
            return self._propagate_edges(row, col, val, item_ego)
        crow, c, v, crow_t, c_t, v_t = self._fixed
        shape = (self.n_items, self.n_items)
        a, a_t = graph.csr_from_parts(crow, c, v, shape), graph.csr_from_parts(crow_t, c_t, v_t, shape)
        h = item_ego
        for _ in range(self.item_layers):
            h = graph.spmm(a, h, a_t)
        return h

    def _propagate_edges(self, row: Tensor, col: Tensor, val: Tensor, h: Tensor) -> Tensor:
        for _ in range(self.item_layers):
            h = graph.edge_propagate(row, col, val, h, self.n_items)
        return h

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        h = self._item_propagation(item_ego)
        u, i, su, si = user_ego, item_ego, user_ego, item_ego
        for _ in range(self.layers):  # D^{-1}(A + I): u' = s_u u + P_ui i, i' = s_i i + P_iu u
            u, i = self.self_u * u + self.p_ui(i), self.self_i * i + self.p_iu(u)
            su, si = su + u, si + i
        return su / (self.layers + 1), si / (self.layers + 1) + F.normalize(h, dim=1)

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """MMRec's ``reg_weight · ½(‖u‖² + ‖i+‖² + ‖i-‖²) / B`` on the output rows."""
        if self.reg_weight <= 0:
            return {}
        rows = (user_emb[batch.users], item_emb[batch.pos], item_emb[batch.neg.reshape(-1)])
        return {"emb_reg": self.reg_weight * 0.5 * sum(x.pow(2).sum() for x in rows) / len(batch.users)}

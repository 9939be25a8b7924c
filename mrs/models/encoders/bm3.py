"""BM3 (Zhou et al., WWW 2023): LightGCN plus a shared predictor, trained by bootstrapping (no negatives)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.models.base import ENCODERS, Batch, BuildContext
from mrs.models.encoders.lightgcn import GraphBackend, LightGCNEncoder


@dataclass
class BM3Options:
    """``model.options.bm3.*`` (MMRec's BM3.yaml grid: dropout 0.3 | 0.5, reg_weight 0.1 | 0.01)."""

    dropout: float = 0.5  # p of the dropout that makes the targets (MMRec's dropout)
    reg_weight: float = 0.1  # weight of EmbLoss on the whole propagated tables
    cl_weight: float = 2.0  # weight of the four modality terms
    tune_features: bool = True  # train the feature copies (MMRec: from_pretrained(freeze=False))

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise MrsError(f"config key 'model.options.bm3.dropout' must be in [0, 1), got {self.dropout}")
        for key in ("reg_weight", "cl_weight"):
            if getattr(self, key) < 0:
                raise MrsError(f"config key 'model.options.bm3.{key}' must be >= 0, got {getattr(self, key)}")


@ENCODERS.register("bm3", rank=5)
class BM3Encoder(LightGCNEncoder):
    r"""BM3: LightGCN outputs through a shared linear predictor, trained without negatives.

    As MMRec (enoche/MMRec@e775373 ``src/models/bm3.py``), with :math:`(\bar u, \bar\imath)` the
    mean of ``model.layers`` + 1 LightGCN layers (symmetric normalisation, as
    :class:`~mrs.models.encoders.lightgcn.LightGCNEncoder`) and the item ID row added back,

    .. math::
        u^o = \bar u, \quad i^o = \bar\imath + E_I^{(0)}, \qquad
        \hat y_{ui} = p(u^o)^\top p(i^o), \quad p(x) = W_p x + b_p

    so the encoder's outputs are :math:`(p(u^o), p(i^o))` (the CP scorer folds the modes into
    the user side). Targets are dropped-out, detached copies :math:`u^t = \mathrm{drop}(u^o)`,
    :math:`i^t = \mathrm{drop}(i^o)`, :math:`t^t = \mathrm{drop}(T_t x^t)` (no target network:
    the online rows themselves), and with :math:`c(a, b) = 1 - \overline{\cos(a, b)}` over the
    batch's (user, positive) pairs:

    .. math::
        \mathcal{L} = c(p(u^o), i^t) + c(p(i^o), u^t)
          + \lambda_r \frac{\|U^o\| + \|I^o\|}{I}
          + \lambda_c \sum_{m} \big[c(p(T_m x^m), i^t) + c(p(T_m x^m), t^t_m)\big]

    where :math:`\|U^o\|, \|I^o\|` are the Frobenius norms (not squared) of the **whole**
    propagated tables divided by the number of items (MMRec's ``EmbLoss(u_online_ori,
    i_online_ori)``), :math:`T_m` a linear map (xavier-normal) of the trainable feature copy
    :math:`x^m`, and a missing modality's terms are absent (MMRec accepts a missing ``v_feat`` or
    ``t_feat``; with no features at all only the first three terms remain).

    Through the objective: BM3 replaces the ranking loss, so its ``default_loss`` is ``none``
    (:data:`mrs.losses.LOSSES`: a zero main loss, no negatives sampled, as MMRec's
    ``use_neg_sampling: False``) and ``model.loss=auto`` picks it; ``aux_losses`` returns the
    terms as ``bm3_cf`` (the two user/item terms), ``emb_reg`` and ``bm3_mm`` (the modality terms).
    Any other ``model.loss`` (``bpr``, ...) adds that ranking loss on top (not MMRec's).
    With CP modes, :math:`p(u^o)` in the first term is the query
    :math:`p(u^o) \odot \prod_j M_j[m_j]` (``batch.queries``), so the mode factors learn from
    it; the user target :math:`u^t` has no modes. ``model.reg`` adds mrs's L2 on the ego rows:
    ``model.reg=0`` is MMRec's loss exactly.

    Randomness: MMRec's ``F.dropout`` draws from the global RNG; here the masks come from a
    generator seeded once per epoch from the one ``on_epoch_start`` receives, one mask per
    distinct user / item of the batch (MMRec masks whole tables, then gathers rows: the same
    distribution, duplicates sharing a mask as there).

    The training forward keeps :math:`(u^o, i^o)` for ``aux_losses`` of the same step (the
    outputs are :math:`p(\cdot)` of them, which cannot be inverted).
    """

    Options = BM3Options
    default_loss = "none"

    def __init__(self, r_ui: Tensor, r_iu: Tensor, layers: int, dim: int, features: dict[str, Tensor],
                 opts: BM3Options, backend: GraphBackend = "csr"):
        super().__init__(r_ui, r_iu, layers, backend)
        self.predictor = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.predictor.weight)
        self.feats = nn.ParameterList([nn.Parameter(x.float().clone(), requires_grad=opts.tune_features)
                                       for x in features.values()])  # by position: names may contain '.'
        self.trs = nn.ModuleList([nn.Linear(x.shape[1], dim) for x in features.values()])
        for t in self.trs:
            nn.init.xavier_normal_(t.weight)
        self.dropout, self.reg_weight, self.cl_weight = opts.dropout, opts.reg_weight, opts.cl_weight
        self._online: tuple[Tensor, Tensor, Tensor] | None = None  # (u^o, i^o, item output) of the last training forward
        self._seed: int | None = None  # this epoch's dropout seed
        self._gen: torch.Generator | None = None

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "BM3Encoder":
        width = cls.width(cfg, ctx)  # R: the rows the user encoder and the scorer use
        return cls(*graph.bipartite_blocks(ctx.users, ctx.items, ctx.n_users, ctx.n_items), cfg.layers, width,
                   ctx.features, cls.options(cfg), backend=cfg.graph_backend)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return True  # the user terms read the user rows even without propagation layers

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        u, i = super().forward(user_ego, item_ego)
        i = i + item_ego
        out = self.predictor(u), self.predictor(i)
        self._online = (u, i, out[1]) if self.training and torch.is_grad_enabled() else None
        return out

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Seed this epoch's dropout masks from ``generator``."""
        self._seed, self._gen = int(torch.randint(0, 2 ** 62, (1,), generator=generator)), None

    def _drop(self, rows: Tensor, ids: Tensor) -> Tensor:
        """Detached ``dropout(rows)`` for rows gathered by ``ids``, one mask per distinct id
        (MMRec masks the whole table, then gathers: duplicates share a mask)."""
        rows = rows.detach()
        if self.dropout <= 0:
            return rows
        if self._seed is None:
            raise RuntimeError("BM3Encoder: call on_epoch_start(epoch, generator) before training "
                               "(it seeds the dropout of the targets)")
        if self._gen is None or self._gen.device != rows.device:
            self._gen = torch.Generator(device=rows.device).manual_seed(self._seed)
        uniq, inv = torch.unique(ids, return_inverse=True)
        keep = torch.rand(len(uniq), rows.shape[1], generator=self._gen, device=rows.device) >= self.dropout
        return rows * keep[inv] / (1.0 - self.dropout)

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """MMRec's ``calculate_loss`` over the batch's (user, positive) pairs (negatives unused)."""
        if self._online is None or self._online[2] is not item_emb:
            raise RuntimeError("BM3Encoder.aux_losses needs the outputs of this step's training forward")
        u_o, i_o, _ = self._online
        self._online = None  # one step's graph: not kept past its loss
        users, items = batch.users, batch.pos
        q = batch.queries if batch.queries is not None else user_emb[users]  # p(u^o) ⊙ modes
        u_t, i_t = self._drop(u_o[users], users), self._drop(i_o[items], items)

        def c(a: Tensor, b: Tensor) -> Tensor:
            return 1 - F.cosine_similarity(a, b, dim=-1).mean()

        terms = {"bm3_cf": c(q, i_t) + c(item_emb[items], u_t)}
        if self.reg_weight > 0:
            terms["emb_reg"] = self.reg_weight * (torch.linalg.norm(u_o) + torch.linalg.norm(i_o)) / i_o.shape[0]
        if len(self.feats) and self.cl_weight > 0:
            mm = q.new_zeros(())
            for x, trs in zip(self.feats, self.trs):
                f = trs(x[items])                        # T_m x^m of the batch's items
                online = self.predictor(f)
                mm = mm + c(online, i_t) + c(online, self._drop(f, items))
            terms["bm3_mm"] = self.cl_weight * mm
        return terms

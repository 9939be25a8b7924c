"""GRCN (Wei et al., MM 2020): the user-item graph refined by content attention, then an ID GCN on it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.models.base import ENCODERS, FUSIONS, BuildContext, Encoder
from mrs.models.encoders.mmgcn import IdRowsReg


@dataclass
class GRCNOptions:
    """``model.options.grcn.*`` (MMRec's GRCN.yaml: embedding_size 64, latent_embedding 64,
    n_layers 3; ``reg_weight`` grid 0.1 ... 1e-5)."""

    latent_dim: int = 0  # c: each modality's block of the output; 0 = R/(M+1) (MMRec's 64 + 2·64: model.dim=192)
    n_routing: int = 3  # routing iterations (MMRec's n_layers); they only act with route_users=true
    # false (MMRec): the routing messages flow user -> item (one-direction edge list) and the item rows
    # are discarded, so the user preferences are only normalised | true: users gather from their items
    route_users: bool = False
    reg_weight: float = 1e-4  # MMRec's reg_weight on its ID and preference terms

    def __post_init__(self) -> None:
        for key in ("latent_dim", "n_routing", "reg_weight"):
            if getattr(self, key) < 0:
                raise MrsError(f"config key 'model.options.grcn.{key}' must be >= 0, got {getattr(self, key)}")


class _ContentGCN(nn.Module):
    """One modality's graph (MMRec's ``CGCN``: ``has_norm=True``, ``has_act=False``)."""

    def __init__(self, n_users: int, feat_dim: int, c: int):
        super().__init__()
        self.n_users = n_users
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, c)))
        self.mlp = nn.Linear(feat_dim, c)
        nn.init.xavier_normal_(self.mlp.weight)

    def forward(self, feats: Tensor, src: Tensor, dst: Tensor, n_routing: int) -> tuple[Tensor, Tensor]:
        """``(x + x̂ (U+I, c), α (2E,))`` over the edges ``src -> dst`` of both directions."""
        f = F.normalize(F.leaky_relu(self.mlp(feats)), dim=1)
        p = F.normalize(self.preference, dim=1)
        e = src.numel() // 2
        s, d = src[e:], dst[e:]  # item -> user edges: the users' routing
        for _ in range(n_routing):
            x = torch.cat([p, f])
            a = graph.segment_softmax((x[d] * x[s]).sum(1), d, self.n_users)
            p = F.normalize(p + graph.edge_propagate(d, s, a, x, self.n_users), dim=1)
        x = torch.cat([p, f])
        alpha = graph.segment_softmax((x[dst] * x[src]).sum(1), dst, x.shape[0])
        return x + graph.edge_propagate(dst, src, alpha, x, x.shape[0]), alpha


@ENCODERS.register("grcn", rank=7)
class GRCNEncoder(IdRowsReg, Encoder):
    r"""GRCN: content-attention weights prune and weight the user-item graph an ID GCN runs on.

    As MMRec (enoche/MMRec@e775373 ``src/models/grcn.py``: ``weight_mode='confid'``,
    ``fusion_mode='concat'``, ``aggr_mode='add'``, ``has_norm``, no activation, no edge dropout).
    Per modality :math:`m`, with :math:`f^m = \mathrm{norm}(\sigma(W_m x^m + b_m))` (leaky ReLU,
    width :math:`c`), :math:`p^m = \mathrm{norm}(P_m)` and :math:`x = [p^m; f^m]`, attention over
    the edges :math:`j \to t` of both directions (softmax over each target's neighbours):

    .. math::
        \alpha^m_{jt} = \mathrm{softmax}_{j \in N(t)} \langle x_t, x_j \rangle, \qquad
        C^m_t = x_t + \sum_{j \in N(t)} \alpha^m_{jt}\, x_j

    The edge weights :math:`w_{jt} = \mathrm{ReLU}(\max_m \alpha^m_{jt}\, \kappa_{j m})`
    (:math:`\kappa` a learned confidence per node and modality; ReLU = GRCN's pruning) weight two
    sum-aggregation layers over the normalised ID rows :math:`e = \mathrm{norm}(E)`:

    .. math::
        e^1_t = \sum_{j \in N(t)} w_{jt}\, e_j, \quad e^2_t = \sum_{j \in N(t)} w_{jt}\, e^1_j,
        \qquad \mathrm{out} = [e + e^1 + e^2 ;\ C^1 ; \dots ; C^M]

    :math:`E` is the first :math:`R - Mc` columns of the ego rows (:math:`R` = ``model.dim``,
    ``c`` = ``latent_dim``, default :math:`R/(M+1)`: MMRec's 64 + 64 + 64 is ``model.dim=192``
    with two modalities; the other ego columns are not read and ``late`` fusion, whose content
    branches would be those columns, is refused). Loss: ``model.loss`` (BPR) plus ``emb_reg`` =
    :math:`\lambda\,[\overline{E_u^2 + E_i^2} + \overline{P_{image}^2} + \sum_m \overline{P_m[u]^2}]`
    (pairs of the batch; the whole image preference table, as MMRec's ``v_gcn`` only; the
    batch users' raw preference rows); MMRec's ``reg_confid_loss`` is computed there but never
    added, so :math:`\kappa` is not regularised. ``model.reg=0`` drops mrs's own L2 (MMRec: none).

    Routing (``n_routing`` iterations, MMRec's ``n_layers``) is meant to move each user's
    preference towards its items, :math:`p \leftarrow \mathrm{norm}(p + \sum_{i} \alpha_{iu} f_i)`.
    MMRec's routing passes messages along its one-direction edge list (user → item) and adds the
    *user* rows of the result, which are zero: it only re-normalises :math:`p`. That is the default
    (``route_users=false``); we judge it a bug, and ``route_users=true`` routes items → users.
    Fixed unconditionally: with text but no image, MMRec fails (it assigns ``conetent_rep``, a
    typo, and concatenates ``None``); here one modality of either kind works.

    Modalities: those named ``image*`` first (MMRec's ``v_feat``, whose preference table is
    regularised whole), then the others (``t_feat``). Features are mrs's unit rows (MMRec: raw);
    an item without a modality has a zero row. Ego rows: the model's tables (xavier-uniform;
    MMRec's ``id_embedding`` is xavier-normal). Attention and weighted sums are edge lists
    (:func:`mrs.graph.segment_softmax`, :func:`mrs.graph.edge_propagate`: PyG's scatter sums).
    """

    Options = GRCNOptions
    needs_features = True

    def __init__(self, users: Tensor, items: Tensor, n_users: int, features: dict[str, Tensor], c: int,
                 opts: GRCNOptions):
        super().__init__()
        self.n_users, self.c, self.reg_weight = n_users, c, opts.reg_weight
        self.n_routing = opts.n_routing if opts.route_users else 0  # MMRec's routing: no effect
        src, dst = graph.bipartite_edges(users, items, n_users)
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("dst", dst, persistent=False)
        names = sorted(features, key=lambda m: not m.startswith("image"))  # MMRec: v_gcn, then t_gcn
        self.image = [m.startswith("image") for m in names]
        for j, m in enumerate(names):  # by position: modality names may contain '.'
            self.register_buffer(f"feat_{j}", features[m].float(), persistent=False)
        self.branches = nn.ModuleList([_ContentGCN(n_users, features[m].shape[1], c) for m in names])
        n = n_users + features[names[0]].shape[0]
        self.confidence = nn.Parameter(nn.init.xavier_normal_(torch.empty(n, len(names))))  # κ

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "GRCNEncoder":
        opts = cls.options(cfg)
        if FUSIONS.get(cfg.fusion).blocks(ctx) > 1:
            raise MrsError(f"config key 'model.fusion': {cfg.fusion!r} gives one block per branch, and GRCN reads "
                           f"only the first columns of the ego rows; use none, concat, early or gated with grcn")
        width, m = cls.width(cfg, ctx), len(ctx.features)
        c = opts.latent_dim or width // (m + 1)
        if not 1 <= c or width - m * c < 1:
            raise MrsError(f"config key 'model.options.grcn.latent_dim' must leave an ID block: 1 <= {m}·c < "
                           f"model.dim={width}, got c={c}")
        return cls(ctx.users, ctx.items, ctx.n_users, ctx.features, c, opts)

    @property
    def needs_negatives(self) -> bool:  # the regulariser reads the negatives' ID rows
        return self.reg_weight > 0

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        d = user_ego.shape[1] - self.c * len(self.branches)  # the ID block
        reps, alphas = zip(*(b(getattr(self, f"feat_{j}"), self.src, self.dst, self.n_routing)
                             for j, b in enumerate(self.branches)))
        w = (torch.stack(alphas, 1) * self.confidence[self.src]).max(1).values.relu()  # (2E,)
        e = F.normalize(torch.cat([user_ego[:, :d], item_ego[:, :d]]), dim=1)
        e1 = graph.edge_propagate(self.dst, self.src, w, e, e.shape[0])
        e2 = graph.edge_propagate(self.dst, self.src, w, e1, e.shape[0])
        out = torch.cat([e + e1 + e2, *reps], dim=1)
        return self._outputs(out, user_ego[:, :d], item_ego[:, :d])

    def _preference_reg(self, users: Tensor) -> Tensor:
        """MMRec's ``reg_content_loss`` (the batch users' rows, every modality) plus the whole
        image preference table's mean square (``v_gcn`` only, in its ``reg_embedding_loss``)."""
        reg = torch.zeros((), device=users.device)
        for b, img in zip(self.branches, self.image):
            reg = reg + b.preference[users].pow(2).mean() + (b.preference.pow(2).mean() if img else 0.0)
        return reg

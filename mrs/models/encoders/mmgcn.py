"""MMGCN (Wei et al., MM 2019): one graph convolution network per modality, outputs averaged."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.models.base import ENCODERS, Batch, BuildContext, Encoder
from mrs.models.encoders.lightgcn import SparseMatMul


@dataclass
class MMGCNOptions:
    """``model.options.mmgcn.*`` (MMRec's MMGCN.yaml: ``embedding_size`` 64 = ``model.dim``;
    ``reg_weight`` grid 0, 1e-5, 1e-4, 1e-3, 0.01, 0.1)."""

    layers: int = 3  # graph-conv layers per modality; MMRec's GCN hard-codes three (its n_layers=2 is unused)
    latent_dim: int = 256  # width of the MLP on image modalities (MMRec's dim_latent for v_feat; text goes in raw)
    # true: the g-layers read [h ; x̂] (MMRec: concate='False', a non-empty string, is true) | false: h + x̂
    concat: bool = True
    # false (MMRec): the ID rows and the user preferences stay at their initial values (MMRec keeps
    # them as plain tensors, not nn.Parameter, so its optimiser never updates them) | true: trained
    train_ids: bool = False
    reg_weight: float = 1e-4  # MMRec's reg_weight on mean(E_u² + E_i²) + mean(P_image²)

    def __post_init__(self) -> None:
        for key, low in (("layers", 1), ("latent_dim", 1), ("reg_weight", 0)):
            if getattr(self, key) < low:
                raise MrsError(f"config key 'model.options.mmgcn.{key}' must be >= {low}, got {getattr(self, key)}")


class _ModalityGCN(nn.Module):
    """One modality's branch (MMRec's ``GCN`` with ``has_id=True``, ``aggr_mode='mean'``)."""

    def __init__(self, n_users: int, feat_dim: int, dim: int, latent: int, opts: MMGCNOptions):
        super().__init__()
        d0 = latent or feat_dim
        self.mlp = nn.Linear(feat_dim, latent) if latent else None  # torch init, as MMRec
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, d0)), requires_grad=opts.train_ids)
        self.concat = opts.concat
        self.conv = nn.ParameterList()
        self.lin, self.g = nn.ModuleList(), nn.ModuleList()
        for layer in range(opts.layers):
            d = d0 if layer == 0 else dim
            self.conv.append(nn.Parameter(nn.init.xavier_normal_(torch.empty(d, d))))
            self.lin.append(nn.Linear(d, dim))
            nn.init.xavier_normal_(self.lin[-1].weight)
            self.g.append(nn.Linear(d + dim if opts.concat else d, dim))
            if layer == 0:  # MMRec: xavier on g_layer1 only; g_layer2, g_layer3 keep torch's init
                nn.init.xavier_normal_(self.g[-1].weight)

    def forward(self, feats: Tensor, ids: Tensor, adj: SparseMatMul) -> Tensor:
        f = self.mlp(feats) if self.mlp is not None else feats
        x = F.normalize(torch.cat([self.preference, f]), dim=1)
        for w, lin, g in zip(self.conv, self.lin, self.g):
            h = F.leaky_relu(adj(x @ w))
            x_hat = F.leaky_relu(lin(x)) + ids
            x = F.leaky_relu(g(torch.cat([h, x_hat], dim=1)) if self.concat else g(h) + x_hat)
        return x


class IdRowsReg:
    """What MMGCN and GRCN share: node rows ``(U+I, R)`` split into outputs (:meth:`_outputs`,
    which keeps the ego rows a training step read), and MMRec's regulariser as ``emb_reg``:
    ``reg_weight · ((E[user_tensor]² + E[item_tensor]²).mean() + preference terms)``, the mean over
    the batch's (user, item) pairs, each user once per positive and once per negative."""

    n_users: int
    reg_weight: float
    _ego: tuple[Tensor, Tensor, Tensor] | None = None  # (user ego, item ego, item output) of a training step

    def _outputs(self, out: Tensor, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        user, item = out[:self.n_users], out[self.n_users:]
        keep = self.training and torch.is_grad_enabled() and self.reg_weight > 0  # else nothing reads them
        self._ego = (user_ego, item_ego, item) if keep else None
        return user, item

    def _preference_reg(self, users: Tensor) -> Tensor:
        """The encoder's preference terms of MMRec's regulariser for the batch's ``users``."""
        raise NotImplementedError

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        if self.reg_weight <= 0:
            return {}
        if self._ego is None or self._ego[2] is not item_emb:
            raise RuntimeError(f"{type(self).__name__}.aux_losses needs the outputs of this step's training forward")
        user_ego, item_ego, _ = self._ego
        self._ego = None  # one step's graph: not kept past its loss
        u, pos, neg = user_ego[batch.users], item_ego[batch.pos], item_ego[batch.neg]  # neg: (B, d) or (B, K, d)
        k = 1 + (neg.shape[1] if neg.dim() == 3 else 1)  # pairs per user
        ids = (k * u.pow(2).sum() + pos.pow(2).sum() + neg.pow(2).sum()) / (k * u.shape[0] * u.shape[1])
        return {"emb_reg": self.reg_weight * (ids + self._preference_reg(batch.users))}


@ENCODERS.register("mmgcn", rank=6)
class MMGCNEncoder(IdRowsReg, Encoder):
    r"""MMGCN: a GCN per modality over the user-item graph, with the ID rows added in every layer.

    As MMRec (enoche/MMRec@e775373 ``src/models/mmgcn.py``): per modality :math:`m`, nodes
    :math:`[U; I]` start from a user preference :math:`P_m` and the item content
    :math:`f^m = W_m x^m + b_m` (image modalities, width ``latent_dim`` = 256) or
    :math:`f^m = x^m` (the others, raw), and each of the ``layers`` (3) layers is

    .. math::
        x^{0} = \mathrm{norm}\begin{pmatrix} P_m \\ f^m \end{pmatrix}, \quad
        h = \sigma\big(\bar A\, x^{l-1} C_l\big), \quad
        \hat x = \sigma(L_l x^{l-1}) + E, \quad
        x^{l} = \sigma\big(G_l [h ; \hat x]\big)

    with :math:`\bar A = D^{-1} A` the mean over a node's neighbours (both directions, no
    self-loops: :func:`mrs.graph.mean_adj`), :math:`\sigma` leaky ReLU (slope 0.01),
    :math:`E = [E_U; E_I]` the ego rows, ``norm`` row-wise L2. The output is
    :math:`\frac{1}{M}\sum_m x^{L}_m`, split into users and items. Loss: ``model.loss`` (BPR)
    plus ``emb_reg`` = :math:`\lambda\,[\overline{E_u^2 + E_i^2} + \overline{P_{image}^2}]`,
    the first mean over the batch's (user, item) pairs (positives and negatives) and columns,
    the second over the **whole** image preference table (MMRec regularises ``v_gcn``'s only).
    ``model.reg=0`` drops mrs's L2 on the ego rows (MMRec has none).

    MMRec's behaviour kept as defaults, each with its fix as an option:

    * ``train_ids=false``: MMRec's ``id_embedding`` and ``preference`` are tensors created with
      ``requires_grad`` but never registered as parameters, so they keep their random init (its
      ``emb_reg`` is then a constant). Here the ego rows enter detached and the preferences are
      frozen; mrs's ``model.reg`` still pulls the ID rows to zero, so ``model.reg=0`` for MMRec.
      As nothing would train a fusion's parameters, ``model.fusion`` must be ``none``.
      We judge it a bug (the paper learns both); ``train_ids=true`` trains them.
    * ``concat=true``: MMRec sets ``concate = 'False'``, a non-empty string, so the g-layers
      read the concatenation; ``concat=false`` is the sum :math:`G_l h + \hat x` it meant.
    * ``layers=3``: MMRec's ``GCN`` has three hard-coded layers and never reads ``n_layers``
      (nor does this encoder read ``model.layers``).

    Modalities: those whose store name starts with ``image`` take MMRec's ``v_feat`` path (MLP,
    regularised preference), all others its ``t_feat`` path; one modality alone works (MMRec
    accepts a missing ``v_feat`` or ``t_feat``). Features are mrs's unit rows (MMRec: raw), and
    an item without a modality has a zero row. Ego rows: the model's (xavier-uniform; MMRec's
    are xavier-normal). Message passing is a fixed CSR product (``D^-1 A`` and its transpose),
    the same sums as MMRec's PyG ``MessagePassing``.
    """

    Options = MMGCNOptions
    needs_features = True

    def __init__(self, adj: Tensor, n_users: int, features: dict[str, Tensor], dim: int, opts: MMGCNOptions):
        super().__init__()
        self.n_users, self.train_ids, self.reg_weight = n_users, opts.train_ids, opts.reg_weight
        self.adj = SparseMatMul(adj)
        names = sorted(features, key=lambda m: not m.startswith("image"))  # MMRec: v_gcn, then t_gcn
        self.image = [m.startswith("image") for m in names]
        for j, m in enumerate(names):  # by position: modality names may contain '.'
            self.register_buffer(f"feat_{j}", features[m].float(), persistent=False)
        self.branches = nn.ModuleList([_ModalityGCN(n_users, features[m].shape[1], dim, opts.latent_dim if img else 0,
                                                    opts) for m, img in zip(names, self.image)])

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "MMGCNEncoder":
        opts = cls.options(cfg)
        if not ctx.features:
            raise MrsError("model.encoder='mmgcn' needs item features (none were given: set data.features)")
        if not opts.train_ids and cfg.fusion != "none":
            raise MrsError(f"config key 'model.fusion': {cfg.fusion!r} would not train with mmgcn's frozen ID rows "
                           f"(model.options.mmgcn.train_ids=false, MMRec's); use fusion none or train_ids=true")
        adj = graph.mean_adj(ctx.users, ctx.items, ctx.n_users, ctx.n_items)
        return cls(adj, ctx.n_users, ctx.features, cls.width(cfg, ctx), opts)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return cls.options(cfg).train_ids  # frozen (MMRec): a sequential user encoder freezes its user table

    @property
    def needs_negatives(self) -> bool:  # the regulariser reads the negatives' ID rows
        return self.reg_weight > 0

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        if not self.train_ids:
            user_ego, item_ego = user_ego.detach(), item_ego.detach()
        ids = torch.cat([user_ego, item_ego])
        out = sum(b(getattr(self, f"feat_{j}"), ids, self.adj) for j, b in enumerate(self.branches))
        out = out / len(self.branches)
        return self._outputs(out, user_ego, item_ego)

    def _preference_reg(self, users: Tensor) -> Tensor:
        """MMRec: the whole image preference table's mean square (``v_gcn`` only)."""
        return sum((b.preference.pow(2).mean() for b, img in zip(self.branches, self.image) if img),
                   torch.zeros((), device=users.device))

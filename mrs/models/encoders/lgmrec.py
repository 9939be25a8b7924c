"""LGMRec (Guo et al., AAAI 2024): local user-item and modality graphs plus a global Gumbel-softmax hypergraph."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs import graph
from mrs.errors import MrsError
from mrs.losses import info_nce
from mrs.models.base import ENCODERS, Batch, BuildContext
from mrs.models.encoders.lightgcn import LightGCNEncoder, SparseMatMul

EVAL_SEED = 0  # the Gumbel noise of every evaluation forward (eval_noise=true): a fixed draw


@dataclass
class LGMRecOptions:
    """``model.options.lgmrec.*`` (LGMRec.yaml's one-value lists; its Baby block, the uncommented one)."""

    n_mm_layers: int = 2  # propagation layers of the modality graph embedding (MGE)
    n_hyper_layer: int = 1  # hypergraph layers (Sports: 1, Clothing: 2)
    hyper_num: int = 4  # hyperedges per modality (Sports: 4, Clothing: 64)
    keep_rate: float = 0.5  # 1 - dropout on the hyperedge assignments (Sports: 0.4, Clothing: 0.2)
    alpha: float = 0.3  # weight of the global (hypergraph) embeddings (Sports: 0.6, Clothing: 0.2)
    cl_weight: float = 1e-4  # weight of the hypergraph contrastive term (summed over the batch)
    reg_weight: float = 1e-6  # weight of (‖u‖ + ‖i+‖ + ‖i-‖) / B, non-squared norms
    tau: float = 0.2  # Gumbel-softmax and contrastive temperature (MMRec hard-codes 0.2)
    # true (MMRec): evaluation draws Gumbel noise too (here one fixed draw, EVAL_SEED, so a
    # model's scores are reproducible) | false: the noise-free assignments softmax(logits / tau)
    eval_noise: bool = True

    def __post_init__(self) -> None:
        for key, ok, want in (("n_mm_layers", self.n_mm_layers >= 0, ">= 0"),
                              ("n_hyper_layer", self.n_hyper_layer >= 1, ">= 1"),
                              ("hyper_num", self.hyper_num >= 1, ">= 1"),
                              ("keep_rate", 0.0 < self.keep_rate <= 1.0, "in (0, 1]"),
                              ("alpha", self.alpha >= 0, ">= 0"), ("cl_weight", self.cl_weight >= 0, ">= 0"),
                              ("reg_weight", self.reg_weight >= 0, ">= 0"), ("tau", self.tau > 0, "> 0")):
            if not ok:
                raise MrsError(f"config key 'model.options.lgmrec.{key}' must be {want}, got {getattr(self, key)}")


def gumbel_softmax(logits: Tensor, tau: float, generator: torch.Generator | None) -> Tensor:
    """``F.gumbel_softmax(logits, tau, hard=False, dim=1)`` drawing its noise from the CPU
    ``generator`` (the same draws as the function on the CPU's global RNG in the same state, on
    any device: the noise is ``(n, hyper_num)``, small); ``None``: no noise."""
    if generator is not None:
        noise = torch.empty(logits.shape).exponential_(generator=generator).log()
        logits = logits - noise.to(logits.device)
    return torch.softmax(logits / tau, dim=1)


@ENCODERS.register("lgmrec", rank=9)
class LGMRecEncoder(LightGCNEncoder):
    r"""LGMRec: collaborative + modality graph embeddings (local) plus hypergraph embeddings (global).

    As MMRec (enoche/MMRec@e775373 ``src/models/lgmrec.py``, ``cf_model=lightgcn``). CGE: the
    LightGCN mean :math:`c` of ``model.layers`` + 1 layers (MMRec's ``n_ui_layers`` = 2; ``mf`` is
    ``model.layers=0``). MGE of modality :math:`m` (frozen features :math:`x^m`, :math:`W_m`
    xavier-uniform, no bias): :math:`g_m = \hat A^{L_m} [D_u^{-1} R\, x^m W_m;\ x^m W_m]`,
    :math:`L_m` = ``n_mm_layers``. Hyperedges: :math:`H^i_m = \mathrm{gs}(x^m V_m)`,
    :math:`H^u_m = \mathrm{gs}(R\, x^m V_m)` with ``hyper_num`` columns, gs the soft Gumbel-softmax
    at ``tau``, and dropout (``keep_rate``) on both in training. Hypergraph layers (``n_hyper_layer``):

    .. math::
        \Lambda = H^{i\top}_m z, \quad z \leftarrow H^i_m \Lambda, \quad z_u = H^u_m \Lambda
        \qquad (z^{(0)} = c_I), \qquad \eta_m = [z_u; z]

    Output: :math:`c + \sum_m \mathcal{N}(g_m) + \alpha\, \mathcal{N}(\sum_m \eta_m)` (:math:`\mathcal{N}`:
    rows to unit norm). Loss: ``model.loss`` (BPR) plus ``emb_reg`` = ``reg_weight`` · (‖u‖ +
    ‖i+‖ + ‖i-‖)/B (non-squared norms of the output rows) and ``lgmrec_hcl`` = ``cl_weight`` ·
    Σ over the batch of the hypergraph InfoNCE :math:`\ell(\eta^u_a[u], \eta^u_b)` +
    :math:`\ell(\eta^i_a[i^+], \eta^i_b)` (positive: the same node in the other modality; negatives:
    every user / item of it; :func:`mrs.losses.info_nce`, sum), :math:`a` = image, :math:`b` = text.
    Modalities are ordered image first (store names starting ``image``, MMRec's ``v``), then the others.
    The contrastive term is a sum over the batch (a shard's part is not the global term's): torchrun
    refuses it. Its logits are ``(B, U)`` and ``(B, I)``, as MMRec's.

    Randomness: MMRec draws the Gumbel noise and the dropout masks from the global RNG in every
    forward. That per-forward draw is the model (a new hypergraph sample per batch), so it is kept,
    from a CPU generator seeded once per epoch from the one ``on_epoch_start`` receives (the same
    draws, in MMRec's order, as the CPU global RNG seeded alike; reproducible under the trainer's
    seed, and the same on any device: the draws are ``(n, hyper_num)``, moved to the rows' device).
    MMRec also draws Gumbel noise at evaluation, per batch of users: we judge a noisy evaluation a
    bug. Default (MMRec): noise at evaluation, from a fixed seed (``EVAL_SEED``) per forward, so the
    scores are a function of the weights; ``eval_noise=false``: noise-free ``softmax(logits/tau)``.

    Deviations: MMRec's forward needs both modalities (one alone falls to ``all_embs = cge`` and
    then fails on the undefined hypergraph outputs). Here any number :math:`M \ge 1`: the sums run
    over the modalities, the contrastive term over every pair :math:`a < b` (none with one
    modality: no second view). ``feat_embed_dim`` must equal the embedding size in MMRec (the
    embeddings are added): here it is the row width. ``model.graph_backend`` is not read (CSR).
    """

    Options = LGMRecOptions
    needs_features = True

    def __init__(self, users: Tensor, items: Tensor, n_users: int, n_items: int, layers: int, dim: int,
                 features: list[Tensor], opts: LGMRecOptions):
        super().__init__(*graph.bipartite_blocks(users, items, n_users, n_items), layers)
        r, inv_deg = graph.interaction_matrix(users, items, n_users, n_items)
        self.adj = SparseMatMul(r)  # x -> R x (sums over a user's items)
        self.register_buffer("inv_deg_u", inv_deg, persistent=False)
        for j, x in enumerate(features):  # frozen, as MMRec's from_pretrained(freeze=True)
            self.register_buffer(f"feat_{j}", x.float(), persistent=False)
        self.n_modalities = len(features)
        self.trs = nn.ParameterList([nn.Parameter(nn.init.xavier_uniform_(torch.zeros(x.shape[1], dim)))
                                     for x in features])
        self.hyper = nn.ParameterList([nn.Parameter(nn.init.xavier_uniform_(torch.zeros(x.shape[1], opts.hyper_num)))
                                       for x in features])
        self.opts = opts
        self._seed: int | None = None  # this epoch's seed of the Gumbel noise and dropout
        self._gen: torch.Generator | None = None
        self._views: tuple[list[tuple[Tensor, Tensor]], Tensor] | None = None  # (η per modality, output)

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "LGMRecEncoder":
        opts = cls.options(cfg)
        names = sorted(ctx.features, key=lambda m: not m.startswith("image"))  # stable: image (v) first
        return cls(ctx.users, ctx.items, ctx.n_users, ctx.n_items, cfg.layers, cls.width(cfg, ctx),
                   [ctx.features[m] for m in names], opts)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return cfg.layers > 0  # the item rows read users through the CGE only (MGE reads features)

    @property
    def needs_negatives(self) -> bool:  # the regulariser reads the negatives' rows
        return self.opts.reg_weight > 0

    @property
    def aux_reads_whole_batch(self) -> bool:  # a sum over the batch: a shard's part is not the global term's
        return self.opts.cl_weight > 0 and self.n_modalities > 1

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Seed this epoch's Gumbel noise and dropout masks from ``generator``."""
        self._seed, self._gen = int(torch.randint(0, 2 ** 62, (1,), generator=generator)), None

    def _generator(self) -> torch.Generator | None:
        """The CPU generator of this forward's draws (CPU: the same model on any device)."""
        if not self.training:
            return torch.Generator().manual_seed(EVAL_SEED) if self.opts.eval_noise else None
        if self._seed is None:
            raise RuntimeError("LGMRecEncoder: call on_epoch_start(epoch, generator) before a training forward "
                               "pass (it seeds the hypergraph's Gumbel noise and dropout)")
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self._seed)
        return self._gen

    def _drop(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        """``nn.Dropout(1 - keep_rate)`` in training (``bernoulli_(keep)/keep``, as torch's on CPU)."""
        keep = self.opts.keep_rate
        if not self.training or keep >= 1.0:
            return x
        return x * (torch.empty(x.shape).bernoulli_(keep, generator=gen) / keep).to(x.device)

    def _hgnn(self, h_i: Tensor, h_u: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        for _ in range(self.opts.n_hyper_layer):
            lat = h_i.T @ z  # (hyper_num, R)
            z, z_u = h_i @ lat, h_u @ lat
        return z_u, z

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        gen = self._generator()
        feats = [getattr(self, f"feat_{j}") for j in range(self.n_modalities)]
        hyper = []
        for x, v in zip(feats, self.hyper):  # MMRec's draw order: every modality's (H^i, H^u) first
            logits = x @ v
            hyper.append((gumbel_softmax(logits, self.opts.tau, gen),
                          gumbel_softmax(self.adj(logits), self.opts.tau, gen)))
        c_u, c_i = super().forward(user_ego, item_ego)
        r_ui, r_iu = self.graph()
        out_u, out_i = c_u, c_i
        for x, w in zip(feats, self.trs):  # MGE
            g_i = x @ w
            g_u = self.adj(g_i) * self.inv_deg_u
            for _ in range(self.opts.n_mm_layers):
                g_u, g_i = graph.spmm(r_ui, g_i, r_iu), graph.spmm(r_iu, g_u, r_ui)
            out_u, out_i = out_u + F.normalize(g_u), out_i + F.normalize(g_i)
        views = [self._hgnn(self._drop(h_i, gen), self._drop(h_u, gen), c_i) for h_i, h_u in hyper]
        out_u = out_u + self.opts.alpha * F.normalize(sum(u for u, _ in views))
        out_i = out_i + self.opts.alpha * F.normalize(sum(i for _, i in views))
        self._views = (views, out_i) if self.training and torch.is_grad_enabled() else None
        return out_u, out_i

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """MMRec's ``reg_weight · reg_loss`` and ``cl_weight · hcl`` for one batch."""
        terms = {}
        users, pos = batch.users, batch.pos
        if self.opts.reg_weight > 0:
            rows = (user_emb[users], item_emb[pos], item_emb[batch.neg.reshape(-1)])
            terms["emb_reg"] = self.opts.reg_weight * sum(torch.linalg.norm(x) for x in rows) / len(users)
        if self.opts.cl_weight > 0 and self.n_modalities > 1:
            if self._views is None or self._views[1] is not item_emb:
                raise RuntimeError("LGMRecEncoder.aux_losses needs the outputs of this step's training forward")
            views, _ = self._views
            self._views = None  # one step's graph: not kept past its loss
            tau, hcl = self.opts.tau, user_emb.new_zeros(())
            for a in range(len(views)):
                for b in range(a + 1, len(views)):
                    (ua, ia), (ub, ib) = views[a], views[b]
                    hcl = hcl + info_nce(ua[users], ub, tau, users, "sum") + info_nce(ia[pos], ib, tau, pos, "sum")
            terms["lgmrec_hcl"] = self.opts.cl_weight * hcl
        return terms

"""The one model class: ID embeddings (+ fused content) -> encoder -> CP scorer -> BPR loss.

    user_ego (U, R) = ID embedding
    item_ego (I, R) = ID embedding + fused content          (fusion "concat" / "early")
                    = [ID ‖ P_1 x_1 ‖ ... ‖ P_M x_M]        (fusion "late", R = (1 + M) r)
    (user_emb, item_emb) = encoder(user_ego, item_ego)      (mf | lightgcn | freedom)
    ŷ(u, i, modes) = Σ_R U[u] · I[i] · Π_j M_j[m_j]          (mrs.models.cp)

Build it with :func:`mrs.models.config.build_model`, which prepares graphs and caches.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mrs.losses import bpr_l2_loss, coupling_loss
from mrs.models.base import Batch, Recommender
from mrs.models.cp import CPScorer
from mrs.models.fusion import LateFusion


class CPRecommender(Recommender):
    """Args:
        n_users, n_items: sizes. dim: r (per block for late fusion).
        encoder: an ``nn.Module`` ``(user_ego, item_ego) -> (user_emb, item_emb)``.
        mode_cardinalities: one per extra mode the model uses (``[]`` = modes off).
        fusion: ``None`` or a module from :mod:`mrs.models.fusion`.
        features: ``{modality: (I, d_m)}`` fixed content (kept as non-persistent buffers).
        reg: L2 λ on the batch's ego embeddings (and mode factor rows, towards one).
        coupling_mu: ``(I,)`` per-item coupling weights ``μ_i``, or ``None`` (coupling off).
    """

    def __init__(self, n_users: int, n_items: int, dim: int, encoder: nn.Module, mode_cardinalities: list[int],
                 fusion: nn.Module | None = None, features: dict[str, Tensor] | None = None, reg: float = 0.0,
                 coupling_mu: Tensor | None = None):
        super().__init__()
        self.n_users, self.n_items, self.reg = n_users, n_items, reg
        self.fusion, self.encoder = fusion, encoder
        blocks = fusion.n_blocks if isinstance(fusion, LateFusion) else 1
        self.user_emb = nn.Embedding(n_users, dim * blocks)  # (U, R)
        self.item_emb = nn.Embedding(n_items, dim)  # (I, r): the ID block
        nn.init.xavier_uniform_(self.user_emb.weight)  # as MMRec's BPR / LightGCN
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.scorer = CPScorer(mode_cardinalities, dim * blocks)
        self.modality_names = list(features or {})
        for k, x in enumerate((features or {}).values()):  # by position: names may contain '.'
            self.register_buffer(f"feat_{k}", x.float(), persistent=False)
        self.coupling = None
        if coupling_mu is not None:
            d = sum(x.shape[1] for x in features.values())
            self.coupling = nn.Linear(d, dim, bias=False)  # W in Σ μ_i ‖q_i − W e_i‖²
            self.register_buffer("coupling_mu", coupling_mu.float(), persistent=False)

    def features(self) -> dict[str, Tensor]:
        return {m: getattr(self, f"feat_{k}") for k, m in enumerate(self.modality_names)}

    def item_ego(self) -> Tensor:
        """``(I, R)``: ID embeddings plus the fused content (so cold items are represented)."""
        ids = self.item_emb.weight
        if self.fusion is None:
            return ids
        content = self.fusion(self.features())
        if isinstance(self.fusion, LateFusion):
            return torch.cat([ids, content], dim=1)  # (I, (1 + M) r)
        return ids + content  # (I, r)

    def encode(self) -> tuple[Tensor, Tensor]:
        user, item = self.encoder(self.user_emb.weight, self.item_ego())
        if isinstance(self.fusion, LateFusion):
            user = user * self.fusion.block_scale()  # late fusion's learned score weights per block
        return user, item

    def score(self, users: Tensor, items: Tensor, modes: Tensor,
              emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        user_emb, item_emb = emb if emb is not None else self.encode()
        q = self.scorer.query(user_emb[users], modes)  # (B, R)
        return self.scorer.score(q, item_emb[items])  # (B,) or (B, M)

    def full_sort_predict(self, users: Tensor, modes: Tensor,
                          emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        user_emb, item_emb = emb if emb is not None else self.encode()
        return self.scorer.rank_all(self.scorer.query(user_emb[users], modes), item_emb)  # (B, I)

    def calculate_loss(self, batch: Batch, emb: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, float]]:
        """BPR + λ‖ego rows‖²/B (+ semantic coupling). ``emb`` reuses an ``encode()`` of this step
        (the dynamic sampler scores candidates with it, so one propagation serves both)."""
        user_emb, item_emb = emb if emb is not None else self.encode()
        b = batch.users.shape[0]
        q = self.scorer.query(user_emb[batch.users], batch.modes)  # (B, R)
        items = torch.cat([batch.pos, batch.neg.reshape(-1)])  # (B + B*K,): one gather, one backward
        rows = item_emb[items]  # (B + B*K, R)
        pos_s = self.scorer.score(q, rows[:b])  # (B,)
        neg_s = self.scorer.score(q, rows[b:].view(*batch.neg.shape, -1))  # (B,) or (B, K)
        # Mode factors are regularised towards one, their "no context effect" value (= MF).
        ego = [self.user_emb.weight[batch.users], self.item_emb.weight[items],
               *(m - 1.0 for m in self.scorer.mode_rows(batch.modes))]
        loss, bpr, l2 = bpr_l2_loss(pos_s, neg_s, ego, self.reg)
        parts = {"bpr": bpr.item(), "l2": l2.item()}
        if self.coupling is not None:
            e = torch.cat([x[items] for x in self.features().values()], dim=1)  # (N, Σd)
            c = coupling_loss(self.item_emb.weight[items], self.coupling(e), self.coupling_mu[items]) / b
            loss = loss + c
            parts["coupling"] = c.item()
        return loss, parts

    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """FREEDOM: draw this epoch's pruned graph. Without a generator, one seeded from the global
        seed and the epoch, so a resumed run prunes exactly as an uninterrupted one."""
        if hasattr(self.encoder, "resample"):
            if generator is None:
                generator = torch.Generator().manual_seed((torch.initial_seed() + epoch) % 2 ** 63)
            self.encoder.resample(generator)

    def fusion_weights(self) -> dict[str, float]:
        return self.fusion.weights() if self.fusion is not None else {}

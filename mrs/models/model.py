"""The one model class: plug-ins for each phase, composed without asking which ones they are.

    user_ego (U, R) = user_encoder.ego()                    (id: a learned row per user)
    item_ego (I, R) = fusion(ID embedding, content)         (none | concat | early | late | ...)
    (user_emb, item_emb) = encoder(user_ego, item_ego)      (mf | lightgcn | freedom | ...)
    user_emb *= fusion.score_scale()                        (late fusion's branch weights; else 1)
    ŷ(u, i, modes) = scorer: Σ_R U[u] · I[i] · Π_j M_j[m_j]  (cp)

``R = n_blocks · r`` where the fusion has several blocks (late fusion). Build it with
:func:`mrs.models.config.build_model`.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from mrs.models.base import Batch, Encoder, Fusion, Recommender, Scorer, SequenceEmbedder, UserEncoder
from mrs.models.objective import Predictions, n_negatives, training_loss


class CPRecommender(Recommender):
    """Args:
        n_users, n_items: sizes. dim: r (per block when the fusion has several).
        encoder, fusion, user_encoder, scorer: the plug-ins (:mod:`mrs.models.base`).
        features: ``{modality: (I, d_m)}`` fixed content (kept as non-persistent buffers).
        reg: L2 λ on the batch's ego embeddings (and mode factor rows, towards one).
        coupling_mu: ``(I,)`` per-item coupling weights ``μ_i``, or ``None`` (coupling off).
        loss: the main ranking loss (:data:`mrs.losses.LOSSES`); loss_negatives: its sampled
            negatives per prediction where it samples several (``sampled_softmax``);
            shared_negatives: one set of them shared by every prediction of a step.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, encoder: Encoder, fusion: Fusion,
                 user_encoder: UserEncoder, scorer: Scorer, features: dict[str, Tensor] | None = None,
                 reg: float = 0.0, coupling_mu: Tensor | None = None, loss: str = "bpr",
                 loss_negatives: int = 100, shared_negatives: bool = False):
        super().__init__()
        self.n_users, self.n_items, self.reg = n_users, n_items, reg
        self.loss, self.loss_negatives, self.shared_negatives = loss, loss_negatives, shared_negatives
        self.fusion, self.encoder, self.user_encoder = fusion, encoder, user_encoder
        self.item_emb = nn.Embedding(n_items, dim)  # (I, r): the ID block
        # Initialisation order (seeded runs depend on it): the tables' default inits, then
        # xavier on the user side, then on the item side.
        self.user_encoder.reset_parameters()
        nn.init.xavier_uniform_(self.item_emb.weight)  # as MMRec's BPR / LightGCN
        self.scorer = scorer
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
        """``(I, R)``: the fusion of ID embeddings and content (so cold items are represented)."""
        return self.fusion(self.item_emb.weight, self.features())

    def sequence_embedder(self) -> SequenceEmbedder | None:
        """The fusion's embedding of item-id sequences, bound to this model's ID table and content,
        for a sequential user encoder (FAERec's gate); ``None`` where the fusion leaves the input
        stage to the user encoder (tokens from the item output rows)."""
        if not self.fusion.embeds_sequences:
            return None
        return functools.partial(self.fusion.sequence_inputs, item_ids=self.item_emb.weight,
                                 feats=self.features())

    def encode(self) -> tuple[Tensor, Tensor]:
        user, item = self.encoder(self.user_encoder.ego(), self.item_ego())
        scale = self.fusion.score_scale()
        if scale is not None:
            user = user * scale  # per-block score weights (late fusion)
        return user, item

    def query(self, users: Tensor, modes: Tensor, emb: tuple[Tensor, Tensor],
              mode_weights: list[Tensor | None] | None = None) -> Tensor:
        """``q (B, R)``: the user row of each query folded with its modes (``mode_weights``: see
        :meth:`mrs.models.cp.CPScorer.query`, the expected row of a mode whose value is unknown)."""
        user_emb, item_emb = emb
        rows = self.user_encoder.query_rows(users, user_emb, item_emb, self.sequence_embedder())
        if mode_weights is None:
            return self.scorer.query(rows, modes)
        return self.scorer.query(rows, modes, mode_weights)

    def score(self, users: Tensor, items: Tensor, modes: Tensor,
              emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        emb = emb if emb is not None else self.encode()
        return self.scorer.score(self.query(users, modes, emb), emb[1][items])  # (B,) or (B, M)

    def full_sort_predict(self, users: Tensor, modes: Tensor, emb: tuple[Tensor, Tensor] | None = None,
                          mode_weights: list[Tensor | None] | None = None, items: slice | None = None) -> Tensor:
        """``(B, I)`` scores, or ``(B, C)`` for the item range ``items`` (chunked ranking)."""
        emb = emb if emb is not None else self.encode()
        item_emb = emb[1] if items is None else emb[1][items]
        return self.scorer.rank_all(self.query(users, modes, emb, mode_weights), item_emb)  # (B, I) or (B, C)

    def calculate_loss(self, batch: Batch, emb: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, float]]:
        """The training loss of a batch of (user, positive, negatives, modes) rows: the one loss
        of :func:`mrs.models.objective.training_loss` (main loss ``self.loss`` + L2 + coupling +
        the plug-ins' terms). ``emb`` reuses an ``encode()`` of this step (the dynamic sampler
        scores candidates with it, so one propagation serves both)."""
        emb = emb if emb is not None else self.encode()
        q = self.query(batch.users, batch.modes, emb)  # (B, R)
        return self.training_loss(Predictions(batch.users, q, batch.pos, batch.modes, batch.neg), emb)

    def training_loss(self, p: Predictions, emb: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The loss of any :class:`~mrs.models.objective.Predictions` (BPR triples or sequence
        positions); the user encoder says whether they read user ID rows (for L2)."""
        return training_loss(self, p, emb, self.loss, user_rows=not self.user_encoder.sequential)

    def n_negatives(self) -> int:
        """Negatives per prediction a training step samples for this model."""
        return n_negatives(self, self.loss, self.loss_negatives)

    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """Passed on to the encoder (FREEDOM draws its pruned graph). Without a generator, one
        seeded from the global seed and the epoch, so a resumed run matches an uninterrupted one."""
        if generator is None:
            generator = torch.Generator().manual_seed((torch.initial_seed() + epoch) % 2 ** 63)
        self.encoder.on_epoch_start(epoch, generator)
        self.fusion.on_epoch_start(epoch)

    def fusion_weights(self) -> dict[str, float]:
        return self.fusion.weights()

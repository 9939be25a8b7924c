"""The model interface (RecBole's three methods, plus the encoder outputs the CP scorer needs).

Every model is ``encoder (mf | lightgcn | freedom)`` -> ``(user_emb [U, r], item_emb [I, r])``,
then the CP scorer over the dataset's extra modes:

    ŷ(u, i, m_1, ..., m_k) = Σ_r U[u,r] · I[i,r] · M_1[m_1,r] ··· M_k[m_k,r]

The trainer, the evaluator and the negative sampler only use the methods below.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One BPR batch. ``modes`` has one column per extra mode (zero columns when there are none)."""

    users: Tensor  # (B,) long
    pos: Tensor    # (B,) long
    neg: Tensor    # (B,) long, or (B, K) for several negatives per positive
    modes: Tensor  # (B, n_modes) long

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.users, self.pos, self.neg, self.modes)))


class Recommender(nn.Module):
    """Base class. Subclasses implement ``encode`` and inherit scoring and the BPR loss hook."""

    n_users: int
    n_items: int

    def encode(self) -> tuple[Tensor, Tensor]:
        """Run the encoder: ``(user_emb (U, r), item_emb (I, r))``. Graph propagation happens here."""
        raise NotImplementedError

    def calculate_loss(self, batch: Batch, emb: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss for one batch, plus named parts for logging (``bpr``, ``l2``, ...).
        ``emb`` reuses this step's ``encode()`` (shared with the dynamic negative sampler)."""
        raise NotImplementedError

    def score(self, users: Tensor, items: Tensor, modes: Tensor,
              emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Scores for given items: ``users (B,)``, ``items (B,)`` or ``(B, M)``, ``modes (B, k)``
        -> ``(B,)`` or ``(B, M)``. ``emb`` reuses a cached ``encode()`` result."""
        raise NotImplementedError

    def full_sort_predict(self, users: Tensor, modes: Tensor,
                          emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Scores of every item for each query: ``(B, n_items)``; one matmul per batch."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """Per-epoch hook (FREEDOM resamples its pruned user-item graph here). Default: nothing."""

    def fusion_weights(self) -> dict[str, float]:
        """Learned fusion weights α by modality, for logging; empty when the model has none."""
        return {}

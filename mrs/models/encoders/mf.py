"""Matrix factorisation: the ego embeddings are the output (BPR-MF, Rendle et al. 2009)."""
from __future__ import annotations

from torch import Tensor

from mrs.models.base import ENCODERS, BuildContext, Encoder


@ENCODERS.register("mf", rank=0)
class MFEncoder(Encoder):
    """Matrix factorisation (ID embeddings, no propagation)."""

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "MFEncoder":
        return cls()

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return False  # item outputs are the item ego rows alone

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        return user_ego, item_ego

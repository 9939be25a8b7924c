"""The user side of the model: where a query's user row comes from.

``id`` (the default) is a learned row per user, propagated by the encoder like the item rows.
Sequential user encoders (a state computed from the user's recent items) register here too.
"""
from __future__ import annotations

from torch import Tensor, nn

from mrs.models.base import USERS, BuildContext, UserEncoder


@USERS.register("id")
class IdUserEncoder(UserEncoder):
    """A learned embedding row per user (MF / LightGCN style)."""

    def __init__(self, n_users: int, dim: int):
        super().__init__()
        self.emb = nn.Embedding(n_users, dim)  # (U, R); xavier in reset_parameters

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.emb.weight)  # as MMRec's BPR / LightGCN

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext, dim: int) -> "IdUserEncoder":
        return cls(ctx.n_users, dim)

    def ego(self) -> Tensor:
        return self.emb.weight

    def reg_rows(self, users: Tensor) -> list[Tensor]:
        return [self.emb.weight[users]]

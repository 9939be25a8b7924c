r"""The CP (CANDECOMP/PARAFAC) scorer over user, item and the dataset's extra modes:

.. math::
    \hat{y}(u, i, m_1, \dots, m_k) = \sum_r U_{ur}\, I_{ir}\, M^{(1)}_{m_1 r} \cdots M^{(k)}_{m_k r}

``U`` and ``I`` come from the encoder; one learned factor matrix ``M^{(j)} (n_j, r)`` per extra
mode, initialised to ones so an untrained CP model *is* the plain user-item model. The user row
and the mode rows are folded into one query vector ``q = U[u] * M1[m1] * ...``, so scoring is a
dot product and full ranking one matmul ``q @ I.T``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mrs.models.base import SCORERS, BuildContext, Scorer


@SCORERS.register("cp")
class CPScorer(Scorer):
    """CP tensor score over user, item and the dataset's extra modes (plain dot product without modes)."""

    def __init__(self, cardinalities: list[int], dim: int):
        super().__init__()
        self.factors = nn.ParameterList([nn.Parameter(torch.ones(n, dim)) for n in cardinalities])

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext, dim: int) -> "CPScorer":
        return cls(ctx.mode_cardinalities, dim)

    @property
    def n_modes(self) -> int:
        return len(self.factors)

    def mode_rows(self, modes: Tensor) -> list[Tensor]:
        """The factor rows a batch uses: one ``(B, r)`` per mode (for L2 on touched parameters)."""
        if modes.shape[-1] < self.n_modes:
            raise ValueError(f"batch has {modes.shape[-1]} mode columns, the model expects {self.n_modes}")
        return [f[modes[:, j]] for j, f in enumerate(self.factors)]

    def query(self, user_rows: Tensor, modes: Tensor, mode_weights: list[Tensor | None] | None = None) -> Tensor:
        r"""``q = U[u] * Π_j M_j[m_j]``: ``user_rows (B, r)``, ``modes (B, k)`` -> ``(B, r)``.

        ``mode_weights[j]``, a distribution ``p_j (n_j,)`` (e.g. train frequencies), replaces the
        mode's row by the expected row ``Σ_c p_j(c) M_j[c]`` (for a request whose context is
        unknown). CP is multilinear, so this is exactly the expected score over that mode:

        .. math::
            \sum_c p(c)\, \hat{y}(u, i, c, t) = \sum_r U_{ur} I_{ir} T_{tr} \Big(\sum_c p(c) C_{cr}\Big)
        """
        q = user_rows
        for j, rows in enumerate(self.mode_rows(modes)):
            w = mode_weights[j] if mode_weights is not None and j < len(mode_weights) else None
            q = q * (rows if w is None else (w.to(rows) @ self.factors[j]))  # (B, r) or (r,)
        return q

    @staticmethod
    def score(q: Tensor, item_rows: Tensor) -> Tensor:
        """``q (B, r)`` with ``item_rows (B, r)`` -> ``(B,)``, or ``(B, M, r)`` -> ``(B, M)``."""
        if item_rows.dim() == 3:
            return torch.einsum("br,bmr->bm", q, item_rows)
        return (q * item_rows).sum(-1)

    @staticmethod
    def rank_all(q: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of every item: ``q (B, r)``, ``item_emb (I, r)`` -> ``(B, I)``, one matmul."""
        return q @ item_emb.T

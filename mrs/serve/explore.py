r"""Exploration for tail items at recommend time: ``explore = none | ucb | thompson``.

Uncertainty of an item factor: a diagonal Gaussian posterior whose variance shrinks with the
number of observations of the item (its train interactions, counted once at export: feedback
seen by a running server does not change them; re-export to update),

    I_i ~ N(Î_i, ŝ² / (1 + n_i) · Id),     ŝ² = mean squared coordinate of the item factors,

i.e. the posterior of a mean under a unit-precision Gaussian prior after ``n_i`` unit-precision
observations (a count-based diagonal approximation, not a Laplace fit of the BPR loss). For a
folded query ``q`` the score ``q · I_i`` is then ``N(q · Î_i, σ_i²)`` with
``σ_i = ‖q‖ ŝ / sqrt(1 + n_i)``, and with strength ``β``:

- ``ucb``:      ``q · Î_i + β σ_i``                 (optimism in the face of uncertainty)
- ``thompson``: ``q · Î_i + β σ_i z_i, z_i ~ N(0,1)`` (one posterior sample per request; β = 1
  is the posterior itself)

Exploration changes the scores of every item, so it ranks exactly (no ANN).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from mrs.errors import MrsError

Explore = Literal["none", "ucb", "thompson"]
EXPLORES = ("none", "ucb", "thompson")


def item_std(q: torch.Tensor, counts: np.ndarray, scale: float) -> torch.Tensor:
    """``σ (B, I) = ‖q‖ ŝ / sqrt(1 + n)``: ``q (B, R)``, ``counts (I,)``."""
    inv = torch.from_numpy((1.0 / np.sqrt(1.0 + np.asarray(counts, np.float64))).astype(np.float32))
    return q.norm(dim=1, keepdim=True) * scale * inv[None, :]


def explore_scores(scores: torch.Tensor, q: torch.Tensor, counts: np.ndarray, scale: float,
                   explore: str, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scores ``(B, I)`` with the optimism bonus (ucb) or a posterior sample (thompson) added."""
    if explore == "none":
        return scores
    if explore not in EXPLORES:
        raise MrsError(f"explore: unknown {explore!r} ({' | '.join(EXPLORES)})")
    if not 0 <= strength < float("inf"):
        raise MrsError(f"explore_strength: must be a finite number >= 0, got {strength}")
    bonus = strength * item_std(q, counts[:scores.shape[1]], scale)
    if not torch.isfinite(bonus).all():  # float32 overflow: the items would drop out as masked
        raise MrsError(f"explore_strength: {strength:g} overflows the scores; use a smaller value")
    if explore == "ucb":
        return scores + bonus
    z = torch.randn(scores.shape, generator=generator)
    return scores + bonus * z

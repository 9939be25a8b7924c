"""Training losses: BPR with L2 on the batch's ego embeddings, and the semantic coupling term.

BPR (Rendle et al., 2009), averaged once over all (positive, negative) pairs of the batch:

.. math::
    \\mathcal{L} = -\\frac{1}{BK} \\sum_{b,k} \\log \\sigma(\\hat{y}_{b} - \\hat{y}_{b,k})
                 + \\frac{\\lambda}{B} \\sum_{\\theta \\in \\Theta_{batch}} \\|\\theta\\|_2^2

where :math:`\\Theta_{batch}` are the ego (layer-0) embedding rows the batch touched. Dividing the
L2 term by ``B`` once (not averaging per row then again per batch) is the LightGCN convention;
PyG issue #7196 was a double mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """``pos (B,)``, ``neg (B,)`` or ``(B, K)`` -> scalar ``-mean log σ(pos - neg)``."""
    if neg.dim() == pos.dim() + 1:
        pos = pos.unsqueeze(-1)  # (B, 1) against (B, K)
    return -F.logsigmoid(pos - neg).mean()


def l2_reg(*params: Tensor, batch_size: int) -> Tensor:
    """``Σ ‖θ‖² / B`` over the given embedding rows (each counted as often as the batch uses it)."""
    return sum(p.pow(2).sum() for p in params) / batch_size


def bpr_l2_loss(pos: Tensor, neg: Tensor, ego: list[Tensor], reg: float) -> tuple[Tensor, Tensor, Tensor]:
    """BPR plus ``reg · Σ‖ego‖² / B``; returns ``(total, bpr, l2)`` (parts for logging)."""
    bpr = bpr_loss(pos, neg)
    l2 = l2_reg(*ego, batch_size=pos.shape[0]) if ego else pos.new_zeros(())
    return bpr + reg * l2, bpr, l2


def coupling_weights(item_counts: Tensor, mu0: float) -> Tensor:
    """Per-item coupling strength ``μ_i = μ0 / log(2 + n_i)``: strongest for rare items, whose
    ID factors get the least signal from interactions. ``(I,)``."""
    return mu0 / torch.log(2.0 + item_counts.float())


def coupling_loss(q: Tensor, projected_content: Tensor, mu: Tensor) -> Tensor:
    """Semantic coupling ``Σ_i μ_i ‖q_i − W e_i‖²`` over the given item rows:
    ``q (N, r)`` item factors, ``projected_content (N, r)`` = ``W e_i``, ``mu (N,)``."""
    return (mu * (q - projected_content).pow(2).sum(-1)).sum()

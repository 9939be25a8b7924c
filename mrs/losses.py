"""Training losses: the main ranking losses (a registry), L2 on the batch's ego embeddings, and the
semantic coupling term. :mod:`mrs.models.objective` assembles them into the one training loss.

BPR (Rendle et al., 2009), averaged once over all (positive, negative) pairs of the batch:

.. math::
    \\mathcal{L} = -\\frac{1}{BK} \\sum_{b,k} \\log \\sigma(\\hat{y}_{b} - \\hat{y}_{b,k})
                 + \\frac{\\lambda}{B} \\sum_{\\theta \\in \\Theta_{batch}} \\|\\theta\\|_2^2

where :math:`\\Theta_{batch}` are the ego (layer-0) embedding rows the batch touched. Dividing the
L2 term by ``B`` once (not averaging per row then again per batch) is the LightGCN convention;
PyG issue #7196 was a double mean.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mrs.registry import Registry


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """``pos (B,)``, ``neg (B,)`` or ``(B, K)`` -> scalar ``-mean log σ(pos - neg)``."""
    if neg.dim() == pos.dim() + 1:
        pos = pos.unsqueeze(-1)  # (B, 1) against (B, K)
    return -F.logsigmoid(pos - neg).mean()


def bce_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """SASRec's binary cross-entropy (Kang & McAuley 2018; FAERec's and ICLRec's ``cross_entropy``):
    ``pos (N,)``, ``neg (N,)`` or ``(N, K)`` -> ``-mean_n [log σ(pos_n) + Σ_k log σ(-neg_nk)]``
    (``log(1 - σ(x)) = log σ(-x)``; a ``-inf`` negative, a masked accidental hit, adds 0)."""
    neg_term = F.logsigmoid(-neg)
    if neg.dim() == pos.dim() + 1:
        neg_term = neg_term.sum(-1)
    return -(F.logsigmoid(pos) + neg_term).mean()


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


# ----------------------------------------------------------------------------- main ranking losses
class MainLoss:
    """A main ranking loss over ``N`` predictions. ``scores(pos (N,), neg (N, K) | None, q)``
    receives the positives' scores, the sampled negatives' scores (accidental hits already
    ``-inf`` where :attr:`masks_hits`), and a callable giving the full ``(N, I)`` score matrix
    for losses that rank every item. ``negatives(n_sampled)`` is how many negatives per
    prediction it needs (0: none)."""

    def __init__(self, fn: Callable[..., Tensor], negatives: Callable[[int], int], doc: str):
        self.fn, self.negatives, self.__doc__ = fn, negatives, doc

    def __call__(self, pos: Tensor, neg: Tensor | None, all_scores: Callable[[], Tensor],
                 targets: Tensor) -> Tensor:
        return self.fn(pos, neg, all_scores, targets)


LOSSES: Registry[MainLoss] = Registry("loss", "model.loss", ("mrs.losses",))


def _sampled_softmax(pos: Tensor, neg: Tensor | None, all_scores, targets: Tensor) -> Tensor:
    logits = torch.cat([pos[:, None], neg.reshape(len(pos), -1)], 1)  # (N, 1 + K)
    return F.cross_entropy(logits, torch.zeros_like(targets))


LOSSES.register("bpr", rank=0)(MainLoss(
    lambda pos, neg, all_scores, targets: bpr_loss(pos, neg), lambda k: 1,
    "BPR: -mean log σ(pos - neg) (one negative per prediction: train.negatives uniform | dynamic)"))
LOSSES.register("ce", rank=1)(MainLoss(
    lambda pos, neg, all_scores, targets: F.cross_entropy(all_scores(), targets), lambda k: 0,
    "full softmax cross-entropy over all items"))
LOSSES.register("sampled_softmax", rank=2)(MainLoss(
    _sampled_softmax, lambda k: k,
    "softmax over the target and model.loss_negatives uniform negatives (accidental hits masked)"))
LOSSES.register("bce", rank=3)(MainLoss(
    lambda pos, neg, all_scores, targets: bce_loss(pos, neg), lambda k: 1,
    "BCE: -mean [log σ(pos) + log σ(-neg)] with one negative per prediction (SASRec's and FAERec's loss)"))
LOSSES.register("none", rank=4)(MainLoss(
    lambda pos, neg, all_scores, targets: pos.sum() * 0.0, lambda k: 0,
    "no main loss: the encoder's own terms are the objective (bm3, where auto picks it; refused elsewhere)"))


def info_nce(queries: Tensor, keys: Tensor, temperature: float, targets: Tensor | None = None,
             reduction: str = "mean") -> Tensor:
    r"""One-directional InfoNCE with cosine logits: for each row ``b`` of ``queries (B, r)``,
    :math:`-\log \frac{\exp(\cos(q_b, k_{t_b})/\tau)}{\sum_j \exp(\cos(q_b, k_j)/\tau)}` over the
    rows of ``keys (N, r)``; ``targets (B,)`` default ``arange(B)`` (in-batch: ``keys`` row-aligned
    with ``queries``). MGCN's ``InfoNCE`` (mean, in-batch) and LGMRec's ``ssl_triple_loss``
    (sum, all rows as keys) of MMRec, as a cross-entropy (no overflowing ``exp``)."""
    logits = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T / temperature  # (B, N)
    if targets is None:
        targets = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(logits, targets, reduction=reduction)

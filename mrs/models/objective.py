r"""The training loss, assembled in one place for every user encoder, encoder, fusion and main loss.

A training step gives ``N`` predictions, each a CP query ``q_n`` (the user row, or a sequence
state, folded with the target's mode rows), its target item ``y_n`` and, where the main loss or
a plug-in needs them, sampled negatives ``j_{n,k}``. Where the predictions come from is the
trainer's business (BPR triples: one per (user, positive); sequences: one per position with a
target, :mod:`mrs.train.sequences`); *which terms the loss has* is decided here only:

.. math::
    \mathcal{L} = \underbrace{\ell_{main}(q, y, j)}_{\texttt{model.loss}}
      + \frac{\lambda}{N} \sum_{\theta \in \Theta_{batch}} \|\theta\|^2
      + \frac{1}{N} \sum_{i \in batch} \mu_i \|Q^{id}_i - W e_i\|^2
      + \sum_{p \in plug-ins} \mathcal{L}_p

- ``ℓ_main``: ``bpr``, ``ce`` (full softmax), ``sampled_softmax`` or ``bce`` (:data:`mrs.losses.LOSSES`),
  or ``none`` (zero) for an encoder whose own terms are its whole objective (BM3: no negatives,
  cosine terms; ``model.loss=auto`` picks it there, :attr:`mrs.models.base.Encoder.default_loss`);
- ``Θ_batch``: the user ID rows the batch touched (``id`` user encoder), the item ID rows of the
  targets and negatives, and the mode factor rows minus one (their "no context effect" value);
- the semantic coupling when ``model.coupling_mu0 > 0``;
- every plug-in's ``aux_losses``: the encoder's (FREEDOM's per-modality BPR, VBPR's and
  LATTICE's MMRec regularisers, BM3's bootstrap terms, which read the queries) and the fusion's
  (gated fusion's and FAERec's ID/semantic alignment, which also read the predictions themselves).

Every term that is configured appears in the returned parts under its name, so the trainer logs
it; ``tests/train/test_loss_terms.py`` checks that for every registered combination.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mrs.losses import LOSSES, coupling_loss, l2_reg


@dataclass
class Predictions:
    """The ``N`` predictions of one training step."""

    users: Tensor             # (N,) long: whose prediction (their ID rows: L2, FREEDOM's term)
    queries: Tensor           # (N, R): q = user row or state ⊙ Π_j M_j[m_j]
    pos: Tensor               # (N,) long: the target items
    modes: Tensor             # (N, k) long: the targets' mode values
    neg: Tensor | None = None  # (N,) or (N, K) long sampled negatives, (1, K) shared by all; None: nothing sampled
    # (N,) long: next-item sequences: the input item at each prediction's position (n_items for
    # the no-history predictions); None where there is none (BPR triples, cloze)
    inputs: Tensor | None = None


def training_loss(model, p: Predictions, emb: tuple[Tensor, Tensor], loss: str,
                  user_rows: bool = True) -> tuple[Tensor, dict[str, float]]:
    """``(total, parts)`` for :class:`Predictions` ``p`` of ``model`` (a
    :class:`~mrs.models.model.CPRecommender`); ``emb``: this step's ``model.encode()``.
    ``user_rows``: whether the predictions read the users' ID rows (so they are regularised);
    a sequence state reads item rows only."""
    user_emb, item_emb = emb
    n, q = p.pos.shape[0], p.queries
    items = p.pos if p.neg is None else torch.cat([p.pos, p.neg.reshape(-1)])  # (N [+ N*K],): one gather
    rows = item_emb[items]
    pos_s = model.scorer.score(q, rows[:n])                                        # (N,)
    neg_s = None
    if p.neg is not None:
        if p.neg.dim() == 2 and p.neg.shape[0] == 1 < n:  # (1, K) shared by all: one matmul
            neg_s = model.scorer.rank_all(q, rows[n:])                             # (N, K)
        else:
            neg_s = model.scorer.score(q, rows[n:].view(*p.neg.shape, -1))         # (N,) or (N, K)
        hits = p.neg == (p.pos if p.neg.dim() == 1 else p.pos[:, None])            # (1, K) broadcasts
        if hits.any():  # a sampled negative that is the target itself carries no signal
            neg_s = neg_s.masked_fill(hits, float("-inf"))
    main = LOSSES.get(loss)(pos_s, neg_s, lambda: model.scorer.rank_all(q, item_emb), p.pos)
    # Mode factors are regularised towards one, their "no context effect" value (= MF).
    ego = [*(model.user_encoder.reg_rows(p.users) if user_rows else []), model.item_emb.weight[items],
           *(m - 1.0 for m in model.scorer.mode_rows(p.modes))]
    if model.reg:
        l2 = l2_reg(*ego, batch_size=n)
    else:  # logged, not trained: no backward through a term weighted zero
        with torch.no_grad():
            l2 = l2_reg(*ego, batch_size=n)
    total = main + model.reg * l2
    parts = {loss: main.item(), "l2": l2.item()}
    if model.coupling is not None:
        e = torch.cat([x[items] for x in model.features().values()], dim=1)       # (N', Σd)
        c = coupling_loss(model.item_emb.weight[items], model.coupling(e), model.coupling_mu[items]) / n
        total = total + c
        parts["coupling"] = c.item()
    from mrs.models.base import Batch

    batch = Batch(p.users, p.pos, p.neg, p.modes, q)
    extra = {**model.encoder.aux_losses(batch, user_emb, item_emb),
             **model.fusion.aux_losses(items, model.item_emb.weight, model.features(), predictions=p)}
    for name, term in extra.items():
        total = total + term
        parts[name] = term.item()
    return total, parts


def n_negatives(model, loss: str, loss_negatives: int) -> int:
    """Negatives per prediction the step must sample: what the main loss needs, and at least
    one where a plug-in's own term reads negatives (FREEDOM's modality BPR, FAERec's alignment)."""
    k = LOSSES.get(loss).negatives(loss_negatives)
    plugins = (model.encoder, model.fusion)
    return max(k, 1) if any(getattr(x, "needs_negatives", False) for x in plugins) else k

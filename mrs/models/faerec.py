r"""FAERec (Fusion and Alignment Enhancement for sequential recommendation; public code
ZhifuWei/FAERec, Apache-2.0, re-implemented here from its formulas) as a fusion plug-in of the
SASRec user encoder: ``model.user_encoder: sasrec``, ``model.fusion: faerec``, options under
``model.options.faerec.*`` (:class:`FAERecOptions`; defaults = the published code's Beauty run).

**Semantic mapper** (the modalities concatenated, ``x_i ∈ R^D``; ``mapper_dropout`` = 0.3):

.. math::
    \varphi(x) = W_2\, \mathrm{Dropout}(\mathrm{GELU}(W_1 x + b_1)) + b_2,
    \qquad W_1: D \to \lfloor D/2 \rfloor,\; W_2: \lfloor D/2 \rfloor \to r

**Gated sequence inputs** (replacing SASRec's ``Dropout(LayerNorm(√r · Q[i_t] + p_t))``): at
position ``t`` with position row ``p_t`` and the user encoder's dropout ``Dropout_h``
(``model.seq_dropout``),

.. math::
    a_t = \mathrm{Dropout_h}(e_{i_t} + p_t), \quad b_t = \mathrm{Dropout_h}(\varphi(x_{i_t}) + p_t), \quad
    g_t = \sigma\big(W_b\, \mathrm{Dropout}(\mathrm{GELU}(W_a [a_t; b_t] + c_a)) + c_b\big), \quad
    h_t = \mathrm{LayerNorm}\big(g_t \odot a_t + (1 - g_t) \odot b_t\big)

with ``W_a: 2r → 2r``, ``W_b: 2r → r`` (``gate_dropout`` = 0.1; ``c_b`` starts at zero). Padding
reads a zero ID row and ``φ`` of a zero feature row (its keys are masked by the encoder). The
inputs read the raw ID table ``E_id``; with a graph ``model.encoder`` only the scoring rows are
propagated.

**Scoring rows** (``scoring``):

- ``published`` (default): ``E_id`` while training (the model is in train mode) and
  ``LayerNorm(E_id + φ(X))`` when evaluating (the published ``predict_full``; the same LayerNorm
  as the inputs'). The test-time rows are never scored by the training loss; we keep this as the
  default because the published numbers were measured this way, and ``predict_full`` is a
  deliberate, separate function of theirs, not an accident.
- ``consistent``: ``LayerNorm(g ⊙ E_id + (1 − g) ⊙ φ(X))`` with ``g`` the same gate on
  ``[E_id; φ(X)]`` (no positions), at training and at evaluation.

**Dual-level alignment** over the step's items ``n = 1..N``: the input item of every sequence
position and one sampled negative per position (occurrences, duplicates kept; FAERec's
``[input_ids; target_neg]`` without padding), ``e_n = E_id[i_n]``, ``s_n = φ(x_{i_n})`` (mapper
dropout on):

.. math::
    \mathcal{L}_{item} = -\frac1N \sum_n \log \frac{\exp(\hat e_n \cdot \hat s_n / \tau)}
        {\sum_{m:\, m = n \,\vee\, i_m \ne i_n} \exp(\hat e_n \cdot \hat s_m / \tau)}
    \quad (\hat\cdot: \text{unit rows; ID} \to \text{semantic only; other occurrences of } i_n \text{ masked})

    \mathcal{L}_{feat} = \mathrm{BT}(H) + \mathrm{BT}(T), \quad
    H = \{n : \mathrm{pop}(i_n) \ge \mathrm{median}_m\, \mathrm{pop}(i_m)\},\; T = \text{the rest}

    \mathrm{BT}(G) = \sum_k (1 - C_{kk})^2 + \gamma \sum_{k \ne l} C_{kl}^2, \quad
    C = Z_e^\top Z_s / |G|, \quad Z = (X - \bar X) / (\mathrm{std}(X) + 10^{-5}) \text{ per column over } G

(``pop`` = train interactions, at least 1; the lower median; a group of fewer than 2 rows adds
0; ``γ = bt_gamma`` = 0.005; ``std`` unbiased.) **Curriculum** (0-based epoch ``k``):

.. math::
    w_{item} = (w_{max} - w_{min}) \frac{1 + \cos(2\pi k / P)}{2} + w_{min}, \qquad w_{feat} = 1 - w_{item}

The loss gets ``align_weight · (w_item · L_item + w_feat · L_feat)``, logged as ``align_item`` and
``align_feature`` (each with its weights). FAERec's main loss, BCE with one negative, is
``model.loss: bce`` (mrs draws the negative uniformly among items other than the target; FAERec
excludes the user's whole sequence); its weight decay 0 is ``model.reg: 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs.errors import MrsError
from mrs.models.base import FUSIONS, USERS, BuildContext, Fusion
from mrs.models.gated import principal_scores


@dataclass
class FAERecOptions:
    tau: float = 0.05  # InfoNCE temperature τ (item_tou)
    w_min: float = 0.9  # curriculum: smallest item-level weight (published Beauty .9, Food .7, Yelp .3)
    w_max: float = 1.0  # curriculum: largest item-level weight
    period: int = 30  # curriculum period P in epochs (published Beauty 30, Food 20, Yelp 25)
    align_weight: float = 0.2  # weight of the whole alignment term (cl_weight)
    bt_gamma: float = 0.005  # Barlow-Twins off-diagonal weight γ
    mapper_dropout: float = 0.3  # dropout inside the semantic mapper φ
    gate_dropout: float = 0.1  # dropout inside the gate network
    pca_init: bool = True  # the ID table starts as the PCA scores of the content (unscaled, as published)
    scoring: Literal["published", "consistent"] = "published"  # see the module docstring


def curriculum(epoch: int, w_min: float, w_max: float, period: int) -> tuple[float, float]:
    """``(w_item, w_feat)`` at a 0-based ``epoch``: a cosine of period ``P`` from ``w_max`` down to
    ``w_min`` and back; the feature level gets the rest."""
    w_item = (w_max - w_min) * (1 + math.cos(2 * math.pi * epoch / period)) / 2 + w_min
    return w_item, 1.0 - w_item


def item_info_nce(e: Tensor, s: Tensor, items: Tensor, tau: float) -> Tensor:
    """ID → semantic InfoNCE over occurrences ``e, s (N, r)`` of ``items (N,)``: row ``n``'s
    positive is ``s_n``; the other occurrences of the same item are masked out (``-inf``)."""
    logits = F.normalize(e, dim=1) @ F.normalize(s, dim=1).T / tau               # (N, N)
    same = items[:, None] == items[None, :]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(items), device=e.device))


def barlow_twins(e: Tensor, s: Tensor, gamma: float) -> Tensor:
    """``Σ_k (1 − C_kk)² + γ Σ_{k≠l} C_kl²`` with ``C = Z_eᵀ Z_s / n`` of per-column standardised
    ``e, s (n, r)`` (unbiased std, ``+ 1e-5``)."""
    ze = (e - e.mean(0)) / (e.std(0) + 1e-5)
    zs = (s - s.mean(0)) / (s.std(0) + 1e-5)
    c = ze.T @ zs / e.shape[0]                                                     # (r, r)
    on = torch.diagonal(c)
    return (1 - on).pow(2).sum() + gamma * (c.pow(2).sum() - on.pow(2).sum())


def popularity_barlow_twins(e: Tensor, s: Tensor, pop: Tensor, gamma: float) -> Tensor:
    """Barlow-Twins within the rows at or above the batch's (lower) median popularity and within
    the rows below it, summed; a group of fewer than two rows adds nothing."""
    high = pop >= torch.median(pop)
    total = e.new_zeros(())
    for group in (high, ~high):
        if int(group.sum()) > 1:
            total = total + barlow_twins(e[group], s[group], gamma)
    return total


@FUSIONS.register("faerec", rank=5)
class FAERecFusion(Fusion):
    """FAERec: gated ID/LLM fusion of the SASRec inputs, dual-level alignment, cosine curriculum."""

    Options = FAERecOptions
    needs_negatives = True    # the alignment reads one negative per position
    embeds_sequences = True   # the gate acts on the position-embedded input sequence

    def __init__(self, dims: dict[str, int], dim: int, popularity: Tensor, o: FAERecOptions,
                 pca: Tensor | None = None):
        super().__init__()
        self.names, self.o, self.pca = list(dims), o, pca
        d = sum(dims.values())
        self.mapper = nn.Sequential(nn.Linear(d, max(1, d // 2)), nn.GELU(), nn.Dropout(o.mapper_dropout),
                                    nn.Linear(max(1, d // 2), dim))                # φ
        self.gate = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Dropout(o.gate_dropout),
                                  nn.Linear(2 * dim, dim), nn.Sigmoid())
        with torch.no_grad():
            self.gate[3].bias.zero_()  # as published: g starts near 1/2 for small inputs
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.register_buffer("popularity", popularity.float().clamp(min=1), persistent=False)
        self.epoch = 0

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "FAERecFusion":
        o: FAERecOptions = cls.options(cfg)
        key = "model.options.faerec."
        ue = USERS.get(cfg.user_encoder)
        if not (ue.sequential and getattr(ue, "causal", False)):
            raise MrsError(f"config key 'model.user_encoder': model.fusion=faerec gates the SASRec input "
                           f"sequence and needs 'sasrec', got {cfg.user_encoder!r}")
        if o.tau <= 0:
            raise MrsError(f"config key '{key}tau' must be > 0, got {o.tau}")
        if o.period < 1:
            raise MrsError(f"config key '{key}period' must be >= 1, got {o.period}")
        if not 0.0 <= o.w_min <= o.w_max <= 1.0:
            raise MrsError(f"config keys '{key}w_min' <= '{key}w_max' in [0, 1] required "
                           f"(got w_min={o.w_min}, w_max={o.w_max})")
        if o.align_weight < 0 or o.bt_gamma < 0:
            raise MrsError(f"config keys '{key}align_weight' and '{key}bt_gamma' must be >= 0 "
                           f"(got {o.align_weight}, {o.bt_gamma})")
        for name in ("mapper_dropout", "gate_dropout"):
            if not 0.0 <= getattr(o, name) < 1.0:
                raise MrsError(f"config key '{key}{name}' must be in [0, 1), got {getattr(o, name)}")
        pca = None
        if o.pca_init:
            x = torch.cat([ctx.features[m] for m in ctx.features], 1).float()       # (I, D)
            pca = principal_scores(x, min(cfg.dim, *x.shape))
        return cls(ctx.feature_dims, cfg.dim, ctx.item_counts, o, pca)

    def init_item_ids(self, item_ids: Tensor) -> None:
        """The first ``k = min(r, D, I)`` ID columns become the content's principal component
        scores, unscaled (as published; columns beyond ``k`` keep their random start)."""
        if self.pca is not None:
            item_ids[:, :self.pca.shape[1]] = self.pca.to(item_ids)

    # ------------------------------------------------------------------ the fused rows
    def content(self, feats: dict[str, Tensor], rows: Tensor | None = None) -> Tensor:
        """``[x^(1) ‖ … ‖ x^(M)]`` of all items ``(I, D)``, or of ``rows`` (any shape; id ``I`` is
        padding and reads a zero row) ``(*rows.shape, D)``."""
        if rows is None:
            return torch.cat([feats[m] for m in self.names], 1)
        n = feats[self.names[0]].shape[0]
        real = (rows < n)[..., None]
        idx = rows.clamp(max=n - 1)
        return torch.cat([feats[m][idx] for m in self.names], -1) * real

    def mix(self, a: Tensor, b: Tensor) -> Tensor:
        """``g ⊙ a + (1 − g) ⊙ b`` with ``g = gate([a; b])``, per row and dimension."""
        g = self.gate(torch.cat([a, b], -1))
        return g * a + (1 - g) * b

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """The scoring rows ``(I, r)`` (see ``scoring`` in the module docstring)."""
        if self.o.scoring == "published" and self.training:
            return item_ids
        s = self.mapper(self.content(feats))                                       # (I, r)
        if self.o.scoring == "published":
            return self.norm(item_ids + s)
        return self.norm(self.mix(item_ids, s))

    def sequence_inputs(self, seq: Tensor, positions: Tensor, dropout: nn.Module, *,
                        item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """``h (B, L, r)`` of ``seq (B, L)`` (padding = ``len(item_ids)``): the gated inputs."""
        n = item_ids.shape[0]
        e = item_ids[seq.clamp(max=n - 1)] * (seq < n)[..., None]                  # zero row at padding
        s = self.mapper(self.content(feats, seq))                                  # (B, L, r)
        return self.norm(self.mix(dropout(e + positions), dropout(s + positions)))

    # ------------------------------------------------------------------ alignment
    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def weights_now(self) -> tuple[float, float]:
        """``(w_item, w_feat)`` of the curriculum at the current epoch."""
        return curriculum(self.epoch, self.o.w_min, self.o.w_max, self.o.period)

    @property
    def aux_reads_whole_batch(self) -> bool:
        return self.o.align_weight > 0  # in-batch InfoNCE negatives, batch statistics

    def alignment_items(self, items: Tensor, predictions) -> Tensor:
        """The step's items FAERec aligns: each position's input item and its first sampled
        negative (non-padding), or, without sequence inputs, the targets and negatives ``items``."""
        if predictions is None or predictions.inputs is None:
            return items
        real = predictions.inputs < self.popularity.shape[0]
        parts = [predictions.inputs[real]]
        if predictions.neg is not None:
            parts.append(predictions.neg.reshape(len(real), -1)[real, 0])
        return torch.cat(parts)

    def aux_losses(self, items: Tensor, item_ids: Tensor, feats: dict[str, Tensor],
                   predictions=None) -> dict[str, Tensor]:
        if self.o.align_weight <= 0:
            return {}
        ids = self.alignment_items(items, predictions)
        if ids.numel() < 2:
            return {}
        e, s = item_ids[ids], self.mapper(self.content(feats, ids))                # (N, r) each
        w_item, w_feat = self.weights_now()
        a = self.o.align_weight
        return {"align_item": a * w_item * item_info_nce(e, s, ids, self.o.tau),
                "align_feature": a * w_feat * popularity_barlow_twins(e, s, self.popularity[ids],
                                                                      self.o.bt_gamma)}

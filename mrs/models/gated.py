r"""FAERec-style gated fusion of the item ID embedding with its semantic (content) embedding, and
the ID/semantic alignment losses (Fusion and Alignment Enhancement, FAERec; public code in
ZhifuWei/FAERec).

.. math::
    s_i = \varphi(x_i) = W [x_i^{(1)} \,\|\, \dots \,\|\, x_i^{(M)}] + b, \qquad
    g_i = \sigma\big(\mathrm{MLP}([e_i;\, s_i])\big) \in (0, 1)^r, \qquad
    \mathbf{q}^{(0)}_i = g_i \odot e_i + (1 - g_i) \odot s_i

Several modalities share **one gate over their joint projection** (the concatenated features
through one linear map φ), so the gate says "ID vs content" per item and dimension, whatever
the number of modalities. With ``model.gate_pca_init`` (default on) the ID table starts as the
first ``r`` principal components of the concatenated features (rescaled to the table's initial
spread), as FAERec initialises its ID embeddings from the LLM embeddings.

Alignment over the batch's distinct items ``B`` (``E = e_B``, ``S = φ(x_B)``), weighted by
``model.align_item`` and ``model.align_feature``:

.. math::
    \mathcal{L}_{item} = \tfrac12\big[\mathrm{CE}(\hat E \hat S^\top / \tau, I) + \mathrm{CE}(\hat S \hat E^\top / \tau, I)\big]
    \quad(\hat{\cdot}: \text{unit rows; InfoNCE, positives on the diagonal})

    \mathcal{L}_{feat} = \frac{1}{r^2} \big\| \mathrm{corr}(E) - \mathrm{corr}(S) \big\|_F^2, \qquad
    \mathrm{corr}(X) = \tfrac{1}{|B|} Z^\top Z,\; Z = \text{columns of } X \text{ standardised over } B

Curriculum (``model.align_schedule = N``): item-level alignment at full weight from the first
epoch; the feature-level weight is ``align_feature · min(1, epoch / N)`` (0-based epochs), so it
ramps in over the first ``N`` epochs (N = 0: full weight from the start).

The mean gate (the ID side's share) of tail items (outside the top 20% by train count) and head
items (the top 20%) is reported by :meth:`GatedFusion.weights` and logged every epoch as
``alpha/gate_tail`` and ``alpha/gate_head``: below the head value means tail items lean on content.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrs.models.base import FUSIONS, BuildContext, Fusion

MAX_ALIGN_ITEMS = 2048  # InfoNCE over at most this many distinct items of a batch ((B, B) logits)


def popularity_split(counts: Tensor, head_share: float = 0.2) -> tuple[Tensor, Tensor]:
    """``(tail, head)`` bool ``(I,)``: head = the ``ceil(head_share · I)`` most-trained items,
    among items trained at all (a never-bought item is tail, even where more than
    ``1 - head_share`` of the catalogue is never bought)."""
    n_head = min(max(1, math.ceil(head_share * counts.numel())), int((counts > 0).sum()))
    head = torch.zeros(counts.numel(), dtype=torch.bool)
    head[torch.argsort(counts, descending=True, stable=True)[:n_head]] = True
    return ~head, head


def principal_scores(x: Tensor, k: int, exact_max_flops: float = 2e10) -> Tensor:
    """``x (n, d)`` -> the scores of its ``k`` leading principal components ``(n, k)``: an exact
    SVD of the centred matrix when it is small, else randomised with ``k + 10`` oversampled
    directions (without oversampling the last of 4 components had |cos| 0.59 to the exact one).
    Signs follow the SVD's convention (either sign is a valid component)."""
    xc = x - x.mean(0)
    if x.shape[0] * x.shape[1] * min(x.shape) <= exact_max_flops:  # seconds on a CPU
        u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    else:
        u, s, _ = torch.pca_lowrank(xc, q=min(k + 10, *x.shape), center=False, niter=4)
    return u[:, :k] * s[:k]


def correlation(x: Tensor) -> Tensor:
    """``x (n, r)`` -> ``(r, r)`` correlation of its columns over the rows."""
    z = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-6)
    return z.T @ z / x.shape[0]


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE between row-aligned ``a (n, r)`` and ``b (n, r)`` (pairs on the diagonal)."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature  # (n, n)
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@FUSIONS.register("gated", rank=4)
class GatedFusion(Fusion):
    """FAERec gate: per item and dimension, g ⊙ e_id + (1 − g) ⊙ φ(content), plus ID/semantic alignment."""

    def __init__(self, dims: dict[str, int], dim: int, tail: Tensor, head: Tensor,
                 pca: Tensor | None = None, align_item: float = 0.0, temperature: float = 0.2,
                 align_feature: float = 0.0, schedule: int = 0):
        super().__init__()
        self.names = list(dims)
        self.proj = nn.Linear(sum(dims.values()), dim)                   # φ
        self.gate = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.register_buffer("tail", tail, persistent=False)
        self.register_buffer("head", head, persistent=False)
        self.pca = pca
        self.align_item, self.temperature = align_item, temperature
        self.align_feature, self.schedule = align_feature, schedule
        self.epoch = 0
        self._gate_mean: Tensor | None = None                            # (I,) last forward's gate

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "GatedFusion":
        from mrs.errors import MrsError

        if cfg.align_item_temp <= 0 or cfg.align_schedule < 0 or min(cfg.align_item, cfg.align_feature) < 0:
            raise MrsError("config keys 'model.align_item_temp' > 0, 'model.align_schedule' >= 0 and "
                           "'model.align_item', 'model.align_feature' >= 0 required")
        tail, head = popularity_split(ctx.item_counts)
        pca = None
        if cfg.gate_pca_init:
            x = torch.cat([ctx.features[m] for m in ctx.features], 1).float()  # (I, Σd)
            k = min(cfg.dim, *x.shape)
            pca = principal_scores(x, k)                                  # (I, k) component scores
        return cls(ctx.feature_dims, cfg.dim, tail, head, pca, cfg.align_item, cfg.align_item_temp,
                   cfg.align_feature, cfg.align_schedule)

    def init_item_ids(self, item_ids: Tensor) -> None:
        """PCA initialisation: the first ``k = min(dim, feature dims, items)`` columns become the
        principal component scores, scaled to the random table's standard deviation (so with real
        features, whose dimension exceeds ``dim``, every column; only where ``k < dim`` do the
        columns beyond ``k`` stay random)."""
        if self.pca is None:
            return
        k = self.pca.shape[1]
        p = self.pca.to(item_ids)
        item_ids[:, :k] = p * (item_ids.std() / (p.std() + 1e-12))

    def semantic(self, feats: dict[str, Tensor], rows: Tensor | None = None) -> Tensor:
        x = torch.cat([feats[m] if rows is None else feats[m][rows] for m in self.names], 1)
        return self.proj(x)                                               # (n, r)

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        s = self.semantic(feats)                                          # (I, r)
        g = torch.sigmoid(self.gate(torch.cat([item_ids, s], 1)))         # (I, r)
        self._gate_mean = g.detach().mean(1)                              # for weights(): no grad kept
        return g * item_ids + (1 - g) * s

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def feature_weight(self) -> float:
        """The curriculum's feature-level weight at the current epoch."""
        ramp = 1.0 if self.schedule == 0 else min(1.0, self.epoch / self.schedule)
        return self.align_feature * ramp

    @property
    def aux_reads_whole_batch(self) -> bool:
        return self.align_item > 0 or self.align_feature > 0  # in-batch InfoNCE and correlations

    def aux_losses(self, items: Tensor, item_ids: Tensor, feats: dict[str, Tensor],
                   predictions=None) -> dict[str, Tensor]:
        w_item, w_feat = self.align_item, self.feature_weight()
        if w_item <= 0 and w_feat <= 0:
            return {}
        rows = torch.unique(items)
        if rows.numel() > MAX_ALIGN_ITEMS:  # a random subset bounds the (n, n) InfoNCE logits
            rows = rows[torch.randperm(rows.numel(), device=rows.device)[:MAX_ALIGN_ITEMS]]
        e, s = item_ids[rows], self.semantic(feats, rows)                 # (n, r) each
        out = {}
        if w_item > 0 and rows.numel() > 1:
            out["align_item"] = w_item * info_nce(e, s, self.temperature)
        if w_feat > 0 and rows.numel() > 1:
            out["align_feature"] = w_feat * (correlation(e) - correlation(s)).pow(2).mean()
        return out

    def weights(self) -> dict[str, float]:
        """Mean gate (ID share) over tail and head items, from the last forward pass."""
        g = self._gate_mean
        if g is None:
            return {}
        return {"gate_tail": float(g[self.tail].mean()), "gate_head": float(g[self.head].mean())}

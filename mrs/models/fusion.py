"""Phase 2: fusion of the item ID embedding and content modalities (text, image, ...) into the
item *ego* rows that the encoder propagates (so items without interactions still get a content
representation). Every fusion has the :class:`mrs.models.base.Fusion` contract
``(item_ids (I, r), {modality: (I, d_m)}) -> (I, n_blocks · r)``:

- ``none``: the ID embedding alone.
- ``concat`` (baseline): ``e_id + W [x_1 ‖ x_2 ‖ ...]``, one linear map -> ``(I, r)``.
- ``early``: each modality projected to a joint space, combined with learned weights
  ``α = softmax(a)`` over modalities: ``e_id + W_o Σ_m α_m P_m x_m`` -> ``(I, r)``. Cost
  O(Σ d_m · d_joint), any number of modalities.
- ``late``: one branch per modality plus the ID branch; each is its own ``r``-dim block
  (``P_m x_m``), and the score is ``Σ_b w_b ⟨u_b, i_b⟩`` with ``w = n_b · softmax(a)`` (uniform
  weights = plain sum) through :meth:`score_scale`. The blocks are concatenated so the encoder
  and the CP scorer treat them as one ``n_b · r`` embedding, and full ranking stays one matmul.

A new fusion is one class here (or in its own module under ``mrs/models/``) registered with
``@FUSIONS.register("name")``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mrs.models.base import FUSIONS, BuildContext, Fusion


def _key(name: str) -> str:
    """Module names cannot contain '.', feature store names may (``text-bert.v2``)."""
    return name.replace(".", "_")


@FUSIONS.register("none", rank=0)
class NoFusion(Fusion):
    """IDs only (no content)."""

    needs_features = False

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "NoFusion":
        return cls()

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        return item_ids


@FUSIONS.register("concat", rank=1)
class ConcatFusion(Fusion):
    """Concatenated modalities, one linear map, added to the ID embedding (the baseline)."""

    def __init__(self, dims: dict[str, int], out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.proj = nn.Linear(sum(dims.values()), out_dim)

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "ConcatFusion":
        return cls(ctx.feature_dims, cfg.dim)

    def content(self, feats: dict[str, Tensor]) -> Tensor:
        return self.proj(torch.cat([feats[m] for m in self.names], dim=1))  # (I, out)

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        return item_ids + self.content(feats)  # (I, r)


@FUSIONS.register("early", rank=2)
class EarlyFusion(Fusion):
    """Per-modality projections into a joint space, mixed by learned weights α = softmax(a)."""

    def __init__(self, dims: dict[str, int], joint_dim: int, out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({_key(m): nn.Linear(d, joint_dim) for m, d in dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(dims)))  # α starts uniform
        self.out = nn.Identity() if joint_dim == out_dim else nn.Linear(joint_dim, out_dim)

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "EarlyFusion":
        return cls(ctx.feature_dims, cfg.joint_dim, cfg.dim)

    def alpha(self) -> Tensor:
        return torch.softmax(self.logits, 0)  # (M,), sums to 1

    def content(self, feats: dict[str, Tensor]) -> Tensor:
        z = torch.stack([self.proj[_key(m)](feats[m]) for m in self.names], dim=0)  # (M, I, joint)
        return self.out(torch.einsum("m,mij->ij", self.alpha(), z))  # (I, out)

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        return item_ids + self.content(feats)  # (I, r)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.alpha().tolist()))


@FUSIONS.register("late", rank=3)
class LateFusion(Fusion):
    """One block per branch (IDs and each modality), scores combined with learned weights."""

    def __init__(self, dims: dict[str, int], out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.out_dim = out_dim
        self.n_blocks = len(dims) + 1  # the ID block is the model's own item embedding
        self.proj = nn.ModuleDict({_key(m): nn.Linear(d, out_dim) for m, d in dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(dims) + 1))

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "LateFusion":
        return cls(ctx.feature_dims, cfg.dim)

    @classmethod
    def blocks(cls, ctx: BuildContext) -> int:
        return len(ctx.features) + 1

    def alpha(self) -> Tensor:
        return torch.softmax(self.logits, 0)  # (1 + M,) over [id, *modalities]

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        blocks = [self.proj[_key(m)](feats[m]) for m in self.names]
        return torch.cat([item_ids, *blocks], dim=1)  # (I, (1 + M) r)

    def score_scale(self) -> Tensor:
        """Per-dimension score weights ``(n_b · r,)``: block ``b`` scaled by ``n_b · α_b``."""
        return (self.n_blocks * self.alpha()).repeat_interleave(self.out_dim)

    def weights(self) -> dict[str, float]:
        return dict(zip(["id", *self.names], self.alpha().tolist()))

"""Phase 2: fusion of item content modalities (text, image, ...) into the item representation.

Every fusion maps the fixed feature matrices ``{modality: (I, d_m)}`` to item *ego* inputs that the
encoder then propagates (so items without interactions still get a content representation):

- ``concat`` (baseline): ``W [x_1 ‖ x_2 ‖ ...]``, one linear map -> ``(I, r)``.
- ``early``: each modality projected to a joint space, combined with learned weights
  ``α = softmax(a)`` over modalities: ``z = W_o Σ_m α_m P_m x_m`` -> ``(I, r)``. Cost O(Σ d_m · d_joint),
  any number of modalities.
- ``late``: one branch per modality plus the ID branch; each is its own ``r``-dim block
  (``P_m x_m``), and the score is ``Σ_b w_b ⟨u_b, i_b⟩`` with ``w = n_b · softmax(a)`` (uniform
  weights = plain sum). The blocks are concatenated so the encoder and the CP scorer treat them as
  one ``n_b · r`` embedding, and full ranking stays one matmul.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _key(name: str) -> str:
    """Module names cannot contain '.', feature store names may (``text-bert.v2``)."""
    return name.replace(".", "_")


class ConcatFusion(nn.Module):
    """``[x_1 ‖ ... ‖ x_M] -> (I, out_dim)`` by one linear map."""

    def __init__(self, dims: dict[str, int], out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.proj = nn.Linear(sum(dims.values()), out_dim)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return self.proj(torch.cat([feats[m] for m in self.names], dim=1))  # (I, out)

    def weights(self) -> dict[str, float]:
        return {}


class EarlyFusion(nn.Module):
    """Per-modality projections into a ``joint_dim`` space, mixed by ``α = softmax(a)``."""

    def __init__(self, dims: dict[str, int], joint_dim: int, out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.proj = nn.ModuleDict({_key(m): nn.Linear(d, joint_dim) for m, d in dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(dims)))  # α starts uniform
        self.out = nn.Identity() if joint_dim == out_dim else nn.Linear(joint_dim, out_dim)

    def alpha(self) -> Tensor:
        return torch.softmax(self.logits, 0)  # (M,), sums to 1

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        z = torch.stack([self.proj[_key(m)](feats[m]) for m in self.names], dim=0)  # (M, I, joint)
        return self.out(torch.einsum("m,mij->ij", self.alpha(), z))  # (I, out)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.names, self.alpha().tolist()))


class LateFusion(nn.Module):
    """One ``out_dim`` block per modality (the ID block is the model's own embedding), and the
    learned branch weights ``n_b · softmax(a)`` over ``["id", *modalities]``."""

    def __init__(self, dims: dict[str, int], out_dim: int):
        super().__init__()
        self.names = list(dims)
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({_key(m): nn.Linear(d, out_dim) for m, d in dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(dims) + 1))

    @property
    def n_blocks(self) -> int:
        return len(self.names) + 1

    def alpha(self) -> Tensor:
        return torch.softmax(self.logits, 0)  # (1 + M,) over [id, *modalities]

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.cat([self.proj[_key(m)](feats[m]) for m in self.names], dim=1)  # (I, M * out)

    def block_scale(self) -> Tensor:
        """Per-dimension score weights ``(n_b · r,)``: block ``b`` scaled by ``n_b · α_b``."""
        return (self.n_blocks * self.alpha()).repeat_interleave(self.out_dim)

    def weights(self) -> dict[str, float]:
        return dict(zip(["id", *self.names], self.alpha().tolist()))


def build_fusion(kind: str, dims: dict[str, int], dim: int, joint_dim: int) -> nn.Module | None:
    """The fusion module for ``model.fusion`` (``None`` for ``"none"``)."""
    if kind == "none":
        return None
    if kind == "concat":
        return ConcatFusion(dims, dim)
    if kind == "early":
        return EarlyFusion(dims, joint_dim, dim)
    if kind == "late":
        return LateFusion(dims, dim)
    raise ValueError(kind)

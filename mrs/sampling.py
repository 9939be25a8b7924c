"""Negative sampling for BPR: uniform over each user's non-train items, and dynamic hard negatives.

False negatives (items the user has in train) are excluded *exactly* and without any Python loop
over users. The train pairs are stored as sorted int64 keys ``user * n_items + item``. For user
``u`` with sorted train items ``o_0 < o_1 < ... < o_{d-1}``, the number of non-train items below
``o_j`` is ``o_j - j`` (non-decreasing in ``j``), so the ``r``-th non-train item is

    item = r + #{j : o_j - j <= r}

and the count is one ``searchsorted`` into the global array ``u * n_items + (o_j - j)`` (still
sorted, since ``o_j - j <= n_items - d``). Drawing ``r ~ U{0, n_items - d_u - 1}`` therefore gives
a uniform non-train item in one vectorised pass: no rejection rounds, no loop, exact even for
users who own almost every item.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mrs.errors import MrsError


class NegativeSampler:
    """``NegativeSampler(train_users, train_items, n_items, seed)``; ``sample(users, ...)`` -> ``(B,)``.

    strategy ``uniform``: a uniform non-train item per query.
    strategy ``dynamic``: ``candidates`` uniform non-train items per query, scored by the current
    model under the positive's modes (context, time); keep the hardest (``pick="hardest"``) or
    draw one with probability ``softmax(score / temperature)`` (``pick="softmax"``).
    """

    def __init__(self, train_users: np.ndarray | Tensor, train_items: np.ndarray | Tensor, n_items: int,
                 seed: int = 0, strategy: Literal["uniform", "dynamic"] = "uniform", candidates: int = 16,
                 pick: Literal["hardest", "softmax"] = "hardest", temperature: float = 1.0):
        if strategy not in ("uniform", "dynamic"):
            raise MrsError(f"train.negatives: {strategy!r} is not one of ['uniform', 'dynamic']")
        if pick not in ("hardest", "softmax"):
            raise MrsError(f"negative pick {pick!r} is not one of ['hardest', 'softmax']")
        if candidates < 1 or temperature <= 0:
            raise MrsError(f"dynamic negatives need candidates >= 1 and temperature > 0 "
                           f"(got {candidates}, {temperature})")
        self.n_items = int(n_items)
        self.strategy, self.candidates, self.pick, self.temperature = strategy, candidates, pick, temperature
        users = torch.as_tensor(np.asarray(train_users)).long()
        items = torch.as_tensor(np.asarray(train_items)).long()
        if users.numel() and (items.min() < 0 or items.max() >= n_items or users.min() < 0):
            raise MrsError(f"negative sampler: train ids must be >= 0 and items < n_items={n_items}")
        self.keys = torch.unique(users * self.n_items + items)  # (E,) sorted int64
        key_users = self.keys // self.n_items
        n_users = int(key_users[-1]) + 1 if self.keys.numel() else 0
        self.deg = torch.bincount(key_users, minlength=n_users)  # (U,) distinct train items per user
        self.start = torch.cumsum(self.deg, 0) - self.deg  # (U,) first key of each user
        full = (self.deg >= self.n_items).nonzero()
        if full.numel():
            raise MrsError(f"negative sampler: user {int(full[0])} (and {full.numel() - 1} more) has every "
                           f"item in train, so no negative exists")
        j = torch.arange(self.keys.numel()) - self.start[key_users]  # rank within the user
        self.shifted = self.keys - j  # (E,) = u*n_items + (o_j - j), sorted
        self.seed = int(seed)
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(self.seed)

    def to(self, device: torch.device | str) -> "NegativeSampler":
        """Sample on ``device`` (done automatically on the first batch from that device): on a GPU
        the keys live there and sampling costs no host round trip. The generator is re-seeded
        with ``seed`` on the new device (a device's stream is reproducible, not across devices)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device != self.device:
            for name in ("keys", "shifted", "deg", "start"):
                setattr(self, name, getattr(self, name).to(device))
            self.device = device
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self

    # -- state, so that a resumed run draws the same negatives as an uninterrupted one
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "device": str(self.device)}

    def load_state_dict(self, state: dict) -> None:
        self.to(state.get("device", "cpu"))
        self.generator.set_state(state["generator"])

    def _degree(self, users: Tensor) -> Tensor:
        """Distinct train items per user (0 for ids beyond the last user with train data)."""
        n = self.deg.numel()
        if n == 0:
            return torch.zeros_like(users)
        return torch.where(users < n, self.deg[users.clamp(max=n - 1)], 0)

    def uniform(self, users: Tensor, m: int = 1) -> Tensor:
        """``m`` uniform non-train items per user: ``(B,)`` if ``m == 1`` else ``(B, m)``."""
        self.to(users.device)
        u = users.long()
        free = (self.n_items - self._degree(u)).unsqueeze(1)  # (B, 1) non-train items per user
        r = (torch.rand(u.shape[0], m, generator=self.generator, device=self.device) * free).long()
        r = torch.minimum(r, free - 1)  # (B, m); guards the rare rand() * free rounding up to free
        if self.keys.numel():
            target = u.unsqueeze(1) * self.n_items + r
            start = self.start[u.clamp(max=self.start.numel() - 1)].unsqueeze(1)
            count = (torch.searchsorted(self.shifted, target, right=True) - start).clamp_(min=0)
            count = torch.where(self._degree(u).unsqueeze(1) > 0, count, 0)
            r = r + count
        return r.squeeze(1) if m == 1 else r

    @torch.no_grad()
    def dynamic(self, users: Tensor, modes: Tensor, model, emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """One hard negative per user among ``candidates`` uniform non-train items ``(B,)``."""
        cand = self.uniform(users, self.candidates).view(users.shape[0], -1)  # (B, M)
        scores = model.score(users, cand, modes, emb)  # (B, M), under each positive's modes
        if self.pick == "hardest":
            idx = scores.argmax(1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(scores.float() / self.temperature, dim=1)
            idx = torch.multinomial(probs, 1, generator=self.generator)
        return cand.gather(1, idx).squeeze(1)

    def sample(self, users: Tensor, modes: Tensor | None = None, model=None,
               emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Negatives for one batch by the configured strategy: ``(B,)`` on ``users.device``
        (``emb``: this step's ``model.encode()``, so dynamic scoring needs no extra propagation)."""
        if self.strategy == "uniform":
            return self.uniform(users)
        if model is None:
            raise MrsError("dynamic negatives need the model (sampler.sample(users, modes, model, emb))")
        modes = modes if modes is not None else users.new_zeros(users.shape[0], 0)
        return self.dynamic(users, modes, model, emb)

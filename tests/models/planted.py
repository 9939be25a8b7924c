"""Tiny planted datasets for the model tests (no I/O): users and items in clusters, users buy
mostly inside their cluster, item content carries the cluster."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mrs.models.base import Batch
from mrs.sampling import NegativeSampler


@dataclass
class Planted:
    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    user_cluster: np.ndarray
    item_cluster: np.ndarray
    features: dict[str, torch.Tensor]


def planted(n_users=120, n_items=90, clusters=3, per_user=10, held_out=2, cold_items=0, seed=0) -> Planted:
    """``cold_items`` items (the last ones) never appear in train or test: content only."""
    rng = np.random.default_rng(seed)
    uc = rng.integers(0, clusters, n_users)
    ic = np.arange(n_items) % clusters
    warm = np.arange(n_items - cold_items)
    users, items = [], []
    for u in range(n_users):  # test data generation, not library code
        own = warm[ic[warm] == uc[u]]
        chosen = rng.choice(own, per_user, replace=False)
        users += [u] * per_user
        items += list(chosen)
    users, items = np.array(users), np.array(items)
    test = np.zeros(len(users), bool)
    test[np.arange(n_users)[:, None] * per_user + np.arange(held_out)[None, :]] = True
    onehot = np.eye(clusters)[ic]
    text = np.concatenate([onehot * 3, rng.normal(size=(n_items, 5))], 1)
    image = np.concatenate([onehot, rng.normal(size=(n_items, 3))], 1)
    feats = {"text": torch.tensor(text, dtype=torch.float32), "image": torch.tensor(image, dtype=torch.float32)}
    return Planted(n_users, n_items, users[~test], items[~test], users[test], items[test], uc, ic, feats)


def fit(model, data: Planted, epochs=30, batch=256, lr=0.05, seed=0, modes_card=()):
    """A minimal BPR loop (the real trainer lives in mrs.train)."""
    torch.manual_seed(seed)
    sampler = NegativeSampler(data.train_users, data.train_items, data.n_items, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    u_all, i_all = torch.as_tensor(data.train_users), torch.as_tensor(data.train_items)
    model.train()
    for epoch in range(epochs):
        model.on_epoch_start(epoch)
        perm = torch.randperm(len(u_all))
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            users, pos = u_all[idx], i_all[idx]
            modes = torch.zeros(len(idx), len(modes_card), dtype=torch.long)
            loss, _ = model.calculate_loss(Batch(users, pos, sampler.sample(users), modes))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def recall_at(model, data: Planted, k=10) -> float:
    """Mean recall@k of the held-out items, train items masked."""
    users = torch.arange(data.n_users)
    scores = model.full_sort_predict(users, torch.zeros(data.n_users, model.scorer.n_modes, dtype=torch.long))
    scores[torch.as_tensor(data.train_users), torch.as_tensor(data.train_items)] = -float("inf")
    top = scores.topk(k, dim=1).indices
    hit = torch.zeros_like(scores, dtype=torch.bool)
    hit[torch.as_tensor(data.test_users), torch.as_tensor(data.test_items)] = True
    n_rel = hit.sum(1).clamp(min=1)
    return float((hit.gather(1, top).sum(1) / n_rel).mean())

"""Reference implementations that only the tests need (the package keeps what it uses)."""
from __future__ import annotations

import torch
from torch import Tensor

from mrs import graph


def bipartite_adj(users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
    """Symmetric-normalised bipartite adjacency ``D^-1/2 A D^-1/2`` as one ``(U+I, U+I)`` CSR,
    the textbook form that :func:`mrs.graph.bipartite_blocks` splits into its two blocks."""
    users, items = users.long(), items.long()
    w = graph.norm_weights(users, items, n_users, n_items)
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    n = n_users + n_items
    return graph.to_csr(rows, cols, torch.cat([w, w]), (n, n))


def is_train(sampler, users: Tensor, items: Tensor) -> Tensor:
    """Bool mask, same shape as ``items``: is (user, item) a train pair of ``sampler``?"""
    keys = sampler.keys.to(users.device)
    q = users.long().view(-1, *([1] * (items.dim() - 1))) * sampler.n_items + items.long()
    if keys.numel() == 0:
        return torch.zeros_like(q, dtype=torch.bool)
    pos = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
    return keys[pos] == q

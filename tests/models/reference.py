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


def mmrec_layer_mean(adj: Tensor, user_w: Tensor, item_w: Tensor, n_layers: int) -> tuple[Tensor, Tensor]:
    """MMRec's LightGCN branch, as its models write it: ``ego = [U; I]``, ``n_layers`` products
    with the dense ``adj``, the mean of all layers, split back into users and items."""
    ego = torch.cat((user_w, item_w), dim=0)
    all_embeddings = [ego]
    for _ in range(n_layers):
        ego = adj @ ego
        all_embeddings += [ego]
    mean = torch.stack(all_embeddings, dim=1).mean(dim=1)
    return mean[:len(user_w)], mean[len(user_w):]


def mmrec_pair_bpr(out: Tensor, users: Tensor, pos: Tensor, neg: Tensor, n_users: int
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """The opening of MMRec's MMGCN and GRCN ``calculate_loss``: node rows ``out (U+I, d)``, one
    (user, item) pair per positive and per negative, BPR as ``score @ [[1], [-1]]``. Returns the
    loss and the pairs' ``user_tensor``, ``item_tensor`` (node ids) for the regularisers."""
    user_tensor = users.repeat_interleave(2)
    item_tensor = torch.stack((pos + n_users, neg + n_users)).t().contiguous().view(-1)
    score = torch.sum(out[user_tensor] * out[item_tensor], dim=1).view(-1, 2)
    loss = -torch.mean(torch.log(torch.sigmoid(torch.matmul(score, torch.tensor([[1.0], [-1.0]])))))
    return loss, user_tensor, item_tensor


def build_sim(context: Tensor) -> Tensor:
    """MMRec's ``utils.build_sim``: the dense cosine matrix of the rows."""
    context_norm = context.div(torch.norm(context, p=2, dim=-1, keepdim=True))
    return torch.mm(context_norm, context_norm.transpose(1, 0))

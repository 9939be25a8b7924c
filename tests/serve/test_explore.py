"""Exploration: the UCB bonus and the Thompson sample follow the documented formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.serve.explore import explore_scores, item_std


def test_ucb_bonus_by_hand_and_a_rare_item_promoted():
    q = torch.tensor([[3.0, 4.0]])                      # ‖q‖ = 5
    scores = torch.tensor([[1.0, 0.9, 0.5]])
    counts = np.array([99.0, 0.0, 3.0])                  # σ = 5 ŝ / sqrt(1 + n)
    s = explore_scores(scores, q, counts, scale=0.2, explore="ucb", strength=1.0)
    want = [1.0 + 1.0 / 10, 0.9 + 1.0, 0.5 + 1.0 / 2]
    assert torch.allclose(s, torch.tensor([want]))
    assert int(s.argmax()) == 1                          # the never-seen item goes first
    assert torch.equal(explore_scores(scores, q, counts, 0.2, "ucb", 0.0), scores)  # β = 0: greedy
    assert torch.equal(explore_scores(scores, q, counts, 0.2, "none", 5.0), scores)


def test_thompson_samples_the_posterior():
    q = torch.tensor([[1.0, 0.0]])
    scores = torch.zeros(1, 2)
    counts = np.array([0.0, 99.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([explore_scores(scores, q, counts, 1.0, "thompson", 1.0, g) for _ in range(4000)])
    sd = draws.std(0)
    assert abs(float(sd[0]) - 1.0) < 0.05 and abs(float(sd[1]) - 0.1) < 0.005  # ŝ‖q‖/sqrt(1+n)
    assert abs(float(draws.mean(0)[0])) < 0.05
    a = explore_scores(scores, q, counts, 1.0, "thompson", 1.0, torch.Generator().manual_seed(3))
    b = explore_scores(scores, q, counts, 1.0, "thompson", 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.allclose(item_std(q, counts, 1.0), torch.tensor([[1.0, 0.1]]))
    with pytest.raises(MrsError, match="^explore:"):
        explore_scores(scores, q, counts, 1.0, "epsilon", 1.0)


def test_service_explore_ranks_exactly_and_says_so(served):
    from mrs.serve.service import RecommendService

    svc = RecommendService.open(served[2], retrieval="folded")
    u = svc.model.user_ids[0]
    greedy = svc.recommend(u, k=20, retrieval="exact")
    same = svc.recommend(u, k=20, explore="ucb", explore_strength=0.0)
    assert same["retrieval"] == "exact" and same["explore"] == {"kind": "ucb", "strength": 0.0}
    assert [x["id"] for x in same["items"]] == [x["id"] for x in greedy["items"]]
    strong = svc.recommend(u, k=20, explore="ucb", explore_strength=100.0)
    counts = {svc.model.item_ids[j]: c for j, c in enumerate(svc.model.item_counts)}
    # a huge β ranks by uncertainty: the served items are the least-observed ones
    assert max(counts[x["id"]] for x in strong["items"]) <= np.sort(svc.model.item_counts)[19]

"""The issue-9 slices: tail items by popularity share (tail_pop) and tail users (a query slice)."""
import numpy as np
import pandas as pd
import pytest
import torch

from mrs.data.prepared import load_prepared, write_prepared
from mrs.eval import EvalConfig, evaluate
from mrs.eval.slices import item_slices, user_slices


def test_tail_pop_is_outside_the_top_share():
    counts = np.array([0, 0, 1, 5, 20, 21, 50, 100, 100, 3])
    s = item_slices(counts, ["tail_pop", "tail_user"], tail_pop_share=0.2)
    assert set(s) == {"tail_pop"}                                   # tail_user is a query slice
    assert np.flatnonzero(~s["tail_pop"]).tolist() == [7, 8]        # top 2 of 10 by count
    assert user_slices(np.array([1, 5, 6, 0]), ["tail_user"], 5)["tail_user"].tolist() == [True, True, False, True]


def test_tail_user_slice_end_to_end(tmp_path):
    # users 0, 1: 2 train items (tail users at max 2); user 2: 4 train items. Test item: one each.
    rows = [(0, 0, 0), (0, 1, 0), (0, 5, 2), (1, 2, 0), (1, 3, 0), (1, 6, 2),
            (2, 0, 0), (2, 1, 0), (2, 2, 0), (2, 3, 0), (2, 7, 2), (2, 4, 1)]
    df = pd.DataFrame(rows, columns=["user", "item", "split"])
    items = pd.DataFrame({"item": range(8), "item_id": [str(i) for i in range(8)], "text": "",
                          "image": pd.Series([None] * 8, dtype=object)})
    users = pd.DataFrame({"user": range(3), "user_id": ["a", "b", "c"]})
    ds = load_prepared(write_prepared(tmp_path / "d", df, items, users, name="t", source="test",
                                      modes={}, params={}, input_checksum="x"))
    S = torch.zeros(3, 8)
    S[0, 5] = S[1, 0] = S[2, 7] = 1.0      # users 0 and 2 hit, user 1 misses
    cfg = EvalConfig(ks=[1], metrics=["recall", "hit"], bootstrap=0, tail_user_max=2,
                     slices=["all", "tail_user"])
    res = evaluate(lambda u, m: S[u], ds, "test", cfg)
    assert res.n_queries == {"all": 3, "tail_user": 2}
    assert res.metrics["all"]["hit@1"] == pytest.approx(2 / 3)
    assert res.metrics["tail_user"]["hit@1"] == pytest.approx(0.5)

"""``mrs synth`` with planted sequential transitions (``model.seq_strength``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrs.synth import load_planted, make_prepared
from mrs.synth.planted import follow_transitions


def test_follow_transitions_by_hand():
    succ = np.array([1, 2, 0])
    last = np.array([-1, 2])
    # user 0: k 0, (switch) -> succ[0] = 1, (switch) -> succ[1] = 2; user 1 starts after cluster 2
    u = np.array([0, 1, 0, 0])
    k = np.array([0, 1, 2, 2])
    out = follow_transitions(u, k, np.array([True, True, True, True]), succ, last)
    assert out.tolist() == [0, 0, 1, 2] and last.tolist() == [2, 0]


def _consecutive_hits(root) -> float:
    p, ids = load_planted(root / "planted.npz")
    inter = pd.read_parquet(root / "interactions.parquet")
    items = pd.read_parquet(root / "items.parquet")
    cl = items["cluster"].to_numpy()[inter["item"].to_numpy()]
    u = inter["user"].to_numpy()
    order = np.lexsort((np.arange(len(u)), inter["ts"].to_numpy(), u))
    u, cl = u[order], cl[order]
    same = u[1:] == u[:-1]
    return float((cl[1:][same] == p.cluster_successor[cl[:-1][same]]).mean()), p


def test_planted_transitions_are_followed_and_recorded(tmp_path):
    root = make_prepared(tmp_path / "seq", n_users=100, n_items=400, n_interactions=3000, seed=3,
                         seq_strength=0.8)
    hits, p = _consecutive_hits(root)
    assert 0.75 < hits < 0.9, hits          # ρ plus the chance that the CP draw lands there
    tm = p.transition_matrix()
    assert tm.shape == (p.rank, p.rank) and np.allclose(tm[p.cluster_successor >= 0].sum(1), 0.8)
    off = make_prepared(tmp_path / "off", n_users=100, n_items=400, n_interactions=3000, seed=3)
    assert load_planted(off / "planted.npz")[0].cluster_successor is None
    a = pd.read_parquet(off / "interactions.parquet")
    b = pd.read_parquet(root / "interactions.parquet")
    assert (a[["user", "ts"]].to_numpy() == b[["user", "ts"]].to_numpy()).all()  # only the picks differ

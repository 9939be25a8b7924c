"""make_prepared: the contract, the split, determinism, and the optional feature stores."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mrs.data import load_prepared
from mrs.synth import make_prepared


def _digest(root) -> dict[str, str]:
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest()
            for f in ("interactions.parquet", "items.parquet", "users.parquet", "dataset.json", "planted.npz")}


def test_contract_and_temporal_split(tmp_path):
    d = load_prepared(make_prepared(tmp_path / "p", n_users=50, n_items=80, n_interactions=1000, seed=3))
    assert (d.n_users, d.n_items, d.meta["n_interactions"]) == (50, 80, 1000)
    assert d.mode_names == ["context", "time"] and d.mode_cardinalities == [2, 12]
    it = d.interactions
    assert it["context"].between(0, 1).all() and it["time"].between(0, 11).all()
    # time mode = month of ts
    months = it["ts"].to_numpy().astype("datetime64[s]").astype("datetime64[M]").astype(int) % 12
    assert np.array_equal(months, it["time"].to_numpy())
    # temporal: every valid day after every train day, every test day after every valid day
    ts = {s: it.loc[it["split"] == k, "ts"] for s, k in (("train", 0), ("valid", 1), ("test", 2))}
    assert ts["train"].max() < ts["valid"].min() and ts["valid"].max() < ts["test"].min()
    assert 0.05 < len(ts["test"]) / len(it) < 0.2
    assert d.items["image"].isna().all() and d.items["text"].str.len().min() > 20
    assert np.bincount(it["user"], minlength=50).min() >= 1  # every user has an interaction


def test_deterministic_and_seed_sensitive(tmp_path):
    a = _digest(make_prepared(tmp_path / "a", seed=1))
    b = _digest(make_prepared(tmp_path / "b", seed=1))
    c = _digest(make_prepared(tmp_path / "c", seed=2))
    assert a == b
    assert a["interactions.parquet"] != c["interactions.parquet"]


def test_no_modes(tmp_path):
    d = load_prepared(make_prepared(tmp_path / "p", modes=False, n_interactions=500))
    assert d.mode_names == [] and "context" not in d.interactions and "time" not in d.interactions


def test_feature_stores_align(tmp_path):
    pytest.importorskip("h5py")
    from mrs.features.store import read_store

    root = make_prepared(tmp_path / "p", features_dim=16)
    d = load_prepared(root)
    stores = {n: read_store(root / "features" / f"{n}.h5") for n in ("text-synth", "image-synth")}
    for ids, x, present, meta in stores.values():
        assert ids == list(d.items["item_id"]) and x.shape == (300, 16)
        assert meta["items_checksum"] == d.meta["items_checksum"]
    assert stores["text-synth"][2].all() and 0.8 < stores["image-synth"][2].mean() < 0.98
    # text features separate clusters: same-cluster items are closer than other-cluster items
    x = stores["text-synth"][1].astype(float)
    k = d.items["cluster"].to_numpy()
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    same = k[:, None] == k[None]
    np.fill_diagonal(same, False)
    other = k[:, None] != k[None]
    assert dist[same].mean() < 0.8 * dist[other].mean()


def test_overrides_and_bad_keys(tmp_path):
    from mrs.errors import MrsError
    from mrs.synth import load_planted

    root = make_prepared(tmp_path / "p", n_interactions=500, context_leak=1.0, season_strength=0.0)
    p, _ = load_planted(root / "planted.npz")
    assert np.allclose(p.context_factors, 1.0) and np.allclose(p.time_factors, 1.0)
    with pytest.raises(MrsError, match="bogus"):
        make_prepared(tmp_path / "q", bogus=1)

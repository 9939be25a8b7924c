"""``mrs features text --encoder tfidf``: TF-IDF + TruncatedSVD into the usual feature store."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrs.features import load_features
from mrs.features.extract import ExtractConfig, extract
from mrs.synth import make_prepared


def test_tfidf_store_recovers_planted_clusters(tmp_path):
    root = make_prepared(tmp_path / "ds", n_users=30, n_items=120, n_interactions=400, seed=0)
    items = pd.read_parquet(root / "items.parquet")
    items.loc[5, "text"] = "   "  # an item without text is stored as absent
    items.to_parquet(root / "items.parquet", index=False)
    report = extract(root, ExtractConfig(modality="text", encoder="tfidf", dim=16, dtype="float32"),
                     progress=False)
    assert report["present"] == 119 and report["missing"] == 1
    x, present = load_features(root, "text-tfidf", fill="zeros")
    x, present = x.numpy(), present.numpy()
    assert x.shape == (120, 16) and not present[5] and present.sum() == 119
    assert np.allclose(np.linalg.norm(x[present], axis=1), 1.0, atol=1e-3)
    # the planted cluster decides the text, so same-cluster items are closer than others
    c = items["cluster"].to_numpy()
    sim = x @ x.T
    same = (c[:, None] == c[None, :]) & present[:, None] & present[None, :] & ~np.eye(120, dtype=bool)
    diff = (c[:, None] != c[None, :]) & present[:, None] & present[None, :]
    assert sim[same].mean() > sim[diff].mean() + 0.2

"""``mrs features attributes`` (issue 21 point 1): multi-hot item attributes -> TruncatedSVD ->
unit rows in ``features/attributes-svd.h5``, read by training like any content store."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.features.store import read_store
from mrs.train.data import load_feature_stores_with_present
from tests.features.conftest import make_dataset


def _with_attributes(root, attributes):
    items = pd.read_parquet(root / "items.parquet")
    items["attributes"] = pd.Series([np.asarray(a, dtype=np.int64) for a in attributes], dtype=object)
    items.to_parquet(root / "items.parquet", index=False)
    return root


def _features(root, *argv) -> int:
    return main(["features", "attributes", "--dataset", str(root), "--dtype", "float32", *argv])


def _by_hand(attributes, k):
    """Multi-hot H (columns = sorted distinct ids), its top-k left singular directions U_k S_k, rows / norm."""
    cols = sorted({a for lst in attributes for a in lst})
    h = np.array([[float(c in lst) for c in cols] for lst in attributes])
    u, s, _ = np.linalg.svd(h, full_matrices=False)
    z = u[:, :k] * s[:k]
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _same_up_to_column_signs(x, want, atol):
    signs = np.sign(np.sum(x * want, axis=0))     # SVD directions are defined up to sign
    np.testing.assert_allclose(x, want * signs, atol=atol)


def test_truncated_store_rows_equal_a_direct_transcription(tmp_path):
    rng = np.random.default_rng(0)
    attributes = [sorted(rng.choice(30, size=rng.integers(1, 6), replace=False).tolist()) for _ in range(60)]
    attributes = [[a * 1000 for a in lst] for lst in attributes]   # large sparse ids cost nothing
    root = _with_attributes(make_dataset(tmp_path / "d", [f"i{k}" for k in range(60)]), attributes)
    assert _features(root, "--dim", "4") == 0
    ids, x, present, meta = read_store(root / "features" / "attributes-svd.h5")
    assert ids == [f"i{k}" for k in range(60)] and present.all() and x.shape == (60, 4)
    assert (meta["modality"], meta["encoder"], meta["normalisation"]) == ("attributes", "svd", "l2")
    assert "multi-hot(30 attributes) + TruncatedSVD-arpack(4)" in meta["encoder_version"]
    _same_up_to_column_signs(x, _by_hand(attributes, 4), atol=2e-3)


def test_exact_store_keeps_the_multi_hot_cosines_and_items_without_attributes_are_absent(tmp_path, caplog, capsys):
    attributes = [[12, 7, 301], [7], [], [5, 12], [301, 7, 12], []]
    root = _with_attributes(make_dataset(tmp_path / "d", ["a", "b", "c", "d", "e", "f"]), attributes)
    with caplog.at_level(logging.WARNING):
        assert _features(root) == 0       # default --dim 64 > rank 3 (two items share a set): the exact SVD
    assert "attributes: dim 3 < the requested 64: the multi-hot matrix of 4 items x 4 attributes has rank 3" in caplog.text
    assert "6 items, 4 present, 2 missing" in capsys.readouterr().out
    _, x, present, _ = read_store(root / "features" / "attributes-svd.h5")
    assert present.tolist() == [True, True, False, True, True, False]
    assert not x[~present].any()
    # the exact projection keeps inner products: cos of the stored rows = cos of the multi-hot sets,
    # e.g. {12, 7, 301} vs {7}: 1/sqrt(3); vs {5, 12}: 1/sqrt(6); vs {301, 7, 12}: 1
    h = [set(a) for a, p in zip(attributes, present) if p]
    want = np.array([[len(p & q) / np.sqrt(len(p) * len(q)) for q in h] for p in h])
    np.testing.assert_allclose(x[present] @ x[present].T, want, atol=1e-5)
    assert np.isclose(want[0, 1], 1 / np.sqrt(3)) and np.isclose(want[0, 3], 1.0)
    report = json.loads((root / "features" / "attributes-svd.h5.report.json").read_text())
    assert report["problems"] == {"no_attributes": {"count": 2, "first_ids": ["c", "f"]}}


def test_errors_are_one_line(tmp_path, capsys):
    root = make_dataset(tmp_path / "d", ["a", "b"])
    assert _features(root) == 1
    err = capsys.readouterr().err
    assert "no 'attributes' column (needed for attributes features); prepare with `mrs prepare amazon2014 " \
           "--attributes FILE`" in err and len(err.strip().splitlines()) == 1
    _with_attributes(root, [[1], []])
    assert _features(root) == 1
    assert "attributes: 1 items with attributes; need at least 2" in capsys.readouterr().err
    items = pd.read_parquet(root / "items.parquet")
    items["attributes"] = [[1.5], [2.0]]
    items.to_parquet(root / "items.parquet", index=False)
    assert _features(root) == 1
    assert "item 'a': 'attributes' must be a list of integers, got [1.5]" in capsys.readouterr().err
    assert not (root / "features" / "attributes-svd.h5").exists()


def test_prepare_features_and_train_with_early_fusion(tmp_path):
    """The whole path on a tiny Amazon-2014-style dataset: prepare with --attributes, extract the
    store, and train a model that fuses it (``model.fusion=early``)."""
    rng = np.random.default_rng(1)
    lines = [" ".join(map(str, [u, *rng.choice(np.arange(1, 41), size=6, replace=False)])) for u in range(1, 31)]
    (tmp_path / "seq.txt").write_text("\n".join(lines) + "\n")
    attrs = {str(i): sorted({int(i % 5), 10 + int(i % 7), 100 + int(i % 3)}) for i in range(1, 41) if i != 13}
    (tmp_path / "attr.json").write_text(json.dumps(attrs))
    data = tmp_path / "d"
    assert main(["prepare", "amazon2014", "--sequences", str(tmp_path / "seq.txt"),
                 "--attributes", str(tmp_path / "attr.json"), "--out", str(data)]) == 0
    assert _features(data, "--dim", "8") == 0
    ds = load_prepared(data)
    feats, present = load_feature_stores_with_present(ds, ["attributes-svd"])
    x, p = feats["attributes-svd"].numpy(), present["attributes-svd"].numpy()
    assert x.shape == (ds.n_items, 8) and p.sum() == ds.n_items - 1
    assert not p[ds.items.item_id.tolist().index("13")]
    assert np.allclose(np.linalg.norm(x[p], axis=1), 1, atol=1e-5)
    sets = ["model.encoder=mf", "model.fusion=early", "data.features=[attributes-svd]", "model.dim=8",
            "model.joint_dim=8", "train.epochs=1", "train.num_threads=1", "train.device=cpu",
            "eval.bootstrap=0", "eval.ks=[5]", "train.select_metric=recall@5", f"data.dir={data}"]
    run = tmp_path / "run"
    assert main(["train", *[a for s in sets for a in ("--set", s)], "--no-wandb", "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["alpha"]) >= {"attributes-svd"} and np.isfinite(m["history"][0]["loss"])
    assert 0 <= m["test"]["all"]["recall@5"] <= 1

"""Store round-trips (HDF5 and LMDB give identical arrays), fills, and checksum refusal."""
from __future__ import annotations

import os

import numpy as np
import pytest

from mrs.data.prepared import items_checksum
from mrs.errors import MrsError
from mrs.features import list_features, load_features, read_meta, read_store, write_store


@pytest.mark.parametrize("fmt", ["h5", "lmdb"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_and_fills(dataset_factory, tmp_path, fmt, dtype):
    ids = ["a", "b", "c", "d"]
    ds = dataset_factory(tmp_path / "ds", ids)
    feats = np.array([[1, 2], [3, 4], [0, 0], [5, 9]], dtype=np.float32)
    present = np.array([True, True, False, True])
    meta = {"modality": "text", "encoder": "toy", "items_checksum": items_checksum(ids)}
    path = write_store(ds / "features" / f"text-toy.{fmt}", ids, feats, present, meta, dtype=dtype)
    rids, rf, rp, rm = read_store(path)
    assert rids == ids and rf.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(rf, feats.astype(dtype))
    np.testing.assert_array_equal(rp, present)
    assert rm["dim"] == 2 and rm["encoder"] == "toy" and rm["n_present"] == 3
    x, p = load_features(ds, "text-toy", fill="mean")
    assert x.shape == (4, 2) and p.tolist() == [True, True, False, True]
    assert x[2].tolist() == [3.0, 5.0]  # mean of rows 0, 1, 3 = (9/3, 15/3)
    x0, _ = load_features(ds, "text-toy", fill="zeros")
    assert x0[2].tolist() == [0.0, 0.0] and x0[3].tolist() == [5.0, 9.0]
    assert [s["name"] for s in list_features(ds)] == ["text-toy"]
    assert list_features(ds)[0]["matches_dataset"] is True

def test_both_stores_identical(dataset_factory, tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(2500)]  # > one HDF5 row chunk
    feats = rng.standard_normal((2500, 7)).astype(np.float32)
    present = rng.random(2500) > 0.2
    feats[~present] = 0
    meta = {"items_checksum": items_checksum(ids)}
    a = read_store(write_store(tmp_path / "s.h5", ids, feats, present, meta))
    b = read_store(write_store(tmp_path / "s.lmdb", ids, feats, present, meta))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3] == b[3]

def test_checksum_mismatch_refused(dataset_factory, tmp_path):
    ds = dataset_factory(tmp_path / "ds", ["a", "b"])
    ids = ["b", "a"]  # another order: must not be silently misaligned
    write_store(ds / "features" / "text-toy.h5", ids, np.ones((2, 3), np.float32),
                np.ones(2, bool), {"items_checksum": items_checksum(ids)})
    with pytest.raises(MrsError, match="another item list"):
        load_features(ds, "text-toy")
    assert list_features(ds)[0]["matches_dataset"] is False

def test_missing_store_named(dataset_factory, tmp_path):
    ds = dataset_factory(tmp_path / "ds", ["a"])
    with pytest.raises(MrsError, match="no feature store named 'image-x'"):
        load_features(ds, "image-x")
    with pytest.raises(MrsError, match="fill="):
        load_features(ds, "image-x", fill="median")

def test_corrupt_h5_is_one_line_error(dataset_factory, tmp_path):
    p = tmp_path / "bad.h5"
    p.write_bytes(b"not hdf5")
    with pytest.raises(MrsError, match="not a readable HDF5"):
        read_meta(p)


def test_lmdb_lazy_per_item_access_survives_pickling(tmp_path):
    import pickle

    from mrs.features import LmdbFeatures

    ids = ["x", "y", "z"]
    feats = np.array([[1, 2], [0, 0], [5, 6]], np.float32)
    write_store(tmp_path / "s.lmdb", ids, feats, np.array([True, False, True]), {}, dtype="float32")
    lazy = LmdbFeatures(tmp_path / "s.lmdb")
    assert lazy["z"].tolist() == [5.0, 6.0] and lazy["y"] is None  # absent items have no key
    clone = pickle.loads(pickle.dumps(lazy))  # what a spawned DataLoader worker receives
    assert clone._env is None
    lazy.close()  # py-lmdb allows one open handle per path and process
    assert clone["x"].tolist() == [1.0, 2.0]
    clone.close()
    lazy["x"]  # opened in this process...
    pid = os.fork()  # ...then forked, as DataLoader workers are
    if pid == 0:  # the child must never return into pytest
        try:
            os._exit(0 if lazy["z"].tolist() == [5.0, 6.0] else 1)
        finally:
            os._exit(2)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
